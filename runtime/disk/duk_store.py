"""The Disk Unlock Key in the TPM: sealed to predicted PCR values and a
passphrase, kept as a blob in NV (handles.DUK_SEALED_NV), unsealed at boot.

The unseal compares the PCRs with those the key was sealed to before the
passphrase is used: a changed firmware, runtime or LUKS header is named,
and costs no dictionary-attack count. Only a wrong passphrase does, since
the TPM checks it only once the PCRs matched.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from runtime.disk.duk_policy import BANK, auth_value
from runtime.secrets.ram import wipe_buffer
from runtime.tpm import handles, nv, sealing
from runtime.tpm.connection import Tpm
from runtime.tpm.errors import NvIndexMissing, PcrsChanged
from runtime.tpm.pcr_math import PcrMismatch, compare
from runtime.tpm.pcrs import read_pcrs
from runtime.tpm.sealing import SealedSecret

#: Heads' DUK: 128 bytes, the most a sealed object holds
KEY_SIZE = 128


def seal_key(
    tpm: Tpm,
    key: bytearray,
    pcrs: Sequence[int],
    values: Mapping[int, bytes],
    passphrase: bytearray,
) -> SealedSecret:
    """Seal ``key`` to ``values`` of ``pcrs`` and the passphrase; nothing is stored."""
    auth = bytearray(auth_value(passphrase))
    try:
        sealed = sealing.seal(
            tpm, bytes(key), pcrs, pcr_values=values, passphrase=bytes(auth), bank=BANK
        )
    finally:
        wipe_buffer(auth)
    return sealed


def store(tpm: Tpm, sealed: SealedSecret, owner_auth: bytes) -> str | None:
    """Keep the sealed key in NV, replacing the previous one in one write.
    Returns why a foreign index at its place was replaced, None otherwise."""
    return nv.store_sealed(tpm, sealed, handles.DUK_SEALED_NV, owner_auth)


def load(tpm: Tpm) -> SealedSecret | None:
    """The stored sealed key; None when there is none (never set up, reset)."""
    try:
        return nv.load_sealed(tpm, handles.DUK_SEALED_NV)
    except NvIndexMissing:
        return None


def changed_pcrs(tpm: Tpm, sealed: SealedSecret) -> list[PcrMismatch]:
    """The PCRs that differ from the values the key was sealed to."""
    current = read_pcrs(tpm, sealed.pcrs, sealed.bank)
    return compare(sealed.bank, sealed.expected, current)


def unseal_key(tpm: Tpm, sealed: SealedSecret, passphrase: bytearray) -> bytearray:
    """The key (the caller wipes it). PcrsChanged, naming the PCRs, before the
    passphrase is tried; WrongPassphrase when the TPM refused it."""
    mismatches = changed_pcrs(tpm, sealed)
    if mismatches:
        changed = ", ".join(str(m.pcr) for m in mismatches)
        raise PcrsChanged(
            f"Disk unlock key: PCR(s) changed since sealing: {changed}", mismatches=mismatches
        )
    auth = bytearray(auth_value(passphrase))
    try:
        return sealing.unseal(tpm, sealed, bytes(auth))
    finally:
        wipe_buffer(auth)


def remove(tpm: Tpm, owner_auth: bytes) -> bool:
    """Forget the sealed key; False when there was none."""
    if not nv.exists(tpm, handles.DUK_SEALED_NV):
        return False
    nv.undefine(tpm, handles.DUK_SEALED_NV, owner_auth)
    return True
