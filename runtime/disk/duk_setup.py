"""Setting the Disk Unlock Key up: the containers checked with the Disk
Recovery Key passphrase, a new key added to Heads' DUK slot of each, sealed
to the next normal boot's PCRs, and the /boot files that name the devices
and their headers made for the owner to sign.

Order, so that a power cut at any step leaves a disk that opens with the
recovery passphrase and a DUK that either works or is reported as not set
up: the key slots first (a slot holding a key nobody has harms nothing; the
next setup replaces it), then the sealed key in the TPM (one NV write), and
the /boot files last (the caller signs them; until then the boot finds no
DUK set up, or an old one whose header hash no longer matches).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from runtime.disk import cryptsetup_ops
from runtime.disk.cryptsetup_ops import CryptsetupError, Pbkdf
from runtime.disk.duk_policy import PcrFacts, duk_pcrs, predicted_values
from runtime.disk.duk_store import KEY_SIZE, seal_key, store
from runtime.disk.header_measure import BACKUP_WORK_DIR, header_digests
from runtime.disk.key_lists import (
    KEY_DEVICES_FILE,
    KEY_LVM_FILE,
    LUKS_HEADER_HASH_FILE,
    KeyDevice,
    format_header_measurement,
    format_key_devices,
    format_key_lvm,
    measurement_digest,
)
from runtime.disk.luks_devices import volume_group_of
from runtime.secrets.ram import wipe_buffer
from runtime.tpm import ownership, rng
from runtime.tpm.connection import Tpm

#: Heads' DUK key slot by LUKS version
DUK_SLOT = {1: 7, 2: 31}
#: The DUK is 128 random bytes: a slow key derivation adds no strength to
#: it, and the OS's initramfs opens the disk with it on every boot.
DUK_PBKDF = Pbkdf(kind="pbkdf2", iterations=1000)


class SetupRefused(Exception):
    """Nothing was changed, for the plain reason given (names the device)."""


@dataclass(frozen=True)
class DeviceCheck:
    """One container, as the recovery passphrase opens it."""

    device: str
    version: int
    uuid: str
    recovery_slot: int
    duk_slot: int
    #: the DUK's slot holds a key already (an earlier DUK, or the owner's):
    #: it is wiped only when the user said so
    duk_slot_used: bool
    #: the LVM volume group of the logical volume it is ("" for none)
    volume_group: str = ""


def check_devices(devices: Sequence[str], recovery: bytearray) -> list[DeviceCheck]:
    """Each device is LUKS and opened by ``recovery``;
    SetupRefused naming the first that is not."""
    if not devices:
        raise SetupRefused("No encrypted disk was chosen.")
    # before any key derivation: a wrong choice costs no waiting
    group_of = {device: volume_group_of(device) for device in devices}
    groups = sorted(set(group_of.values()) - {""})
    if len(groups) > 1:
        raise SetupRefused(
            f"The chosen disks are in {len(groups)} LVM volume groups ({', '.join(groups)}); "
            "/boot names one group to activate at boot. Choose disks of one group."
        )
    checks = []
    for device in devices:
        try:
            version = cryptsetup_ops.is_luks(device)
            if version is None:
                raise SetupRefused(f"{device} is not an encrypted (LUKS) disk.")
            slot = cryptsetup_ops.slot_opened_by(device, recovery)
            if slot is None:
                raise SetupRefused(
                    f"The Disk Recovery Key passphrase does not open {device}. Check the "
                    "keyboard layout and Caps Lock, then try again."
                )
            duk_slot = DUK_SLOT[version]
            if slot == duk_slot:
                raise SetupRefused(
                    f"On {device} the recovery passphrase itself is in key slot {slot}, "
                    "where the Disk Unlock Key goes; it is never wiped. Move it to "
                    "another slot from a trusted system first."
                )
            used = duk_slot in cryptsetup_ops.used_slots(device)
            uuid = cryptsetup_ops.luks_uuid(device)
            checks.append(
                DeviceCheck(device, version, uuid, slot, duk_slot, used, group_of[device])
            )
        except CryptsetupError as err:
            raise SetupRefused(f"{device}: {err.plain()}") from err
    # LUKS1 and LUKS2 may be mixed (Heads refuses it): each gets its version's slot.
    uuids = [c.uuid for c in checks]
    if len(set(uuids)) != len(uuids):
        raise SetupRefused(
            "Two of the chosen disks have the same LUKS UUID (a cloned disk?): the OS could "
            "not tell them apart. Choose one of them."
        )
    return checks


@dataclass(frozen=True)
class SetupResult:
    """The /boot files (name -> content) the owner signs next."""

    boot_files: dict[str, bytes]
    pcrs: tuple[int, ...]


def set_up(
    tpm: Tpm,
    checks: Sequence[DeviceCheck],
    recovery: bytearray,
    duk_passphrase: bytearray,
    owner_auth: bytes,
    facts: PcrFacts,
    seal_pcrs: Sequence[int],
    modules_pcr: int,
    progress: Callable[[str], None],
    *,
    wipe_used_slots: bool = False,
    work_dir: str = BACKUP_WORK_DIR,
) -> SetupResult:
    """Add a new DUK to every device's DUK slot, seal it, store it. ``facts``:
    the PCRs as the caller found them; ``seal_pcrs`` and ``modules_pcr``: the
    board's. SetupRefused (nothing sealed) on a disk's or a prediction's
    failure; WrongPassphrase, before any disk is touched, for the owner's."""
    if any(c.duk_slot_used for c in checks) and not wipe_used_slots:
        raise SetupRefused("A key slot the Disk Unlock Key needs is in use; nothing was changed.")
    pcrs = duk_pcrs(seal_pcrs, modules_pcr)
    # what the headers will be is known only once the slots are added, but
    # whether the other PCRs can be predicted is known now: before any disk changes
    can_predict = predicted_values(pcrs, modules_pcr, facts, bytes(32))
    if isinstance(can_predict, str):
        raise SetupRefused(can_predict)
    ownership.check_owner_passphrase(tpm, owner_auth)
    key = rng.secret_bytes(tpm, KEY_SIZE)
    try:
        for check in checks:
            progress(f"Adding the Disk Unlock Key to {check.device}...")
            try:
                if check.duk_slot_used:
                    cryptsetup_ops.kill_slot(check.device, check.duk_slot, recovery)
                cryptsetup_ops.add_key(check.device, recovery, key, check.duk_slot, pbkdf=DUK_PBKDF)
            except CryptsetupError as err:
                raise SetupRefused(f"{check.device}: {err.plain()}") from err
        progress("Measuring the encrypted disks' headers...")
        digests, problems = header_digests([c.device for c in checks], work_dir)
        if problems:
            raise SetupRefused(" ".join(problems))
        header_text = format_header_measurement(digests)
        values = predicted_values(pcrs, modules_pcr, facts, measurement_digest(header_text))
        if isinstance(values, str):
            raise SetupRefused(values)
        progress("Sealing the Disk Unlock Key in the TPM...")
        store(tpm, seal_key(tpm, key, pcrs, values, duk_passphrase), owner_auth)
    finally:
        wipe_buffer(key)
    devices = [KeyDevice(c.device, c.uuid) for c in checks]
    files = {KEY_DEVICES_FILE: format_key_devices(devices), LUKS_HEADER_HASH_FILE: header_text}
    group = next((c.volume_group for c in checks if c.volume_group), "")
    if group:  # activated at boot before the headers are measured
        files[KEY_LVM_FILE] = format_key_lvm(group)
    return SetupResult(files, pcrs)
