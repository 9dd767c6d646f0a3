"""Find the /boot partition: the first partition, in disk order, that holds a
boot configuration of any kind (GRUB, systemd-boot / BLS entries, syslinux,
extlinux, isolinux, or this runtime's own signed hash lists) - not only GRUB,
a known complaint about Heads (#1918).

Partitions are probed read-only: ext2/3/4 are mounted with ``noload`` so a
journal is never replayed (a probe must not write to the disk). So what the
owner verifies is the file system without its journal; a read-write mount
would replay the journal and could change /boot after it was checked, which
is why ``remount`` refuses while a journal waits to be applied (``writable``,
for a signing, applies it first). The pure parts (which block devices to try,
what counts as a boot configuration) are separate from the probing, for tests.
"""

from __future__ import annotations

import contextlib
import glob
import os
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from runtime import bootlog
from runtime.error_detail import plain

SYS_BLOCK = "/sys/class/block"
BOOT_MOUNTPOINT = "/boot"
MIN_SECTORS = 4096  # 2 MiB: smaller partitions are BIOS-boot or firmware areas
MOUNT_TIMEOUT = 20
#: a device node, a set-uid bit or a program on /boot means nothing to the firmware
SAFE_OPTIONS = ",nodev,nosuid,noexec"
# busybox applets in the image (/init puts /bin first on PATH too).
MOUNT = "/bin/mount"
UMOUNT = "/bin/umount"
# Device names never holding /boot: RAM disks, loop devices, optical drives.
_SKIPPED_PREFIXES = ("ram", "loop", "sr", "zram", "dm-", "md")

# A /boot holds at least one of these (relative to the partition's root, or
# under boot/ when /boot is a directory of the root file system).
BOOT_CONFIG_GLOBS = (
    "grub/grub.cfg",
    "grub2/grub.cfg",
    "loader/entries/*.conf",
    "syslinux/syslinux.cfg",
    "syslinux.cfg",
    "extlinux/extlinux.conf",
    "extlinux.conf",
    "isolinux/isolinux.cfg",
    "EFI/*/grub.cfg",
    "kexec*.txt",
)
LUKS_MAGIC = b"LUKS\xba\xbe"

# The ext2/3/4 superblock: 1024 bytes into the partition, little-endian fields.
EXT4_SUPERBLOCK = 1024
EXT4_MAGIC_OFFSET = 0x38  # s_magic
EXT4_MAGIC = b"\x53\xef"
EXT4_INCOMPAT_OFFSET = 0x60  # s_feature_incompat
EXT4_INCOMPAT_RECOVER = 0x4  # the journal holds transactions not yet applied


@dataclass(frozen=True)
class BlockDevice:
    name: str  # e.g. vda1
    sectors: int
    is_partition: bool
    has_partitions: bool

    @property
    def path(self) -> str:
        return "/dev/" + self.name


@dataclass(frozen=True)
class BootSearch:
    device: str = ""
    mountpoint: str = ""
    problem: str = ""
    encrypted_seen: bool = False
    tried: tuple[str, ...] = ()
    candidates: int = 0  # block devices probed (0: no disk at all)


def candidates(devices: Iterable[BlockDevice]) -> list[BlockDevice]:
    """The devices worth probing, in order: partitions, and whole disks that
    have no partition table (a file system on the bare disk)."""
    chosen = []
    for dev in sorted(devices, key=lambda d: d.name):
        if dev.name.startswith(_SKIPPED_PREFIXES) or dev.sectors < MIN_SECTORS:
            continue
        if dev.has_partitions:
            continue
        chosen.append(dev)
    return chosen


def has_boot_config(root: str) -> bool:
    for pattern in BOOT_CONFIG_GLOBS:
        for base in (root, os.path.join(root, "boot")):
            if glob.glob(os.path.join(base, pattern)):
                return True
    return False


def list_block_devices(sys_block: str = SYS_BLOCK) -> list[BlockDevice]:
    devices = []
    try:
        names = os.listdir(sys_block)
    except OSError:
        return []
    for name in names:
        base = os.path.join(sys_block, name)
        try:
            with open(os.path.join(base, "size")) as f:
                sectors = int(f.read().strip() or 0)
        except (OSError, ValueError):
            continue
        is_partition = os.path.exists(os.path.join(base, "partition"))
        has_partitions = any(
            os.path.exists(os.path.join(base, child, "partition"))
            for child in _children(base, name)
        )
        devices.append(BlockDevice(name, sectors, is_partition, has_partitions))
    return devices


def _children(base: str, name: str) -> list[str]:
    try:
        return [entry for entry in os.listdir(base) if entry.startswith(name)]
    except OSError:
        return []


def filesystem_type(head: bytes) -> str | None:
    """The file system in a partition's first 4 KiB, by its magic number."""
    if head.startswith(LUKS_MAGIC):
        return "luks"
    if len(head) >= 1082 and head[1080:1082] == b"\x53\xef":
        return "ext4"  # the ext4 driver mounts ext2 and ext3 as well
    if (
        len(head) >= 512
        and head[510:512] == b"\x55\xaa"
        and (head[54:59] == b"FAT12" or head[54:59] == b"FAT16" or head[82:87] == b"FAT32")
    ):
        return "vfat"
    return None


def ext4_journal_pending(head: bytes) -> bool:
    """Whether the ext2/3/4 file system in a partition's first 4 KiB has a
    journal that needs recovery: changes a read-write mount would apply."""
    sb = head[EXT4_SUPERBLOCK : EXT4_SUPERBLOCK + EXT4_INCOMPAT_OFFSET + 4]
    if len(sb) < EXT4_INCOMPAT_OFFSET + 4:
        return False
    if sb[EXT4_MAGIC_OFFSET : EXT4_MAGIC_OFFSET + 2] != EXT4_MAGIC:
        return False
    incompat = int.from_bytes(sb[EXT4_INCOMPAT_OFFSET:], "little")
    return bool(incompat & EXT4_INCOMPAT_RECOVER)


def journal_pending(device: str) -> bool:
    """Whether ``device`` holds ext2/3/4 with a journal waiting to be replayed
    (False when it cannot be read)."""
    return ext4_journal_pending(_read_head(device))


def _read_head(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(4096)
    except OSError:
        return b""


def _read_only(fstype: str) -> str:
    # noload: an ext4 journal is not replayed, so what is read is what is on the disk
    return "ro,noload" if fstype == "ext4" else "ro"


def _run_mount(device: str, fstype: str, options: str, target: str) -> None:
    """mount(8) with ``options`` and the runtime's safe ones; OSError or
    SubprocessError when it fails."""
    subprocess.run(
        [MOUNT, "-t", fstype, "-o", options + SAFE_OPTIONS, device, target],
        check=True,
        timeout=MOUNT_TIMEOUT,
        capture_output=True,
    )


def _mount(device: str, fstype: str, target: str) -> bool:
    os.makedirs(target, exist_ok=True)
    try:
        _run_mount(device, fstype, _read_only(fstype), target)
    except (OSError, subprocess.SubprocessError):
        return False
    return True


def mount_read_only(device: str, target: str) -> str:
    """Mount a partition read-only (ext4 without replaying its journal), as
    /boot is probed; the reason in plain words when that cannot be done."""
    fstype = filesystem_type(_read_head(device))
    if fstype == "luks":
        return f"{device} is encrypted (LUKS): it cannot be read without its passphrase."
    if fstype is None:
        return f"{device} holds no file system this runtime can read (ext2/3/4 or FAT)."
    if not _mount(device, fstype, target):
        return (
            f"{device} could not be mounted: the disk may be failing, or its file system "
            "needs a check."
        )
    return ""


def remount(device: str, target: str, writable: bool, *, replay_journal: bool = False) -> str:
    """Mount /boot again, read-write (to sign it) or read-only as probed; the
    reason when that failed. ext4's `noload` mount cannot become writable,
    so it is unmounted and mounted anew.

    A read-write ext4 mount replays the journal, so while the journal holds
    changes that were never applied, read-write is refused (and /boot stays
    mounted as it was) unless ``replay_journal``: those changes were not in
    what the owner verified, and signing after them would sign unseen
    content. A caller passes ``replay_journal=True`` only to apply them and
    then verify /boot again. (The flag is read before unmounting: a
    read-write ext4 mount sets it while mounted, so the check is made from
    the runtime's read-only mount, as every caller has it.)"""
    head = _read_head(device)
    fstype = filesystem_type(head)
    if fstype is None:
        return f"{device} no longer holds a file system this runtime can mount."
    if writable and fstype == "ext4" and ext4_journal_pending(head) and not replay_journal:
        return (
            f"/boot ({device}) has a journal holding changes that were never applied: "
            "writing to /boot would apply them now, after it was checked, so they could "
            "change files you did not see. They must be applied and shown to you before "
            "anything is signed; /boot was left read-only."
        )
    unmount(target)
    try:
        _run_mount(device, fstype, "rw" if writable else _read_only(fstype), target)
    except (OSError, subprocess.SubprocessError) as err:
        # mount's own words (and its command line) go to the log only
        how = "read-write" if writable else "again"
        return plain(
            "boot-remount",
            err,
            (
                f"/boot ({device}) could not be mounted {how}: the disk may be failing, or its "
                "file system needs a check. Restart and try again."
            ),
        )
    return ""


@contextlib.contextmanager
def writable(device: str, target: str) -> Iterator[None]:
    """/boot mounted read-write for the duration, then read-only (noload)
    again; OSError, in plain words, when it cannot be made writable."""
    # a pending journal is replayed here: the signing then refuses any change
    # the owner was not shown (sign_boot's check against the report)
    problem = remount(device, target, writable=True, replay_journal=True)
    if problem:
        raise OSError(problem)
    try:
        yield
    finally:
        os.sync()
        problem = remount(device, target, writable=False)
        if problem:
            bootlog.stage("boot-remount-failed", problem=problem)


def unmount(target: str) -> None:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        subprocess.run([UMOUNT, target], check=True, timeout=MOUNT_TIMEOUT, capture_output=True)


def find_boot(
    preferred: str = "", sys_block: str = SYS_BLOCK, mountpoint: str = BOOT_MOUNTPOINT
) -> BootSearch:
    """Mount the /boot partition read-only at ``mountpoint``. ``preferred``
    (CONFIG_BOOT_DEV) is the only device tried when set."""
    if os.path.ismount(mountpoint):
        # Mounted by an earlier run of the runtime in this boot (it starts again
        # after a recovery shell): probe afresh, the disk may have changed.
        unmount(mountpoint)
    if preferred:
        paths = [preferred]
    else:
        paths = [dev.path for dev in candidates(list_block_devices(sys_block))]
    if not paths:
        return BootSearch(problem="No disk was found (no block device with partitions).")
    encrypted = False
    tried = []
    for path in paths:
        fstype = filesystem_type(_read_head(path))
        if fstype == "luks":
            encrypted = True
            continue
        if fstype is None:
            continue
        tried.append(path)
        if not _mount(path, fstype, mountpoint):
            continue
        if has_boot_config(mountpoint):
            return BootSearch(
                path,
                mountpoint,
                encrypted_seen=encrypted,
                tried=tuple(tried),
                candidates=len(paths),
            )
        unmount(mountpoint)
    where = ", ".join(tried) if tried else "none had a file system this runtime can read"
    return BootSearch(
        problem=f"No partition holds a boot configuration (tried: {where}).",
        encrypted_seen=encrypted,
        tried=tuple(tried),
        candidates=len(paths),
    )
