"""Which PCRs the Disk Unlock Key is sealed to, and the values predicted for
the next normal boot (runtime/disk/duk_policy.py)."""

from __future__ import annotations

import pytest

from runtime.disk.duk_policy import (
    BANK,
    LUKS_HEADER_PCR,
    PcrFacts,
    auth_value,
    duk_pcrs,
    predicted_values,
)
from runtime.tpm.pcr_math import extend, extend_all

PCRS = duk_pcrs((0, 1, 2, 3, 4, 7, 9), 5)
CURRENT = {p: bytes([p + 1]) * 32 for p in PCRS}
FIRMWARE = {p: bytes([p + 100]) * 32 for p in PCRS}
MODULES = (BANK.hash(b"a"), BANK.hash(b"b"))
HEADER = BANK.hash(b"header text")


def _facts(firmware: dict[int, bytes] | None, extended: set[int]) -> PcrFacts:
    return PcrFacts(CURRENT, firmware, frozenset(extended), MODULES)


def test_the_firmware_pcrs_and_the_boards_own_above_7() -> None:
    assert PCRS == (0, 1, 2, 3, 4, 5, 6, 7, 9)
    assert duk_pcrs((0, 2, 7), 5) == tuple(range(8))
    assert duk_pcrs((2, 11), 12) == (*range(8), 11, 12)


def test_boot_mode_modules_and_headers_are_predicted_from_the_firmware() -> None:
    values = predicted_values(PCRS, 5, _facts(FIRMWARE, {4, 5, 6}), HEADER)
    assert isinstance(values, dict)
    assert values[4] == FIRMWARE[4]
    assert values[5] == extend_all(BANK, FIRMWARE[5], MODULES)
    assert values[LUKS_HEADER_PCR] == extend(BANK, FIRMWARE[6], HEADER)
    for pcr in (0, 1, 2, 3, 7, 9):
        assert values[pcr] == CURRENT[pcr]


def test_without_the_log_an_untouched_pcr_starts_from_its_current_value() -> None:
    values = predicted_values(PCRS, 5, _facts(None, set()), HEADER)
    assert isinstance(values, dict)
    assert values[4] == CURRENT[4]
    assert values[6] == extend(BANK, CURRENT[6], HEADER)


@pytest.mark.parametrize("pcr", [4, 5, 6])
def test_without_the_log_a_pcr_the_runtime_moved_cannot_be_predicted(pcr: int) -> None:
    why = predicted_values(PCRS, 5, _facts(None, {pcr}), HEADER)
    assert isinstance(why, str) and f"PCR {pcr}" in why


def test_a_sealed_pcr_the_runtime_extended_is_refused() -> None:
    why = predicted_values(PCRS, 5, _facts(FIRMWARE, {7}), HEADER)
    assert isinstance(why, str) and "PCR 7" in why


def test_the_auth_value_fits_the_tpm_for_any_passphrase_length() -> None:
    short, long = auth_value(bytearray(b"x")), auth_value(bytearray(b"y" * 500))
    assert len(short) == len(long) == 32 and short != long
    assert auth_value(b"same") == auth_value(bytearray(b"same"))
