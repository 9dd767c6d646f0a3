"""LVM volume groups: activated so that a LUKS container inside a logical
volume can be found, measured and given the Disk Unlock Key (Heads'
kexec_key_lvm.txt names the group activated before the key's disks exist).

lvm(8) reads the volume group's metadata from the disk, so that metadata is
as hostile as the rest of it: lvm's own parser reads it (no parser of ours),
in a process with a timeout, and only the mappings it makes are used. No udev
runs in the initramfs, so lvm is told not to wait for it and makes the
/dev/mapper nodes itself. A logical volume's stable name is its
device-mapper name, /dev/mapper/<group>-<volume> ('-' inside either name
doubled), a block node, never a link.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
from collections.abc import Sequence
from contextlib import suppress

from runtime.disk.key_lists import is_volume_group, shown

#: where the image puts it (boards with [disk] lvm = true); absolute: PATH is not trusted
LVM = "/sbin/lvm"
#: reading every physical volume's metadata and making the mappings
ACTIVATE_TIMEOUT = 60.0
_REAP_TIMEOUT = 5.0
#: device-mapper's uuid of a logical volume's mapping
_LVM_DM_UUID = "LVM-"
# no udev to sync with or to ask for devices; no dmeventd to monitor; nothing
# written to a disk (metadata read-only, no backups) or to /run (no hints);
# the devices file, if an OS left one on the initramfs's path, is not this
# machine's list
_CONFIG = (
    "activation { udev_sync = 0 udev_rules = 0 monitoring = 0 } "
    'devices { obtain_device_list_from_udev = 0 use_devicesfile = 0 hints = "none" '
    "global_filter = [ @FILTER@ ] } "
    "backup { backup = 0 archive = 0 } "
    "global { event_activation = 0 use_lvmpolld = 0 metadata_read_only = 1 }"
)
#: what a physical volume's path may hold to be put in lvm's device filter
_FILTER_SAFE = re.compile(r"/dev/[A-Za-z0-9_/+.!-]+")
# messages are shown: no translation; nothing else from the caller's environment
_ENV = {
    "PATH": "/sbin:/bin:/usr/sbin:/usr/bin",
    "LC_ALL": "C",
    "LVM_SUPPRESS_FD_WARNINGS": "1",
    "LVM_SUPPRESS_LOCKING_FAILURE_MESSAGES": "1",
}
_MESSAGE_MAX = 200


def available(lvm: str | None = None) -> bool:
    """Whether this image carries lvm (a board's choice)."""
    try:
        mode = os.stat(lvm or LVM).st_mode
    except OSError:
        return False
    return stat.S_ISREG(mode) and bool(mode & 0o111)


def activate(group: str | None, members: Sequence[str], lvm: str | None = None) -> str:
    """Activate ``group``'s logical volumes (every group found when None),
    reading only the physical volumes ``members`` (those on fixed disks: a
    stick's groups are neither parsed nor given /dev names); "" when done,
    else a plain sentence saying why not."""
    if group is not None and not is_volume_group(group):
        return f"{shown(group)} is not an LVM volume group name."
    what = f"the LVM volume group {group}" if group else "the LVM volume groups"
    accepted = [m for m in members if _FILTER_SAFE.fullmatch(m)]
    if not accepted:
        return f"No LVM physical volume on a fixed disk: {what} stayed closed."
    config = _CONFIG.replace("@FILTER@", _filter(accepted))
    args = [lvm or LVM, "vgchange", "--sysinit", "--activate", "y", "--config", config]
    try:
        process = subprocess.Popen(
            [*args, *([group] if group else [])],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=_ENV,
        )
    except OSError as err:
        return f"LVM could not start ({err.strerror}): {what} stayed closed."
    try:
        _, stderr = process.communicate(timeout=ACTIVATE_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        # a process stuck on a stalling disk may not die at once: never wait long for it
        with suppress(subprocess.TimeoutExpired):
            process.communicate(timeout=_REAP_TIMEOUT)
        return f"Activating {what} did not finish within {ACTIVATE_TIMEOUT:g} s."
    if process.returncode == 0:
        return ""
    return f"{what[0].upper()}{what[1:]} could not be activated: {_message(stderr)}"


def _filter(paths: Sequence[str]) -> str:
    """lvm's filter: each path accepted exactly ('.' and '+' bracketed, the
    only regular-expression characters such a path has), everything else
    rejected."""
    exact = [p.replace(".", "[.]").replace("+", "[+]") for p in paths]
    return ", ".join([*(f'"a|^{p}$|"' for p in exact), '"r|.*|"'])


def _message(stderr: bytes) -> str:
    """lvm's last error line, printable and short (it may quote disk names)."""
    lines = [ln.strip() for ln in stderr.decode("ascii", "replace").splitlines() if ln.strip()]
    last = lines[-1] if lines else "no reason given"
    printable = "".join(c if c.isprintable() else "?" for c in last)[:_MESSAGE_MAX]
    return printable.rstrip(".") + "."


def split_mapper_name(name: str) -> tuple[str, str] | None:
    """(group, volume) from a logical volume's device-mapper name, which
    joins them with one '-' and doubles each '-' inside them; None when the
    name is not of that form."""
    for at, char in enumerate(name):
        if char != "-":
            continue
        # a run of dashes: an odd-length run ends in the separator
        run_start = at
        while run_start > 0 and name[run_start - 1] == "-":
            run_start -= 1
        if (at - run_start) % 2 == 0 and (at + 1 == len(name) or name[at + 1] != "-"):
            group, volume = name[:at].replace("--", "-"), name[at + 1 :].replace("--", "-")
            if is_volume_group(group) and volume and is_volume_group(volume):
                return group, volume
            return None
    return None


def volume_group_of_mapping(dm_uuid: str | None, dm_name: str | None) -> str:
    """The volume group of a device-mapper mapping ("" when it is not a
    logical volume), from its sysfs dm/uuid and dm/name."""
    if not dm_uuid or not dm_uuid.startswith(_LVM_DM_UUID) or not dm_name:
        return ""
    parts = split_mapper_name(dm_name.strip())
    return parts[0] if parts else ""
