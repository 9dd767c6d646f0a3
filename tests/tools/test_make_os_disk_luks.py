"""The LUKS test OS disk (tools/make_os_disk.py --luks), on the host: its
partitions, the two containers (version, UUID, which key opens which slot,
checked by the host's cryptsetup on the extracted partitions: no
device-mapper needed), the LUKS target's initrd (everything its cryptsetup
loads is inside; modules in dependency order), and that the disk without the
option needs no cryptsetup. tests/e2e/test_os_disk_luks_qemu.py boots it."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.host_programs import sbin
from tests.support.luks_images import key_verdict
from tools import make_os_disk as osd
from tools.initrd.cpio import Entry, read_archive

pytestmark = pytest.mark.build  # the locked packages, from the download cache

EXTRA_KEY = bytes(range(256))[::2]  # 128 bytes, as Heads' DUK


def _extract(image: Path, offset: int, size: int, out: Path) -> Path:
    with image.open("rb") as src:
        src.seek(offset)
        out.write_bytes(src.read(size))
    return out


def _archive(initrd: bytes) -> dict[str, Entry]:
    return {entry.path: entry for entry in read_archive(gzip.decompress(initrd))}


def test_luks_disk_partitions_containers_and_keys(tmp_path: Path) -> None:
    disk = osd.make_os_disk(tmp_path / "luks.img", luks=True, extra_key=EXTRA_KEY)
    assert disk.luks == osd.LUKS_CONTAINERS
    assert disk.image.stat().st_size == osd.LUKS_DISK_SIZE
    assert [p.name for p in tmp_path.iterdir()] == ["luks.img"]  # no leftovers

    table = json.loads(
        subprocess.run(
            [sbin("sfdisk"), "--json", str(disk.image)],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
    )["partitiontable"]
    assert table["id"] == osd.DISK_GUID
    names = [p["name"] for p in table["partitions"]]
    assert names == ["boot", "root", "cryptroot", "cryptdata"]
    for container in disk.luks:
        part = table["partitions"][container.partition - 1]
        assert part["node"].endswith(str(container.partition))
        assert (part["start"] * osd.SECTOR, part["size"] * osd.SECTOR) == (
            container.offset,
            container.size,
        )
        assert part["type"] == osd.GPT_TYPE_LINUX_LUKS
        assert part["uuid"] == container.part_uuid
    assert [c.guest_device for c in disk.luks] == ["/dev/vda3", "/dev/vda4"]

    passphrase = osd.DISK_RECOVERY_PASSPHRASE.encode()
    for container in disk.luks:
        image = _extract(
            disk.image, container.offset, container.size, tmp_path / f"{container.name}.luks"
        )
        dump = subprocess.run(
            [sbin("cryptsetup"), "luksDump", str(image)],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        assert f"Version:       \t{container.version}" in dump
        assert container.uuid in dump
        opened = key_verdict(image, passphrase)
        assert opened.returncode == 0, opened.stderr
        assert "Key slot 0 unlocked." in opened.stdout
        opened = key_verdict(image, EXTRA_KEY)
        assert opened.returncode == 0, opened.stderr
        assert f"Key slot {container.duk_slot} unlocked." in opened.stdout
        assert key_verdict(image, EXTRA_KEY, slot=0).returncode == 2  # not in slot 0
        assert key_verdict(image, b"another key").returncode == 2

    # Same /boot kernel and root file system as the plain disk; /boot's
    # initrd is the LUKS target.
    plain = osd.make_os_disk(tmp_path / "plain" / "plain.img")
    with plain.image.open("rb") as a, disk.image.open("rb") as b:
        a.seek(osd.ROOT_OFFSET)
        b.seek(osd.ROOT_OFFSET)
        assert a.read(osd.ROOT_SIZE) == b.read(osd.ROOT_SIZE)
    boot_fs = _extract(disk.image, disk.boot_offset, disk.boot_size, tmp_path / "boot.ext4")
    initrd = subprocess.run(
        [sbin("debugfs"), "-R", f"cat /initrd.img-{disk.kernel_release}", str(boot_fs)],
        capture_output=True,
        timeout=60,
        check=True,
    ).stdout
    assert initrd == osd.luks_target_initrd()


def test_luks_disk_without_extra_key_has_only_the_passphrase(tmp_path: Path) -> None:
    disk = osd.make_os_disk(tmp_path / "luks.img", luks=True)
    for container in disk.luks:
        image = _extract(disk.image, container.offset, container.size, tmp_path / "c.luks")
        assert key_verdict(image, osd.DISK_RECOVERY_PASSPHRASE.encode()).returncode == 0
        assert key_verdict(image, EXTRA_KEY).returncode == 2


def test_luks_target_initrd_is_complete_and_reproducible() -> None:
    initrd = osd.luks_target_initrd()
    assert initrd == osd.luks_target_initrd()
    assert initrd[4:8] == b"\0\0\0\0"  # gzip mtime 0
    entries = _archive(initrd)
    assert entries["init"].data == osd.LUKS_TARGET_INIT.encode()
    assert entries["cryptroot/crypttab"].data == osd.os_crypttab()
    assert (
        osd.os_crypttab()
        == (
            f"cryptroot UUID={osd.LUKS_ROOT.uuid} none luks,discard\n"
            f"cryptdata UUID={osd.LUKS_DATA.uuid} none luks,discard\n"
        ).encode()
    )
    assert "etc/crypttab" not in entries  # only Heads' key cpio brings it
    # The plain target's report, unchanged, then the LUKS part, then the end.
    report = osd.TARGET_INIT.removesuffix(
        'echo "OS-TARGET: done"\n/bin/busybox sync\n/bin/busybox poweroff -f\n'
    )
    assert osd.LUKS_TARGET_INIT.startswith(report)
    assert osd.LUKS_TARGET_INIT.endswith(
        'echo "OS-TARGET: done"\n/bin/busybox sync\n/bin/busybox poweroff -f\n'
    )

    # Every file cryptsetup loads is in the archive, through its symlinks.
    def resolve(path: str) -> Entry:
        for _ in range(10):
            entry = entries[path]
            if entry.mode & 0o170000 != 0o120000:
                return entry
            target = entry.data.decode()
            path = (
                target.lstrip("/")
                if target.startswith("/")
                else os.path.normpath(os.path.join(os.path.dirname(path), target))
            )
        raise AssertionError(f"symlink loop at {path}")

    for name in (
        "sbin/cryptsetup",
        "lib64/ld-linux-x86-64.so.2",
        "lib/x86_64-linux-gnu/libc.so.6",
        "lib/x86_64-linux-gnu/libcryptsetup.so.12",
        "lib/x86_64-linux-gnu/libdevmapper.so.1.02.1",
        "usr/lib/x86_64-linux-gnu/libcrypto.so.3",
        "usr/lib/x86_64-linux-gnu/libargon2.so.1",
        "usr/lib/x86_64-linux-gnu/libjson-c.so.5",
    ):
        assert resolve(name).data[:4] == b"\x7fELF", name
    assert entries["sbin/cryptsetup"].mode & 0o111
    assert entries["run/cryptsetup"].mode & 0o170000 == 0o040000

    # Modules: each listed once, present, dependencies first.
    load = entries["etc/modules.load"].data.decode().split()
    names = [Path(m).name.removesuffix(".ko").replace("-", "_") for m in load]
    for module in load:
        assert module.removeprefix("/") in entries, module
    for before, after in (
        ("virtio", "virtio_pci"),
        ("virtio_pci", "virtio_blk"),
        ("dm_mod", "dm_crypt"),
        ("ecb", "xts"),
    ):
        assert names.index(before) < names.index(after)
    assert set(osd.LUKS_TARGET_MODULES) <= set(names)
    # Every directory a member needs is a member (the kernel makes none).
    for path in entries:
        parent = os.path.dirname(path)
        assert not parent or entries[parent].mode & 0o170000 == 0o040000, path


def test_luks_target_init_is_valid_busybox_sh(tmp_path: Path) -> None:
    script = tmp_path / "init"
    script.write_text(osd.LUKS_TARGET_INIT)
    checked = subprocess.run(
        [str(osd.busybox_path()), "sh", "-n", str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr


def test_plain_disk_needs_no_cryptsetup(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    real_which = shutil.which

    def which(name: str, mode: int = os.F_OK | os.X_OK, path: str | None = None) -> str | None:
        return None if name == "cryptsetup" else real_which(name, mode, path)

    monkeypatch.setattr(shutil, "which", which)
    disk = osd.make_os_disk(tmp_path / "plain.img")
    assert disk.luks == ()
    assert disk.image.stat().st_size == osd.DISK_SIZE
    with pytest.raises(osd.OsDiskError, match=r"cryptsetup .*Debian package cryptsetup-bin"):
        osd.make_os_disk(tmp_path / "luks.img", luks=True)
    assert not (tmp_path / "luks.img").exists()


def test_extra_key_needs_the_luks_disk(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(osd.OsDiskError, match="needs the LUKS disk"):
        osd.make_os_disk(tmp_path / "disk.img", extra_key=EXTRA_KEY)
    with pytest.raises(osd.OsDiskError, match="1 to 8192 bytes"):
        osd.make_os_disk(tmp_path / "disk.img", luks=True, extra_key=b"")
    key_file = tmp_path / "key"
    key_file.write_bytes(EXTRA_KEY)
    assert osd.main(["--out", str(tmp_path / "disk.img"), "--extra-key-file", str(key_file)]) == 1
    err = capsys.readouterr().err
    assert "make_os_disk: an extra key needs the LUKS disk" in err
    assert "Traceback" not in err
    assert not (tmp_path / "disk.img").exists()
