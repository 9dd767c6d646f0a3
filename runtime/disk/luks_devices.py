"""Finding the LUKS containers among the block devices, from sysfs.

No udev daemon runs in the initramfs. pyudev's enumeration works without one
(libudev walks /sys itself), but with no udev database it knows nothing sysfs
does not, and it cannot be pointed at a test tree, so sysfs is read directly.
Each candidate's first 4 KiB are read (never blocking, no link followed) and
identified by luks_header. Skipped: the plaintext side of opened containers
(dm-crypt), loop devices with no file behind them, RAM disks, empty drives,
and whatever cannot be read.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass

from runtime.disk.luks_header import HEAD_SIZE, LuksHeaderError, identify
from runtime.disk.lvm_groups import volume_group_of_mapping

SYS_BLOCK = "/sys/class/block"
SYS_DEV_BLOCK = "/sys/dev/block"
DEV_ROOT = "/dev"
SECTOR = 512
#: never follow a link, never block on a FIFO, never become a controlling tty
OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY
_RAM_PREFIXES = ("ram", "zram")
#: dm-crypt names its mappings' dm/uuid so: the opened container's plaintext
_DM_CRYPT_UUID = "CRYPT-"
#: a logical volume's dm/uuid: "LVM-", its group's and its own 32-character
#: ids; longer ones are LVM's hidden layers (-real, -cow, -tpool ...), which
#: may carry the same bytes as the volume itself
_LVM_UUID_LENGTH = 68
#: sysfs attributes are short; a longer one is not what it claims to be
_ATTR_MAX = 4096


class UnsafeDevice(OSError):
    """Not opened or not read: not a block device (a link, a FIFO, a directory);
    str() is a plain sentence."""

    def __str__(self) -> str:
        return str(self.strerror or super().__str__())


@dataclass(frozen=True)
class LuksDevice:
    path: str  # e.g. /dev/sda2
    name: str  # the kernel's name, e.g. sda2
    version: int  # 1 or 2
    uuid: str
    size: int  # bytes
    label: str  # LUKS2's label ("" for none)
    is_partition: bool
    #: the LVM volume group whose logical volume this is ("" for none)
    volume_group: str = ""


@dataclass(frozen=True)
class LuksScan:
    found: tuple[LuksDevice, ...]
    #: (device path, plain reason): LUKS magic, but a header that is refused
    refused: tuple[tuple[str, str], ...]
    #: LVM physical volumes: a LUKS container inside one of their logical
    #: volumes needs LVM to be found and opened
    lvm_members: tuple[str, ...] = ()
    #: those of them on disks that are not removable (the only ones activated)
    lvm_fixed: tuple[str, ...] = ()


#: lvm(8)'s physical volume label: in one of the first four sectors, "LABELONE"
#: and, 24 bytes further, the type "LVM2 001"
_LVM_LABEL, _LVM_TYPE, _LVM_TYPE_AT, _LVM_LABEL_SECTORS = b"LABELONE", b"LVM2 001", 24, 4


def is_lvm_member(head: bytes) -> bool:
    """Whether a device's first sectors carry an LVM2 physical volume label
    (its own sector number in it, as lvm checks; the CRC is not: this only
    names what cannot be offered, nothing is opened on its word)."""
    for sector in range(_LVM_LABEL_SECTORS):
        at = sector * SECTOR
        if head[at : at + len(_LVM_LABEL)] != _LVM_LABEL:
            continue
        if int.from_bytes(head[at + 8 : at + 16], "little") != sector:
            continue
        if head[at + _LVM_TYPE_AT : at + _LVM_TYPE_AT + len(_LVM_TYPE)] == _LVM_TYPE:
            return True
    return False


def read_head(path: str, size: int = HEAD_SIZE) -> bytes:
    """The first ``size`` bytes (fewer at the end of the device) of a block
    device, or of a regular file standing in for one (tests, images).
    FileNotFoundError when it is gone; UnsafeDevice for anything else.
    A name from /boot may be any node: a character device is not even opened
    (opening a watchdog arms it, a tty's lines may change)."""
    try:
        kind = os.lstat(path).st_mode
    except FileNotFoundError:
        raise
    except OSError as err:
        raise UnsafeDevice(err.errno, f"{path} cannot be looked at ({err.strerror})") from err
    if stat.S_ISLNK(kind):
        raise UnsafeDevice(errno.ELOOP, f"{path} is a symbolic link, not a disk")
    if not (stat.S_ISBLK(kind) or stat.S_ISREG(kind)):
        raise UnsafeDevice(errno.EINVAL, f"{path} is not a disk")
    try:
        fd = os.open(path, OPEN_FLAGS)
    except OSError as err:
        if isinstance(err, FileNotFoundError):
            raise
        if err.errno == errno.ELOOP:
            raise UnsafeDevice(errno.ELOOP, f"{path} is a symbolic link, not a disk") from err
        if not _disk_like(path):  # a socket says ENXIO, not what it is
            raise UnsafeDevice(errno.EINVAL, f"{path} is not a disk") from err
        raise UnsafeDevice(err.errno, f"{path} cannot be opened ({err.strerror})") from err
    try:
        mode = os.fstat(fd).st_mode
        if not (stat.S_ISBLK(mode) or stat.S_ISREG(mode)):
            raise UnsafeDevice(errno.EINVAL, f"{path} is not a disk")
        chunks: list[bytes] = []
        got = 0
        while got < size:
            chunk = os.pread(fd, size - got, got)
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)
    except UnsafeDevice:
        raise
    except OSError as err:
        raise UnsafeDevice(err.errno, f"{path} cannot be read ({err.strerror})") from err
    finally:
        os.close(fd)


def _disk_like(path: str) -> bool:
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return True  # nothing more to say than the open's error
    return stat.S_ISBLK(mode) or stat.S_ISREG(mode)


def scan(sys_block: str = SYS_BLOCK, dev_root: str = DEV_ROOT) -> LuksScan:
    """Every LUKS container among the block devices (whole disks and
    partitions), in name order, and those whose LUKS header is refused."""
    found: list[LuksDevice] = []
    refused: list[tuple[str, str]] = []
    lvm: list[str] = []
    lvm_fixed: list[str] = []
    for name in _names(sys_block):
        base = os.path.join(sys_block, name)
        uevent = _uevent(base)
        if _skipped(base, name, uevent):
            continue
        sectors = _int_attr(base, "size")
        node = _dev_name(uevent, name)
        if sectors is None or sectors <= 0 or node is None:
            continue
        path = os.path.join(dev_root, node)
        dm_uuid = (_read_attr(base, "dm/uuid") or "").strip()
        dm_name = (_read_attr(base, "dm/name") or "").strip()
        group = volume_group_of_mapping(dm_uuid, dm_name)
        if group:
            mapper = _mapper_node(dm_name, uevent, dev_root)
            if mapper is None or len(dm_uuid) > _LVM_UUID_LENGTH:
                continue  # dm-N is no name to sign: it changes with what else is active
            path = mapper
        try:
            head = read_head(path)
            header = identify(head)
        except OSError:
            continue  # gone since the listing, or not a disk, or unreadable
        except LuksHeaderError as err:
            refused.append((path, str(err)))
            continue
        if header is None and is_lvm_member(head):
            lvm.append(path)
            if not is_removable(name, sys_block):
                lvm_fixed.append(path)
        if header is None or not header.primary:
            continue
        is_partition = uevent.get("DEVTYPE") == "partition" or os.path.exists(
            os.path.join(base, "partition")
        )
        found.append(
            LuksDevice(
                path=path,
                name=name,
                version=header.version,
                uuid=header.uuid,
                size=sectors * SECTOR,
                label=header.label,
                is_partition=is_partition,
                volume_group=group,
            )
        )
    return LuksScan(tuple(found), tuple(refused), tuple(lvm), tuple(lvm_fixed))


def find_luks_devices(sys_block: str = SYS_BLOCK, dev_root: str = DEV_ROOT) -> list[LuksDevice]:
    """The LUKS containers ``scan`` finds."""
    return list(scan(sys_block, dev_root).found)


def _names(sys_block: str) -> list[str]:
    try:
        names = os.listdir(sys_block)
    except OSError:
        return []
    # a kernel name is one path component; anything else is not from the kernel
    return sorted(n for n in names if n not in (".", "..") and "/" not in n and n.isprintable())


def _skipped(base: str, name: str, uevent: dict[str, str]) -> bool:
    if name.startswith(_RAM_PREFIXES):
        return True
    if name.startswith("loop") and not os.path.exists(os.path.join(base, "loop", "backing_file")):
        return True
    if (_read_attr(base, "hidden") or "").strip() == "1":
        return True  # e.g. an NVMe path behind a multipath node
    dm_uuid = _read_attr(base, "dm/uuid")
    return dm_uuid is not None and dm_uuid.startswith(_DM_CRYPT_UUID)


def is_removable(name: str, sys_block: str = SYS_BLOCK) -> bool:
    """Whether the block device ``name`` is on a removable disk (a USB stick,
    a card); a partition's own directory has no "removable": its disk's does."""
    base = os.path.realpath(os.path.join(sys_block, name))
    for folder in (base, os.path.dirname(base)):
        text = _read_attr(folder, "removable")
        if text is not None:
            return text.strip() == "1"
    return False


def _mapper_node(name: str, uevent: dict[str, str], dev_root: str) -> str | None:
    """A logical volume's /dev/mapper node, from its device-mapper ``name``
    (it stays from boot to boot; dm-N's number does not), when it is the
    block node of this very device."""
    if not name or "/" in name or name in (".", "..") or not name.isprintable():
        return None
    path = os.path.join(dev_root, "mapper", name)
    try:
        info = os.lstat(path)
    except OSError:
        return None
    wanted = (uevent.get("MAJOR", ""), uevent.get("MINOR", ""))
    found = (str(os.major(info.st_rdev)), str(os.minor(info.st_rdev)))
    return path if stat.S_ISBLK(info.st_mode) and found == wanted else None


def volume_group_of(device: str, sys_dev_block: str = SYS_DEV_BLOCK) -> str:
    """The volume group whose logical volume ``device`` (a block node) is; ""
    for anything else."""
    try:
        info = os.stat(device)
    except OSError:
        return ""
    if not stat.S_ISBLK(info.st_mode):
        return ""
    base = os.path.join(sys_dev_block, f"{os.major(info.st_rdev)}:{os.minor(info.st_rdev)}")
    return volume_group_of_mapping(_read_attr(base, "dm/uuid"), _read_attr(base, "dm/name"))


def _dev_name(uevent: dict[str, str], name: str) -> str | None:
    """The node's name under /dev: uevent's DEVNAME (cciss!c0d0 is cciss/c0d0)."""
    node = uevent.get("DEVNAME", name)
    parts = node.split("/")
    if node.startswith("/") or any(p in ("", ".", "..") for p in parts):
        return None
    return node


def _uevent(base: str) -> dict[str, str]:
    text = _read_attr(base, "uevent") or ""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            fields[key] = value
    return fields


def _int_attr(base: str, attr: str) -> int | None:
    text = (_read_attr(base, attr) or "").strip()
    return int(text) if text.isascii() and text.isdigit() else None


def _read_attr(base: str, attr: str) -> str | None:
    try:
        fd = os.open(os.path.join(base, attr), OPEN_FLAGS)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return os.read(fd, _ATTR_MAX).decode("ascii", "replace")
    except OSError:
        return None
    finally:
        os.close(fd)
