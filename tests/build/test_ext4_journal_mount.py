"""The journal attack against the kernel's ext4, on a loop device: a ro,noload
mount (the runtime's probe) reads the old kernel, a read-write mount replays
the journal and reads the attacker's; and the runtime's own find_boot and
remount keep /boot read-only until the replay is asked for.

Needs root, loop devices and e2fsprogs; skipped (saying which) otherwise."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime.devices import boot_device
from runtime.devices.boot_device import find_boot, journal_pending, remount, unmount
from tools import ext4_journal as ej

KERNEL = "/vmlinuz-6.1.0-test"
OLD = random.Random(1).randbytes(5 * 4096 + 100)
NEW = random.Random(2).randbytes(5 * 4096 + 100)
TIMEOUT = 30


def _sbin(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if found is None:
        pytest.skip(f"{name} is not installed")
    return found


@pytest.fixture
def image(tmp_path: Path) -> Path:
    if os.geteuid() != 0:
        pytest.skip("mounting a loop device needs root")
    for name in ("debugfs", "mke2fs", "e2fsck", "losetup"):
        _sbin(name)
    if not os.path.exists(boot_device.MOUNT):
        pytest.skip(f"{boot_device.MOUNT} is missing")
    path = tmp_path / "boot.ext4"
    ej.make_ext4_image(path, {KERNEL: OLD, "/grub/grub.cfg": b"menuentry 'x' {}\n"})
    ej.make_pending_journal(path, KERNEL, NEW)
    return path


@pytest.fixture
def loop_device(image: Path) -> Iterator[str]:
    done = subprocess.run(
        [_sbin("losetup"), "--find", "--show", str(image)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"no loop device here: {done.stderr.strip()}")
    device = done.stdout.strip()
    try:
        yield device
    finally:
        subprocess.run(
            [_sbin("losetup"), "--detach", device], capture_output=True, timeout=TIMEOUT, check=True
        )


def _mount(device: str, target: Path, options: str) -> None:
    target.mkdir(exist_ok=True)
    subprocess.run(
        [boot_device.MOUNT, "-t", "ext4", "-o", options, device, str(target)],
        capture_output=True,
        timeout=TIMEOUT,
        check=True,
    )


def _umount(target: Path) -> None:
    subprocess.run(
        [boot_device.UMOUNT, str(target)], capture_output=True, timeout=TIMEOUT, check=True
    )


def test_noload_reads_the_old_kernel_and_read_write_the_new(
    loop_device: str, tmp_path: Path
) -> None:
    target = tmp_path / "mnt"
    _mount(loop_device, target, "ro,noload")
    try:
        assert (target / KERNEL.lstrip("/")).read_bytes() == OLD
    finally:
        _umount(target)
    assert journal_pending(loop_device)  # noload left the journal as it was
    _mount(loop_device, target, "rw")  # the kernel replays the journal
    try:
        assert (target / KERNEL.lstrip("/")).read_bytes() == NEW
    finally:
        _umount(target)
    assert not journal_pending(loop_device)


def test_the_runtime_keeps_boot_read_only_over_a_pending_journal(
    loop_device: str, tmp_path: Path
) -> None:
    target = tmp_path / "boot"
    kernel = target / KERNEL.lstrip("/")
    found = find_boot(preferred=loop_device, mountpoint=str(target))
    try:
        assert found.device == loop_device, found.problem
        assert kernel.read_bytes() == OLD  # what the owner verifies and is shown

        problem = remount(loop_device, str(target), writable=True)
        assert "never applied" in problem
        assert os.path.ismount(target) and kernel.read_bytes() == OLD
        assert journal_pending(loop_device)

        # Only when asked: the journal is applied, and the new kernel shows.
        assert remount(loop_device, str(target), writable=True, replay_journal=True) == ""
        assert kernel.read_bytes() == NEW
        assert remount(loop_device, str(target), writable=False) == ""
        assert not journal_pending(loop_device)
        assert kernel.read_bytes() == NEW
        # A clean unmount clears the flag a read-write mount sets: writable again.
        assert remount(loop_device, str(target), writable=True) == ""
        assert remount(loop_device, str(target), writable=False) == ""
    finally:
        unmount(str(target))
    assert not os.path.ismount(target)
