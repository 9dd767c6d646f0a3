"""Random bytes from the TPM's hardware generator, and secret bytes mixed
from it and the kernel's generator."""

from __future__ import annotations

import os

from runtime.tpm.connection import Tpm
from runtime.tpm.errors import translated


def random_bytes(tpm: Tpm, count: int) -> bytes:
    """``count`` random bytes; the TPM returns at most one digest's worth per call."""
    if count < 0:
        raise ValueError("count must not be negative")
    out = b""
    with translated("Reading random bytes from the TPM"):
        while len(out) < count:
            out += bytes(tpm.esapi.get_random(min(32, count - len(out))))
    return out


def secret_bytes(tpm: Tpm, count: int) -> bytearray:
    """``count`` bytes for a secret, as a wipeable bytearray: the TPM's bytes
    (they cross the bus in clear, so a sniffer reads them and an interposer may
    choose them) XORed with the kernel's, which never leave the CPU. Neither a
    weak or hostile TPM side nor a weak kernel pool alone makes it known."""
    mixed = bytearray(os.getrandom(count))
    for index, byte in enumerate(random_bytes(tpm, count)):
        mixed[index] ^= byte
    return mixed
