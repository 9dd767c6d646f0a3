"""Every boot, the LUKS headers into PCR 6, as Heads measures them before it
unseals the Disk Unlock Key: each header's `cryptsetup luksHeaderBackup`
hashed, the `sha256sum` lines of those backups (Heads' luksDump.txt) made,
and PCR 6 extended with that text's hash.

Which headers: the DUK's devices when /boot names them (kexec_key_devices.txt),
so a USB stick carrying LUKS changes nothing; otherwise every LUKS container
found on a fixed disk, so that the OS can seal its own secrets to PCR 6 too
(Heads measures only when a DUK is set up). None found: PCR 6 is left alone.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from runtime import bootlog
from runtime.disk.cryptsetup_ops import CryptsetupError, header_backup_digest
from runtime.disk.duk_policy import LUKS_HEADER_PCR
from runtime.disk.key_lists import (
    KEY_DEVICES_FILE,
    MAX_FILE_BYTES,
    KeyListError,
    format_header_measurement,
    parse_key_devices,
)
from runtime.disk.luks_devices import SYS_BLOCK, find_luks_devices, is_removable
from runtime.error_detail import plain
from runtime.integrity.safe_read import UnsafeFile, read_regular
from runtime.tpm.connection import Tpm
from runtime.tpm.pcrs import extend

#: RAM (the initramfs's own file system): a LUKS2 backup is 16 MiB, more than
#: the secrets' tmpfs holds, and it is no secret (the disk holds the same bytes)
BACKUP_WORK_DIR = "/tmp"  # noqa: S108
EVENT_TYPE = "luks-headers"


@dataclass(frozen=True)
class HeaderMeasurement:
    """``text``: Heads' luksDump.txt for the devices measured (empty: none, and
    PCR 6 was not extended); ``problems``: a plain line per device that could
    not be measured (it is left out of the text, so the DUK will not unseal)."""

    devices: tuple[str, ...]
    text: bytes
    problems: tuple[str, ...]


def fixed_disk_containers(sys_block: str = SYS_BLOCK) -> list[str]:
    """The LUKS containers on disks that are not removable (USB sticks, cards)."""
    return [d.path for d in find_luks_devices(sys_block) if not is_removable(d.name, sys_block)]


@dataclass(frozen=True)
class DeviceChoice:
    devices: tuple[str, ...]
    #: where the list came from, in words; a problem with /boot's list when any
    source: str
    problem: str = ""


def devices_to_measure(boot_dir: str | None, sys_block: str = SYS_BLOCK) -> DeviceChoice:
    """The DUK's devices from /boot's list, or every fixed disk's container."""
    problem = ""
    if boot_dir:
        path = os.path.join(boot_dir, KEY_DEVICES_FILE)
        try:
            listed = parse_key_devices(read_regular(path, MAX_FILE_BYTES))
            return DeviceChoice(tuple(d.device for d in listed), f"/boot's {KEY_DEVICES_FILE}")
        except FileNotFoundError:
            pass
        except (UnsafeFile, KeyListError) as err:
            # measured all the same: the DUK will not unseal, and says why
            problem = plain("luks-devices", err, f"{KEY_DEVICES_FILE} on /boot is unusable: {err}")
    fixed = tuple(fixed_disk_containers(sys_block))
    return DeviceChoice(fixed, "the LUKS containers on fixed disks", problem)


def header_digests(
    devices: Sequence[str], work_dir: str = BACKUP_WORK_DIR
) -> tuple[dict[str, bytes], list[str]]:
    """Each device's header backup digest, and a plain line per device that failed."""
    digests: dict[str, bytes] = {}
    problems: list[str] = []
    for device in devices:
        try:
            digests[device] = header_backup_digest(device, work_dir)
        except CryptsetupError as err:
            problems.append(plain("luks-header", err, f"{device}: {err.plain()}"))
    return digests, problems


def measure_headers(
    tpm: Tpm | None, devices: Sequence[str], work_dir: str = BACKUP_WORK_DIR
) -> HeaderMeasurement:
    """Hash ``devices``' headers and extend PCR 6 with the text (when a TPM is there)."""
    digests, problems = header_digests(devices, work_dir)
    try:
        text = format_header_measurement(digests) if digests else b""
    except KeyListError as err:  # two names that Heads' backup names cannot tell apart
        problems.append(plain("luks-header", err, str(err)))
        digests, text = {}, b""
    if text and tpm is not None:
        extend(tpm, LUKS_HEADER_PCR, text, "LUKS headers", EVENT_TYPE)
    bootlog.stage("luks-headers", measured=len(digests), failed=len(problems))
    return HeaderMeasurement(tuple(sorted(digests)), text, tuple(problems))
