"""Offline policy digests against the shared known answers."""

from __future__ import annotations

from typing import Any

import pytest

from runtime.tpm.pcr_math import Bank
from runtime.tpm.policy_math import (
    NvOperation,
    PcrSelection,
    PolicyDigest,
    marshal_pcr_selections,
    pcr_bitmap,
    pcr_policy,
)
from tests.conftest import known_answers


def _rows() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = known_answers()["policy_digests_sha256"]
    return rows


def test_policy_auth_value_known_answer() -> None:
    row = next(r for r in _rows() if r["what"].startswith("PolicyAuthValue"))
    policy = PolicyDigest().auth_value()
    assert policy.value.hex() == row["result"]
    assert policy.auth_value().value.hex() == row["then_again"]


def test_policy_pcr_known_answers() -> None:
    rows = [r for r in _rows() if "pcr_values" in r]
    assert rows
    for row in rows:
        values = {int(k): bytes.fromhex(v) for k, v in row["pcr_values"].items()}
        selection = [PcrSelection.of(Bank.SHA256, values)]
        policy = PolicyDigest().pcr(selection, {Bank.SHA256: values})
        assert policy.value.hex() == row["result"], row["what"]
        if "then_again" in row:
            assert policy.pcr(selection, {Bank.SHA256: values}).value.hex() == row["then_again"]


def test_pcr_policy_helper_matches_builder() -> None:
    values = {p: bytes([p]) * 32 for p in (0, 1, 2, 3, 4, 7)}
    built = PolicyDigest().pcr([PcrSelection.of(Bank.SHA256, values)], {Bank.SHA256: values})
    assert pcr_policy(Bank.SHA256, values, values) == built.value
    with_pw = pcr_policy(Bank.SHA256, values, values, with_auth_value=True)
    assert with_pw == built.auth_value().value


def test_bitmap_and_selection_marshalling() -> None:
    assert pcr_bitmap([0, 1, 2, 3, 4, 7]) == bytes([0x9F, 0, 0])
    assert pcr_bitmap([9, 23]) == bytes([0, 0x02, 0x80])
    sel = marshal_pcr_selections([PcrSelection.of(Bank.SHA256, [4, 7, 8])])
    assert sel.hex() == "00000001" + "000b" + "03" + "900100"
    with pytest.raises(ValueError):
        pcr_bitmap([24])


def test_missing_or_wrong_size_value_is_refused() -> None:
    with pytest.raises(ValueError):
        PolicyDigest().pcr([PcrSelection.of(Bank.SHA256, [1])], {Bank.SHA256: {}})
    with pytest.raises(ValueError):
        PolicyDigest().pcr([PcrSelection.of(Bank.SHA256, [1])], {Bank.SHA256: {1: b"x"}})


def test_policy_nv_changes_with_every_argument() -> None:
    name = b"\x00\x0b" + bytes(32)
    base = PolicyDigest().nv(name, b"\x00" * 8, 0, NvOperation.UNSIGNED_GE).value
    assert base != PolicyDigest().nv(name, b"\x00" * 8, 0, NvOperation.EQ).value
    assert base != PolicyDigest().nv(name, b"\x00" * 7 + b"\x01", 0, NvOperation.UNSIGNED_GE).value
    assert base != PolicyDigest().nv(b"\x00\x0b" + b"\x01" * 32, b"\x00" * 8).value
