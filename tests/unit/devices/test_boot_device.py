"""Which block devices are probed for /boot, what counts as a boot
configuration, file system recognition by magic numbers, and the refusal to
mount /boot read-write while its ext4 journal holds changes never applied."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from runtime.devices import boot_device
from runtime.devices.boot_device import (
    BlockDevice,
    candidates,
    ext4_journal_pending,
    filesystem_type,
    has_boot_config,
    journal_pending,
    list_block_devices,
    remount,
)


def test_candidates_are_partitions_and_bare_disks_in_order() -> None:
    devices = [
        BlockDevice("vda", 1 << 20, False, True),
        BlockDevice("vda2", 1 << 15, True, False),
        BlockDevice("vda1", 1 << 18, True, False),
        BlockDevice("vda3", 2048, True, False),  # a BIOS-boot partition: too small
        BlockDevice("vdb", 1 << 16, False, False),  # a file system on the whole disk
        BlockDevice("loop0", 1 << 16, False, False),
        BlockDevice("sr0", 1 << 16, False, False),
    ]
    assert [d.name for d in candidates(devices)] == ["vda1", "vda2", "vdb"]


def test_any_boot_configuration_counts_not_only_grub(tmp_path: Path) -> None:
    assert not has_boot_config(str(tmp_path))
    for relative in (
        "grub/grub.cfg",
        "loader/entries/debian.conf",
        "extlinux/extlinux.conf",
        "syslinux/syslinux.cfg",
        "boot/grub2/grub.cfg",
        "kexec_hashes.txt",
    ):
        root = tmp_path / relative.replace("/", "_")
        (root / relative).parent.mkdir(parents=True)
        (root / relative).write_text("x")
        assert has_boot_config(str(root)), relative


def test_filesystem_magic() -> None:
    ext = bytearray(4096)
    ext[1080:1082] = b"\x53\xef"
    assert filesystem_type(bytes(ext)) == "ext4"
    fat = bytearray(4096)
    fat[510:512] = b"\x55\xaa"
    fat[82:87] = b"FAT32"
    assert filesystem_type(bytes(fat)) == "vfat"
    assert filesystem_type(b"LUKS\xba\xbe" + bytes(100)) == "luks"
    assert filesystem_type(bytes(4096)) is None
    assert filesystem_type(b"") is None


def test_sysfs_listing(tmp_path: Path) -> None:
    for name, size, partition in (("vda", "2097152", False), ("vda1", "196608", True)):
        base = tmp_path / name
        base.mkdir()
        (base / "size").write_text(size + "\n")
        if partition:
            (base / "partition").write_text("1\n")
    (tmp_path / "vda" / "vda1").mkdir()
    (tmp_path / "vda" / "vda1" / "partition").write_text("1\n")
    (tmp_path / "broken").mkdir()
    found = {d.name: d for d in list_block_devices(str(tmp_path))}
    assert set(found) == {"vda", "vda1"}
    assert found["vda"].has_partitions and not found["vda"].is_partition
    assert found["vda1"].is_partition and found["vda1"].sectors == 196608


def _superblock(incompat: int, magic: bytes = b"\x53\xef") -> bytes:
    head = bytearray(4096)
    head[1024 + 0x38 : 1024 + 0x3A] = magic
    head[1024 + 0x60 : 1024 + 0x64] = incompat.to_bytes(4, "little")
    return bytes(head)


def test_ext4_journal_pending_reads_the_recover_flag() -> None:
    # filetype | extents | 64bit, as mke2fs makes ext4: clean.
    assert not ext4_journal_pending(_superblock(0x2C2))
    assert ext4_journal_pending(_superblock(0x2C2 | 0x4))
    assert ext4_journal_pending(_superblock(0x4))
    assert not ext4_journal_pending(_superblock(0xFFFFFFFB))  # every other flag
    assert not ext4_journal_pending(_superblock(0x4, magic=b"\x00\x00"))  # not ext2/3/4
    assert not ext4_journal_pending(_superblock(0x4)[: 1024 + 0x63])  # short head
    assert ext4_journal_pending(_superblock(0x4)[: 1024 + 0x64])
    assert not ext4_journal_pending(b"")
    assert not ext4_journal_pending(bytes(4096))


def test_journal_pending_on_a_device_that_cannot_be_read(tmp_path: Path) -> None:
    assert not journal_pending(str(tmp_path / "absent"))


class _Mounts:
    """subprocess.run (the module is shared): records mount and umount calls
    instead of running them, runs the rest (e2fsprogs)."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self._run = subprocess.run

    def __call__(self, argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[Any]:
        if argv[0] not in (boot_device.MOUNT, boot_device.UMOUNT):
            return self._run(argv, **kwargs)
        self.calls.append(list(argv))
        return subprocess.CompletedProcess(argv, 0, b"", b"")


def _e2fsprogs() -> None:
    tools = ("debugfs", "mke2fs", "e2fsck")
    if not all(shutil.which(t) or shutil.which(t, path="/usr/sbin:/sbin") for t in tools):
        pytest.skip("e2fsprogs (debugfs, mke2fs, e2fsck) is not installed")


def test_remount_refuses_to_write_over_a_pending_journal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _e2fsprogs()
    from tools import ext4_journal as ej

    image = tmp_path / "boot.ext4"
    kernel = bytes(range(256)) * 64
    ej.make_ext4_image(image, {"/vmlinuz": kernel, "/grub/grub.cfg": b"x\n"})
    mounts = _Mounts()
    monkeypatch.setattr(subprocess, "run", mounts)
    device, target = str(image), str(tmp_path / "boot")

    # A clean journal: read-write is mounted as before.
    assert remount(device, target, writable=True) == ""
    assert mounts.calls[-1][1:] == ["-t", "ext4", "-o", "rw,nodev,nosuid,noexec", device, target]

    ej.make_pending_journal(image, "/vmlinuz", kernel[::-1])
    assert journal_pending(device)
    mounts.calls.clear()
    problem = remount(device, target, writable=True)
    assert "never applied" in problem and "before anything is signed" in problem
    assert mounts.calls == []  # not even unmounted: /boot stays as the owner checked it

    # Read-only (noload) never replays: allowed.
    assert remount(device, target, writable=False) == ""
    read_only = "ro,noload,nodev,nosuid,noexec"
    assert mounts.calls[-1][1:] == ["-t", "ext4", "-o", read_only, device, target]

    # Asked for explicitly (to apply it, then verify again): mounted read-write.
    mounts.calls.clear()
    assert remount(device, target, writable=True, replay_journal=True) == ""
    assert mounts.calls[0][0] == boot_device.UMOUNT
    assert mounts.calls[-1][1:] == ["-t", "ext4", "-o", "rw,nodev,nosuid,noexec", device, target]


def test_remount_of_something_else_is_not_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fat = bytearray(4096)
    fat[510:512] = b"\x55\xaa"
    fat[82:87] = b"FAT32"
    fat[1024 + 0x60] = 0x4  # would be the recover flag on ext4
    device = tmp_path / "fat.img"
    device.write_bytes(bytes(fat))
    mounts = _Mounts()
    monkeypatch.setattr(subprocess, "run", mounts)
    assert remount(str(device), str(tmp_path / "boot"), writable=True) == ""
    assert mounts.calls[-1][1:4] == ["-t", "vfat", "-o"]
