"""One boot's TPM work, shared by the benchmark's warm and cold runs.

Kept apart from ``bench_tpm`` so that a cold run imports only the layer:
``python -m tools.bench_boot_steps TCTI COUNTER_HEX``.
"""

from __future__ import annotations

import sys

from runtime.tpm import handles
from runtime.tpm.connection import Tpm
from runtime.tpm.counters import read_counter
from runtime.tpm.pcrs import read_pcrs
from runtime.tpm.sealing import unseal_persistent

DUK_PASS = b"disk unlock passphrase"
TOTP_PCRS = (0, 1, 2, 3, 4, 7)
DUK_PCRS = tuple(range(8))
TOTP_SECRET = b"T" * 20
DISK_KEY = b"D" * 128


def boot_steps(tpm: Tpm, counter: int) -> None:
    """Read PCRs 0-7, unseal the TOTP secret, read the counter, unseal the disk key."""
    read_pcrs(tpm, range(8))
    totp = unseal_persistent(tpm, handles.TOTP_SECRET, TOTP_PCRS)
    read_counter(tpm, counter)
    duk = unseal_persistent(tpm, handles.DISK_UNLOCK_KEY, DUK_PCRS, DUK_PASS)
    if bytes(totp) != TOTP_SECRET or bytes(duk) != DISK_KEY:
        raise SystemExit("benchmark: unsealed bytes are wrong")


def one_boot(tcti: str, counter: int) -> None:
    """Open the TPM, start its sessions, do the steps, close."""
    with Tpm.connect(tcti) as tpm:
        boot_steps(tpm, counter)


if __name__ == "__main__":
    one_boot(sys.argv[1], int(sys.argv[2], 16))
