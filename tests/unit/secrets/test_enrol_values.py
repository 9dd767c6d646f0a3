"""What a new secret is sealed to: the seal PCRs as the firmware left them,
PCR 4 from the event log (never a value the runtime extended this boot)."""

from __future__ import annotations

import hashlib

from runtime.config.board import BoardConfig
from runtime.secrets.enrol import seal_values
from runtime.tpm.pcr_roles import recovery_extends

BOARD = BoardConfig(
    "b",
    "d",
    "/dev/ttyS0",
    80,
    24,
    runtime_pcr=9,
    firmware_pcrs=(0, 4, 9),
    seal_pcrs=(0, 4, 9),
    modules_pcr=5,
    kernel_release="k",
)
CURRENT = {0: b"\x00" * 32, 4: b"\x44" * 32, 9: b"\x99" * 32}
FIRMWARE = {4: b"\x04" * 32}


def test_pcr4_comes_from_the_event_log() -> None:
    values = seal_values(BOARD, CURRENT, FIRMWARE, set())
    assert values == {0: CURRENT[0], 4: FIRMWARE[4], 9: CURRENT[9]}


def test_without_an_event_log_the_current_pcr4_is_used_if_untouched() -> None:
    assert seal_values(BOARD, CURRENT, None, {5})[4] == CURRENT[4]  # type: ignore[index]


def test_without_an_event_log_an_extended_pcr4_is_refused() -> None:
    problem = seal_values(BOARD, CURRENT, None, {4})
    assert isinstance(problem, str) and "PCR 4" in problem


def test_a_seal_pcr_the_runtime_extended_is_refused() -> None:
    problem = seal_values(BOARD, CURRENT, FIRMWARE, {9})
    assert isinstance(problem, str) and "PCR 9" in problem


def test_recovery_extends_are_counted() -> None:
    firmware = b"\x01" * 32
    once = hashlib.sha256(firmware + hashlib.sha256(b"recovery").digest()).digest()
    twice = hashlib.sha256(once + hashlib.sha256(b"recovery").digest()).digest()
    assert recovery_extends(firmware, firmware) == 0
    assert recovery_extends(firmware, once) == 1
    assert recovery_extends(firmware, twice) == 2
    assert recovery_extends(firmware, b"\x02" * 32) == 0
