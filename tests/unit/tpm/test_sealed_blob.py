"""The sealed-secret blob format round-trips and rejects damage cleanly."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runtime.tpm.pcr_math import Bank
from runtime.tpm.sealing import SealedSecret

SAMPLE = SealedSecret(
    public=b"\x00\x2e" + b"P" * 46,
    private=b"\x00\x80" + b"Q" * 128,
    bank=Bank.SHA256,
    pcrs=(0, 1, 2, 3, 4, 7),
    with_passphrase=True,
    expected={p: bytes([p]) * 32 for p in (0, 1, 2, 3, 4, 7)},
)


def test_round_trip() -> None:
    assert SealedSecret.from_bytes(SAMPLE.to_bytes()) == SAMPLE


def test_every_truncation_is_a_value_error() -> None:
    blob = SAMPLE.to_bytes()
    for cut in range(len(blob)):
        with pytest.raises(ValueError):
            SealedSecret.from_bytes(blob[:cut])


@given(st.binary(max_size=600))
def test_arbitrary_bytes_never_crash(data: bytes) -> None:
    with contextlib.suppress(ValueError):
        SealedSecret.from_bytes(data)


@given(st.integers(min_value=0, max_value=len(SAMPLE.to_bytes()) - 1), st.integers(0, 255))
def test_mutations_never_crash(position: int, value: int) -> None:
    blob = bytearray(SAMPLE.to_bytes())
    blob[position] = value
    with contextlib.suppress(ValueError):
        SealedSecret.from_bytes(bytes(blob))
