"""PCR arithmetic against the shared known answers."""

from __future__ import annotations

from typing import Any

import pytest

from runtime.tpm.pcr_math import Bank, compare, composite_digest, extend, extend_all, measure_string
from tests.conftest import known_answers


def _kat() -> dict[str, Any]:
    return known_answers()


def _operand(bank: Bank, text: str) -> bytes:
    # The KAT writes operands either as plain hex or as "hash(...) = hex" / "sha256('abc')".
    if "=" in text:
        return bytes.fromhex(text.split("=")[1].split()[0])
    if text.startswith(f"{bank.hash_name}('"):
        return bank.hash(text[len(bank.hash_name) + 2 : -2].encode())
    return bytes.fromhex(text)


def test_extend_known_answers() -> None:
    rows = [r for r in _kat()["pcr_extend"] if "bank" in r]
    assert rows
    for row in rows:
        bank = Bank.from_name(row["bank"])
        start = bytes.fromhex(row["start"])
        assert extend(bank, start, _operand(bank, row["extend_with"])).hex() == row["result"]


def test_well_known_event_digests() -> None:
    notes = [r for r in _kat()["pcr_extend"] if "bank" not in r]
    checked = 0
    for row in notes:
        for key, value in row.items():
            if key.startswith("sha256('"):
                assert measure_string(Bank.SHA256, key[len("sha256('") : -2]).hex() == value
                checked += 1
    assert checked >= 3


def test_heads_string_measurements() -> None:
    # ../shared/reference/heads-facts.md §2.1: one extend of PCR 4 from zero with each
    # marker string.
    zero = Bank.SHA256.zero()
    after = {
        t: extend(Bank.SHA256, zero, measure_string(Bank.SHA256, t)).hex()
        for t in ("recovery", "usb", "generic")
    }
    assert after["recovery"].startswith("51737c77") and after["recovery"].endswith("afd614")
    assert after["usb"].startswith("0ed6a214") and after["usb"].endswith("052c66")
    assert after["generic"].startswith("6aaa5fbc") and after["generic"].endswith("9a448e")


def test_extend_rejects_wrong_sizes() -> None:
    with pytest.raises(ValueError):
        extend(Bank.SHA256, bytes(20), bytes(32))


def test_extend_all_and_compare() -> None:
    bank = Bank.SHA256
    digests = [bank.hash(b"a"), bank.hash(b"b")]
    value = extend_all(bank, bank.zero(), digests)
    assert value == extend(bank, extend(bank, bank.zero(), digests[0]), digests[1])
    mismatches = compare(bank, {1: value, 2: bank.zero()}, {1: value, 2: value, 3: value})
    assert [m.pcr for m in mismatches] == [2]
    assert "PCR 2" in mismatches[0].describe()


def test_composite_digest_orders_by_index() -> None:
    bank = Bank.SHA256
    values = {7: b"\x07" * 32, 0: b"\x00" * 32}
    assert composite_digest(bank, values, [7, 0]) == bank.hash(values[0] + values[7])
    with pytest.raises(ValueError):
        composite_digest(bank, values, [1])


def test_bank_lookup() -> None:
    assert Bank.from_alg_id(0x000B) is Bank.SHA256
    assert Bank.from_name("SHA1") is Bank.SHA1
    with pytest.raises(ValueError):
        Bank.from_alg_id(0x0012)
