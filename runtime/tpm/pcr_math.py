"""Pure PCR arithmetic: hash banks, extend, and prediction of future values.

Nothing here touches a TPM, so sealing can predict the values a PCR will
hold (for example PCR 4 before the runtime extends it) and tests can check
the arithmetic against known answers without hardware.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum


class Bank(Enum):
    """A PCR bank, named by its hash algorithm, with its TCG algorithm id."""

    SHA1 = ("sha1", 0x0004, 20)
    SHA256 = ("sha256", 0x000B, 32)
    SHA384 = ("sha384", 0x000C, 48)
    SHA512 = ("sha512", 0x000D, 64)

    def __init__(self, hash_name: str, alg_id: int, digest_size: int) -> None:
        self.hash_name = hash_name
        self.alg_id = alg_id
        self.digest_size = digest_size

    @classmethod
    def from_alg_id(cls, alg_id: int) -> Bank:
        for bank in cls:
            if bank.alg_id == alg_id:
                return bank
        raise ValueError(f"unknown TPM hash algorithm id 0x{alg_id:04x}")

    @classmethod
    def from_name(cls, name: str) -> Bank:
        for bank in cls:
            if bank.hash_name == name.lower():
                return bank
        raise ValueError(f"unknown PCR bank {name!r}")

    def hash(self, data: bytes) -> bytes:
        return hashlib.new(self.hash_name, data).digest()

    def zero(self) -> bytes:
        return bytes(self.digest_size)


#: PCRs a TPM 2.0 for PC clients has (0-23).
PCR_COUNT = 24


def extend(bank: Bank, old: bytes, digest: bytes) -> bytes:
    """Return the PCR value after extending ``old`` with ``digest``: H(old || digest)."""
    if len(old) != bank.digest_size or len(digest) != bank.digest_size:
        raise ValueError(
            f"{bank.hash_name} extend needs {bank.digest_size}-byte values, "
            f"got {len(old)} and {len(digest)}"
        )
    return bank.hash(old + digest)


def extend_all(bank: Bank, start: bytes, digests: Iterable[bytes]) -> bytes:
    """Extend ``start`` with each digest in turn and return the final value."""
    value = start
    for digest in digests:
        value = extend(bank, value, digest)
    return value


def measure_string(bank: Bank, text: str) -> bytes:
    """Digest of a string event as Heads measures it: H(text), no newline."""
    return bank.hash(text.encode("utf-8"))


def composite_digest(bank: Bank, values: Mapping[int, bytes], pcrs: Iterable[int]) -> bytes:
    """H(concatenation of the selected PCR values in index order), as PolicyPCR uses."""
    selected = sorted(set(pcrs))
    missing = [pcr for pcr in selected if pcr not in values]
    if missing:
        raise ValueError(f"no value for PCR(s) {missing}")
    return bank.hash(b"".join(values[pcr] for pcr in selected))


@dataclass(frozen=True)
class PcrMismatch:
    """One PCR whose expected and actual values differ."""

    bank: Bank
    pcr: int
    expected: bytes
    actual: bytes

    def describe(self) -> str:
        return (
            f"PCR {self.pcr} ({self.bank.hash_name}) is {self.actual.hex()}, "
            f"expected {self.expected.hex()}"
        )


def compare(
    bank: Bank, expected: Mapping[int, bytes], actual: Mapping[int, bytes]
) -> list[PcrMismatch]:
    """List the PCRs (present in both maps) whose values differ, in index order."""
    return [
        PcrMismatch(bank, pcr, expected[pcr], actual[pcr])
        for pcr in sorted(expected.keys() & actual.keys())
        if expected[pcr] != actual[pcr]
    ]
