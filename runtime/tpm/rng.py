"""Random bytes from the TPM's hardware generator."""

from __future__ import annotations

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
