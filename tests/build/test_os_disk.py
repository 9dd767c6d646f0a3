"""The test OS disk (tools/make_os_disk.py): its layout and contents, that it is
reproducible, and that its kernel with the tiny initrd boots in QEMU with a
software TPM and reports its command line and PCRs."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.host_programs import sbin
from tools import make_os_disk as osd
from tools.initrd.cache import sha256_file
from tools.swtpm import Swtpm

pytestmark = pytest.mark.build

SECTOR = 512


def _extract(image: Path, offset: int, size: int, out: Path) -> Path:
    """dd one partition out of the disk (debugfs takes no offset)."""
    with image.open("rb") as src, out.open("wb") as dst:
        src.seek(offset)
        remaining = size
        while remaining:
            block = src.read(min(remaining, 1 << 20))
            assert block, "the disk ends inside the partition"
            dst.write(block)
            remaining -= len(block)
    return out


def _debugfs(fs_image: Path, request: str) -> str:
    done = subprocess.run(
        [sbin("debugfs"), "-R", request, str(fs_image)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


def _debugfs_bytes(fs_image: Path, path: str) -> bytes:
    done = subprocess.run(
        [sbin("debugfs"), "-R", f"cat {path}", str(fs_image)],
        capture_output=True,
        timeout=60,
        check=True,
    )
    return done.stdout


def _listing(fs_image: Path, directory: str) -> dict[str, str]:
    """Name -> octal mode, from debugfs' parsable listing (/ino/mode/uid/gid/name/size/)."""
    entries: dict[str, str] = {}
    for line in _debugfs(fs_image, f"ls -p {directory}").splitlines():
        fields = line.split("/")
        if len(fields) >= 7 and fields[5] not in (".", ".."):
            entries[fields[5]] = fields[2]
    return entries


def _volume_name(fs_image: Path) -> str:
    header = subprocess.run(
        [sbin("dumpe2fs"), "-h", str(fs_image)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    match = re.search(r"^Filesystem volume name:\s*(\S*)$", header, re.MULTILINE)
    assert match, header
    return match.group(1)


def test_disk_layout_contents_and_reproducibility(tmp_path: Path) -> None:
    disk = osd.make_os_disk(tmp_path / "first" / "os-disk.img")
    release = osd.BOARD_KERNEL_RELEASE
    assert disk.image == tmp_path / "first" / "os-disk.img"
    assert disk.kernel_release == release
    assert disk.cmdline == "root=LABEL=root ro console=ttyS0,115200 quiet"
    assert disk.image.stat().st_size == osd.DISK_SIZE
    assert [p.name for p in disk.image.parent.iterdir()] == ["os-disk.img"]  # no leftovers

    # The partition table: GPT, fixed GUIDs, /boot then root.
    table = json.loads(
        subprocess.run(
            [sbin("sfdisk"), "--json", str(disk.image)],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
    )["partitiontable"]
    assert table["label"] == "gpt"
    assert table["id"] == osd.DISK_GUID
    boot, root = table["partitions"]
    assert (boot["start"] * SECTOR, boot["size"] * SECTOR) == (disk.boot_offset, disk.boot_size)
    assert disk.boot_size == 96 << 20
    assert (boot["name"], boot["uuid"]) == ("boot", osd.BOOT_PART_UUID)
    assert (root["name"], root["uuid"]) == ("root", osd.ROOT_PART_UUID)
    assert root["start"] * SECTOR >= disk.boot_offset + disk.boot_size
    assert root["size"] * SECTOR == 16 << 20

    # /boot: the kernel, its config, the tiny initrd and grub.cfg.
    boot_fs = _extract(disk.image, disk.boot_offset, disk.boot_size, tmp_path / "boot.ext4")
    assert _volume_name(boot_fs) == "boot"
    listing = _listing(boot_fs, "/")
    assert set(listing) == {
        "lost+found",
        "grub",
        f"vmlinuz-{release}",
        f"initrd.img-{release}",
        f"config-{release}",
    }
    assert listing[f"vmlinuz-{release}"] == "100644"
    assert _listing(boot_fs, "/grub") == {"grub.cfg": "100444"}

    kernel = osd.kernel_files()
    vmlinuz = _debugfs_bytes(boot_fs, f"/vmlinuz-{release}")
    assert hashlib.sha256(vmlinuz).hexdigest() == sha256_file(kernel.vmlinuz)
    assert _debugfs_bytes(boot_fs, f"/config-{release}") == kernel.config.read_bytes()
    initrd = _debugfs_bytes(boot_fs, f"/initrd.img-{release}")
    assert initrd == osd.target_initrd(osd.busybox_path())
    assert initrd[4:8] == b"\0\0\0\0"  # gzip mtime 0
    cpio = gzip.decompress(initrd)
    assert cpio.startswith(b"070701")
    for name in (b"bin/busybox\0", b"bin/sh\0", b"dev/console\0", b"init\0", b"proc\0", b"sys\0"):
        assert name in cpio

    grub = _debugfs(boot_fs, "cat /grub/grub.cfg")
    assert grub == osd.grub_cfg(release)
    first = re.search(
        r"^menuentry '([^']*)'.*?^\s*linux\s+(\S+) (.*?)$\s*^.*?^\s*initrd\s+(\S+)$",
        grub,
        re.MULTILINE | re.DOTALL,
    )
    assert first, grub
    assert first.group(1) == "Debian GNU/Linux"
    assert first.group(2) == f"/vmlinuz-{release}"
    assert first.group(3) == disk.cmdline
    assert first.group(4) == f"/initrd.img-{release}"
    assert "submenu 'Advanced options for Debian GNU/Linux'" in grub
    recovery = re.search(
        r"^\s*menuentry '[^']*\(recovery mode\)'.*?^\s*linux\s+\S+ (.*?)$",
        grub,
        re.MULTILINE | re.DOTALL,
    )
    assert recovery, grub
    assert "single" in recovery.group(1).split()
    assert 'set default="0"' in grub

    # root: os-release names the test OS; /sbin/init is a placeholder.
    root_fs = _extract(
        disk.image, root["start"] * SECTOR, root["size"] * SECTOR, tmp_path / "root.ext4"
    )
    assert _volume_name(root_fs) == "root"
    assert "test OS" in _debugfs(root_fs, "cat /etc/os-release")
    assert _listing(root_fs, "/sbin") == {"init": "100755"}

    # Both file systems are clean.
    for fs in (boot_fs, root_fs):
        subprocess.run(
            [sbin("e2fsck"), "-fn", str(fs)], capture_output=True, timeout=120, check=True
        )

    # A second build is the same, byte for byte.
    again = osd.make_os_disk(tmp_path / "second.img")
    assert sha256_file(again.image) == sha256_file(disk.image)


def test_missing_tool_names_the_debian_package(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    real_which = shutil.which

    def which(name: str, mode: int = os.F_OK | os.X_OK, path: str | None = None) -> str | None:
        return None if name == "sfdisk" else real_which(name, mode, path)

    monkeypatch.setattr(shutil, "which", which)
    with pytest.raises(osd.OsDiskError, match=r"sfdisk .*Debian package fdisk"):
        osd.make_os_disk(tmp_path / "disk.img")
    assert osd.main(["--out", str(tmp_path / "disk.img")]) == 1
    err = capsys.readouterr().err
    assert "make_os_disk: sfdisk is not installed" in err and "fdisk" in err
    assert "Traceback" not in err
    assert not (tmp_path / "disk.img").exists()


PCR_LINE = re.compile(r"^OS-TARGET: pcr (\d+) ([0-9A-Fa-f]{64})$", re.MULTILINE)


@pytest.mark.qemu
@pytest.mark.timeout(300)
def test_target_boots_and_reports_cmdline_and_pcrs(tmp_path: Path) -> None:
    tools: dict[str, str] = {}
    for tool, package in (("qemu-system-x86_64", "qemu-system-x86"), ("swtpm", "swtpm")):
        found = shutil.which(tool)
        if found is None:
            pytest.fail(f"{tool} is not installed (Debian package {package})")
        tools[tool] = found
    kernel = osd.kernel_files()
    initrd = tmp_path / "initrd.img"
    initrd.write_bytes(osd.target_initrd(osd.busybox_path()))
    swtpm = Swtpm(for_qemu=True, flags=("startup-clear",))
    qemu: subprocess.Popen[str] | None = None
    try:
        swtpm.start()
        argv = [
            tools["qemu-system-x86_64"],
            "-machine",
            "q35",
            "-accel",
            "tcg",
            "-cpu",
            "max",
            "-m",
            "512",
            "-display",
            "none",
            "-monitor",
            "none",
            "-serial",
            "stdio",
            "-no-reboot",
            "-nic",
            "none",
            "-chardev",
            f"socket,id=chrtpm,path={swtpm.ctrl}",
            "-tpmdev",
            "emulator,id=tpm0,chardev=chrtpm",
            "-device",
            "tpm-crb,tpmdev=tpm0",
            "-kernel",
            str(kernel.vmlinuz),
            "-initrd",
            str(initrd),
            "-append",
            "console=ttyS0,115200 quiet marker=42",
        ]
        started = time.monotonic()
        qemu = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
        try:
            output, _ = qemu.communicate(timeout=180)
        except subprocess.TimeoutExpired:
            qemu.kill()
            output, _ = qemu.communicate(timeout=30)
            pytest.fail(f"QEMU did not power off within 180 s; console:\n{output[-4000:]}")
        elapsed = time.monotonic() - started
        print(f"target boot took {elapsed:.1f} s")
        output = output.replace("\r\n", "\n")
        assert qemu.returncode == 0, output[-4000:]
        assert "OS-TARGET: booted" in output, output[-4000:]
        cmdline = re.search(r"^OS-TARGET: cmdline (.*)$", output, re.MULTILINE)
        assert cmdline and "marker=42" in cmdline.group(1).split(), output[-4000:]
        pcrs = {int(n): value for n, value in PCR_LINE.findall(output)}
        assert sorted(pcrs) == list(range(16)), output[-4000:]
        # SeaBIOS measured itself: the values came from the attached TPM.
        assert any(int(value, 16) != 0 for value in pcrs.values())
        assert "OS-TARGET: done" in output
        assert output.index("OS-TARGET: booted") < output.index("OS-TARGET: done")
    finally:
        if qemu is not None and qemu.poll() is None:
            qemu.kill()
            qemu.wait(10)
        swtpm.stop()
