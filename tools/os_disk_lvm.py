"""The LVM side of the test OS disk (tools/make_os_disk.py --luks --lvm): a
LUKS container inside an LVM logical volume, the Disk Unlock Key's case that
Heads handles with kexec_key_lvm.txt.

The LVM disk (make_os_disk(luks=True, lvm=True)) is the LUKS disk
(tools/os_disk_luks.py) plus one partition after its containers:

  5. "osvg" (25 MiB, GPT type Linux LVM): an LVM2 physical volume, the only
     one of volume group `osvg`, whose one logical volume `cryptvault` (all
     of its 6 extents of 4 MiB) holds the LUKS2 container "cryptvault":
     DISK_RECOVERY_PASSPHRASE in key slot 0, the extra key in 31 when given,
     a fixed UUID, fast PBKDF2, as the other containers.

No lvm program, loop device or device-mapper makes it: what precedes the
physical volume's first extent (pe_start: the label in sector 1, the
metadata area with the group's text metadata) is a template made once by
tools/make_lvm_template.py (root, the host's lvm2, a loop device) and kept
xz-compressed in tools/data/. The disk gets the template at the partition's
start and the container, formatted by cryptsetup in an image file like the
others, at the partition's start + pe_start. The physical volume's recorded
size is the partition's, as lvm requires. The template's UUIDs, host name and
time are those of its making: every disk gets the same committed bytes (the
disk is not reproducible anyway: LUKS salts).

In a guest with the disk as the first virtio disk the physical volume is
/dev/vda5 and, once the group is active, the logical volume is
/dev/mapper/osvg-cryptvault (the node lvm makes itself when no udev runs;
LuksContainer.guest_device) and /dev/dm-<n> (the kernel's name, in devtmpfs;
n counts the mappings made before it: 0 in the target, which activates the
group before it opens anything).

The LVM disk's target initrd is the LUKS target with Debian's lvm (lvm2's
/sbin/lvm and its shared libraries, from the locked pool) and TARGET_LVM_*
in its /init: before reading the crypttab files it activates every volume
group with `lvm vgchange -a ay --sysinit` (no udev, no dmeventd, no lvmpolld,
no metadata backups), then also looks for UUID= sources among /dev/mapper/*
and /dev/dm-*. Its OS's crypttab names cryptvault too.
"""

from __future__ import annotations

import hashlib
import lzma
from pathlib import Path

from tools.os_disk_common import (
    LUKS_DATA_OFFSET,
    LUKS_DATA_SIZE,
    MIB,
    SECTOR,
    LuksContainer,
    OsDiskError,
)

LVM_VG = "osvg"
LVM_LV = "cryptvault"
#: The physical volume's partition: the fifth, after the LUKS disk's four.
LVM_PARTITION = 5
LVM_PART_UUID = "5A3E1D2C-0B0A-4F1E-9D8C-000000000005"
#: The Discoverable Partitions Specification's "Linux LVM" type.
GPT_TYPE_LINUX_LVM = "E6D6D379-F507-44C2-A23C-238F2A3DF928"
LVM_PART_OFFSET = LUKS_DATA_OFFSET + LUKS_DATA_SIZE
#: The physical volume's size, as the template records it: pe_start, then 6
#: extents of LVM_EXTENT_SIZE, no space left over.
LVM_PART_SIZE = 25 * MIB
LVM_EXTENT_SIZE = 4 * MIB
#: Facts of the template (tools/make_lvm_template.py prints them): where the
#: first extent starts in the physical volume, the logical volume's size (it
#: starts at extent 0), the physical volume's UUID (in its label) and the
#: SHA-256 of the decompressed template.
LVM_PE_START = 1048576
LVM_LV_SIZE = 25165824
LVM_PV_UUID = "15xccS-kIAC-gLzI-oqFU-cCEC-Jsbg-jtU0S4"
LVM_TEMPLATE_SHA256 = "c0f3b48a1df883f904cf7e10f02bc69117d2983ba0a0631b761979ed1f3767b6"
LVM_TEMPLATE = Path(__file__).resolve().parent / "data" / "osvg-pv-template.xz"
#: 1 MiB at the end leaves room for the backup GPT (33 sectors).
LVM_DISK_SIZE = LVM_PART_OFFSET + LVM_PART_SIZE + 1 * MIB

LUKS_VAULT = LuksContainer(
    name=LVM_LV,
    version=2,
    uuid="0b007b00-7b00-4b00-8b00-00000000c004",
    partition=LVM_PARTITION,
    part_uuid=LVM_PART_UUID,
    offset=LVM_PART_OFFSET + LVM_PE_START,
    size=LVM_LV_SIZE,
    duk_slot=31,
    volume=f"{LVM_VG}/{LVM_LV}",
)

#: The locked packages the LVM target's lvm and its libraries come from, in
#: addition to the LUKS target's (tools/os_disk_luks.py CRYPTSETUP_PACKAGES).
LVM_PACKAGES = (
    "lvm2",
    "libdevmapper-event1.02.1",
    "libaio1",
    "libedit2",
    "libbsd0",
    "libmd0",
    "libtinfo6",
    "libsystemd0",
    "libcap2",
    "libgcrypt20",
    "libgpg-error0",
    "liblzma5",
    "libzstd1",
    "liblz4-1",
)
LVM_IMAGE_PATH = "sbin/lvm"
#: LVM's linear mappings are device-mapper's own (dm-linear is part of
#: dm_mod); dm_crypt needs it too, named here so no change there drops it.
LVM_TARGET_MODULES = ("dm_mod",)

#: The target's lvm settings (lvm.conf(5) of lvm2 2.03.16), as the firmware's
#: (runtime/disk/lvm_groups.py): no udev to wait for or to ask for devices
#: (lvm makes the /dev/mapper nodes), no dmeventd, no devices file, no hints
#: or backups to write, no lvmpolld; locks in the initrd's own /run.
LVM_TARGET_CONFIG = (
    "activation { udev_sync = 0 udev_rules = 0 monitoring = 0 } "
    'devices { obtain_device_list_from_udev = 0 use_devicesfile = 0 hints = "none" } '
    "backup { backup = 0 archive = 0 } "
    'global { locking_dir = "/run/lock/lvm" event_activation = 0 use_lvmpolld = 0 }'
)

#: In the LVM target's /init, after the LUKS functions and before the
#: crypttab files are read: activate every volume group, as Debian's
#: initramfs does before cryptsetup looks for its sources.
TARGET_LVM_ACTIVATE = f"""# The LVM disk's part: every volume group active before the crypttab
# sources are looked for.
lvm_config='{LVM_TARGET_CONFIG}'
tries=0
while :; do
    result=$(LVM_SUPPRESS_FD_WARNINGS=1 /sbin/lvm vgchange -a ay --sysinit \\
        --config "$lvm_config" </dev/null 2>&1)
    status=$?
    groups=$(echo "$result" |
        /bin/busybox sed -n 's/.* in volume group "\\(.*\\)" now active$/\\1/p')
    # virtio_blk may still be reading the partition table: a few tries
    if [ "$status" -ne 0 ] || [ -n "$groups" ] || [ "$tries" -ge 4 ]; then
        break
    fi
    tries=$((tries + 1))
    /bin/busybox sleep 1
done
if [ "$status" -ne 0 ]; then
    # the last line but the summary ("0 logical volume(s) ... now active")
    reason=$(echo "$result" | /bin/busybox grep -v ' now active$' |
        /bin/busybox tail -n 1 | /bin/busybox sed 's/^ *//')
    echo "OS-TARGET: lvm not activated lvm exit $status: $reason"
elif [ -z "$groups" ]; then
    echo "OS-TARGET: lvm not activated no volume group"
else
    for group in $groups; do
        echo "OS-TARGET: lvm $group active"
    done
fi
"""
#: In resolve()'s UUID= case, before the block devices of sysfs: a logical
#: volume by the names lvm and the kernel give it.
TARGET_LVM_SOURCES = """\
        for dev in /dev/mapper/* /dev/dm-*; do
            [ -b "$dev" ] || continue
            if found=$(luks_uuid "$dev") && [ "$found" = "${1#UUID=}" ]; then
                echo "$dev"
                return 0
            fi
        done
"""


def lvm_partition_line() -> str:
    """The physical volume's partition, as a line of an sfdisk script."""
    return (
        f"start={LVM_PART_OFFSET // SECTOR}, size={LVM_PART_SIZE // SECTOR}, "
        f'type={GPT_TYPE_LINUX_LVM}, uuid={LVM_PART_UUID}, name="{LVM_VG}"\n'
    )


def pv_template(path: Path = LVM_TEMPLATE) -> bytes:
    """The physical volume's first LVM_PE_START bytes, checked against the
    pinned hash (the constants here describe that template and no other)."""
    try:
        data = lzma.decompress(path.read_bytes(), format=lzma.FORMAT_XZ)
    except (OSError, lzma.LZMAError) as err:
        raise OsDiskError(f"the LVM template {path}: {err}") from None
    if len(data) != LVM_PE_START or hashlib.sha256(data).hexdigest() != LVM_TEMPLATE_SHA256:
        raise OsDiskError(
            f"the LVM template {path} is not the one tools/os_disk_lvm.py describes: "
            "regenerate it with tools/make_lvm_template.py and pin what it prints"
        )
    return data


def write_pv_template(disk: Path) -> None:
    """The template at the physical volume's partition (the container goes
    at LUKS_VAULT.offset, written by the caller)."""
    template = pv_template()
    with disk.open("r+b") as f:
        f.seek(LVM_PART_OFFSET)
        f.write(template)
