"""At a verified boot: the Disk Unlock Key unsealed and put, with the
crypttab lines, into the RAM-only cpio appended to the OS's initrd.

Before the passphrase is asked, this boot's header measurement (PCR 6,
header_measure.py) must equal the signed kexec_lukshdr_hash.txt byte for
byte, as Heads compares them: a header replaced by another container's
stops here, naming the device. The caller has verified /boot's signature,
which covers every kexec*.txt file read here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from runtime.disk.crypttab import CrypttabError, crypttabs_from_overrides, default_crypttabs
from runtime.disk.duk_store import load, unseal_key
from runtime.disk.header_measure import HeaderMeasurement
from runtime.disk.key_cpio import build_key_cpio
from runtime.disk.key_lists import (
    CRYPTTAB_OVERRIDES_FILE,
    KEY_DEVICES_FILE,
    KEY_LVM_FILE,
    LUKS_HEADER_HASH_FILE,
    KeyDevice,
    KeyListError,
    header_backup_path,
    parse_crypttab_overrides,
    parse_header_measurement,
    parse_key_devices,
    parse_key_lvm,
)
from runtime.secrets.ram import wipe_buffer
from runtime.tpm.connection import Tpm
from runtime.tpm.sealing import SealedSecret


class NotSetUp(Exception):
    """No DUK on this machine (nothing on /boot, or nothing in the TPM)."""


class KeyGone(NotSetUp):
    """/boot names the DUK's disks, but the TPM no longer holds the key (a
    TPM reset, or a setup cut short before its TPM write)."""


class NeedsLvm(ValueError):
    """/boot names a volume group (Heads' kexec_key_lvm.txt) to activate before
    the key's disks exist, and this firmware has no LVM tools."""


class HeadersChanged(Exception):
    """A LUKS header differs from the one signed; str() names the devices."""


@dataclass(frozen=True)
class DukBoot:
    """What a boot with the DUK uses, read from the signed /boot."""

    devices: tuple[KeyDevice, ...]
    sealed: SealedSecret
    crypttabs: dict[str, bytes]


def prepare(
    tpm: Tpm,
    signed: Mapping[str, bytes],
    measured: HeaderMeasurement | None,
    *,
    lvm_tools: bool = True,
) -> DukBoot:
    """The DUK's boot, checked, from ``signed``: the kexec*.txt files the
    verification of /boot found signed by the owner ({name: bytes}: never
    read again from the disk, which could answer differently the second
    time). NotSetUp, HeadersChanged, NeedsLvm (a volume group named and no
    ``lvm_tools``: the headers measurement activated it), or KeyListError /
    CrypttabError / ValueError for a file or a TPM blob that cannot be used."""
    listed = signed.get(KEY_DEVICES_FILE)
    if listed is None:
        raise NotSetUp(f"/boot has no signed {KEY_DEVICES_FILE}.")
    devices = tuple(parse_key_devices(listed))
    group = parse_key_lvm(signed[KEY_LVM_FILE]) if KEY_LVM_FILE in signed else None
    if group is not None and not lvm_tools:
        raise NeedsLvm(
            f"its disks are in the LVM volume group {group}, which this firmware cannot "
            "open (it has no LVM tools)"
        )
    signed_headers = signed.get(LUKS_HEADER_HASH_FILE)
    if signed_headers is None:
        raise NotSetUp(f"/boot has no signed {LUKS_HEADER_HASH_FILE}.")
    parse_header_measurement(signed_headers)  # well formed, or KeyListError
    if measured is None or measured.text != signed_headers:
        raise HeadersChanged(_changed_devices(devices, measured, signed_headers))
    sealed = load(tpm)
    if sealed is None:
        raise KeyGone(
            "The TPM no longer holds the Disk Unlock Key (it was reset since): set the key "
            "up again in the TPM/TOTP/HOTP options."
        )
    overrides = signed.get(CRYPTTAB_OVERRIDES_FILE)
    if overrides is not None:
        crypttabs = crypttabs_from_overrides(parse_crypttab_overrides(overrides))
    else:
        crypttabs = default_crypttabs([d.luks_uuid for d in devices])
    return DukBoot(devices, sealed, crypttabs)


def _changed_devices(
    devices: tuple[KeyDevice, ...], measured: HeaderMeasurement | None, signed: bytes
) -> str:
    if measured is None:
        return (
            "The encrypted disks' headers were not measured in this run of the firmware "
            "(after a recovery shell the key stays sealed until the next power-on)."
        )
    if measured.problems or not measured.text:
        return "Not measured: " + (" ".join(measured.problems) or "no encrypted disk was found.")
    was = {h.backup_path: h.digest for h in parse_header_measurement(signed)}
    now = {h.backup_path: h.digest for h in parse_header_measurement(measured.text)}
    changed = [
        d.device
        for d in devices
        if was.get(header_backup_path(d.device)) != now.get(header_backup_path(d.device))
    ]
    names = ", ".join(changed) or "the disks listed"
    return f"The encryption (LUKS) header of {names} differs from the one you signed."


def key_cpio(tpm: Tpm, duk: DukBoot, passphrase: bytearray) -> bytearray:
    """The cpio for the OS's initrd (the caller wipes it): PcrsChanged naming
    the PCRs, or WrongPassphrase, from the unseal."""
    key = unseal_key(tpm, duk.sealed, passphrase)
    try:
        return build_key_cpio(key, duk.crypttabs)
    finally:
        wipe_buffer(key)


__all__ = [
    "CrypttabError",
    "DukBoot",
    "HeadersChanged",
    "KeyGone",
    "KeyListError",
    "NotSetUp",
    "key_cpio",
    "prepare",
]
