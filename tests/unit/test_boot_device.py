"""Which block devices are probed for /boot, what counts as a boot
configuration, and file system recognition by magic numbers."""

from __future__ import annotations

from pathlib import Path

from runtime.devices.boot_device import (
    BlockDevice,
    candidates,
    filesystem_type,
    has_boot_config,
    list_block_devices,
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
    for relative in ("grub/grub.cfg", "loader/entries/debian.conf", "extlinux/extlinux.conf",
                     "syslinux/syslinux.cfg", "boot/grub2/grub.cfg", "kexec_hashes.txt"):
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
