"""tools/ext4_journal.py: a change hidden in an ext4 journal, unapplied. What
reads without replaying (debugfs, like the runtime's ro,noload mount) sees
the old file; a replay (e2fsck, like a read-write mount) applies the new one;
the superblock says so in between. Needs e2fsprogs (fast: small images)."""

from __future__ import annotations

import random
import shutil
import subprocess
from pathlib import Path

import pytest

from runtime.devices.boot_device import ext4_journal_pending
from tools import ext4_journal as ej

pytestmark = pytest.mark.skipif(
    not all(
        shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin")
        for tool in ("debugfs", "mke2fs", "e2fsck", "dumpe2fs")
    ),
    reason="e2fsprogs (debugfs, mke2fs, e2fsck, dumpe2fs) is not installed",
)

KERNEL = "/vmlinuz-6.1.0-test"
BLOCK = 4096


def _bytes(n: int, seed: int) -> bytes:
    # Random, so no block is all zeros (mke2fs -d would leave a hole).
    return random.Random(seed).randbytes(n)


def _image(tmp_path: Path, files: dict[str, bytes], **kwargs: int) -> Path:
    image = tmp_path / "boot.ext4"
    ej.make_ext4_image(image, files, **kwargs)
    return image


def _head(image: Path) -> bytes:
    with image.open("rb") as f:
        return f.read(4096)


def _dumpe2fs_features(image: Path) -> str:
    dumpe2fs = shutil.which("dumpe2fs") or shutil.which("dumpe2fs", path="/usr/sbin:/sbin")
    assert dumpe2fs
    done = subprocess.run(
        [dumpe2fs, "-h", str(image)], capture_output=True, text=True, timeout=60, check=True
    )
    return next(line for line in done.stdout.splitlines() if line.startswith("Filesystem features"))


def _fsck_clean(image: Path) -> None:
    e2fsck = shutil.which("e2fsck") or shutil.which("e2fsck", path="/usr/sbin:/sbin")
    assert e2fsck
    done = subprocess.run(
        [e2fsck, "-fn", str(image)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_change_waits_in_the_journal_until_replayed(tmp_path: Path) -> None:
    old = _bytes(3 * BLOCK + 1000, 1)  # the last block is partly past the end of the file
    image = _image(tmp_path, {KERNEL: old, "/grub/grub.cfg": b"menuentry x {}\n"})
    assert not ext4_journal_pending(_head(image))
    new = bytearray(old)
    new[10:20] = b"EVIL KERNE"  # block 0
    new[-5:] = b"TAIL!"  # block 3, the partial one
    ej.make_pending_journal(image, KERNEL, bytes(new))

    assert ext4_journal_pending(_head(image)) and ej.journal_pending(image)
    assert "needs_recovery" in _dumpe2fs_features(image)
    assert ej.read_file_no_replay(image, KERNEL) == old  # what the owner would verify
    assert ej.read_file_no_replay(image, "/grub/grub.cfg") == b"menuentry x {}\n"

    ej.replay(image)
    assert not ext4_journal_pending(_head(image))
    assert "needs_recovery" not in _dumpe2fs_features(image)
    assert ej.read_file_no_replay(image, KERNEL) == bytes(new)
    _fsck_clean(image)


def test_a_whole_new_kernel_in_several_transactions(tmp_path: Path) -> None:
    # 1600 blocks: more than one `jw -b` list fits in a debugfs request line.
    old, new = _bytes(1600 * BLOCK, 2), _bytes(1600 * BLOCK, 3)
    image = _image(tmp_path, {KERNEL: old}, size_mib=64, journal_mib=16)
    ej.make_pending_journal(image, KERNEL, new)
    assert ej.journal_pending(image)
    assert ej.read_file_no_replay(image, KERNEL) == old
    ej.replay(image)
    assert not ej.journal_pending(image)
    assert ej.read_file_no_replay(image, KERNEL) == new
    _fsck_clean(image)


def test_changes_to_two_files_stack(tmp_path: Path) -> None:
    kernel, initrd = _bytes(2 * BLOCK, 4), _bytes(BLOCK + 7, 5)
    image = _image(tmp_path, {KERNEL: kernel, "/initrd.img": initrd})
    new_kernel, new_initrd = _bytes(2 * BLOCK, 6), _bytes(BLOCK + 7, 7)
    ej.make_pending_journal(image, KERNEL, new_kernel)
    ej.make_pending_journal(image, "/initrd.img", new_initrd)
    assert ej.read_file_no_replay(image, KERNEL) == kernel
    assert ej.read_file_no_replay(image, "/initrd.img") == initrd
    ej.replay(image)
    assert ej.read_file_no_replay(image, KERNEL) == new_kernel
    assert ej.read_file_no_replay(image, "/initrd.img") == new_initrd


def test_the_same_content_still_leaves_a_pending_journal(tmp_path: Path) -> None:
    old = _bytes(2 * BLOCK, 8)
    image = _image(tmp_path, {KERNEL: old})
    ej.make_pending_journal(image, KERNEL, old)
    assert ej.journal_pending(image)
    ej.replay(image)
    assert ej.read_file_no_replay(image, KERNEL) == old


def test_what_cannot_be_done_is_refused_and_the_image_left_alone(tmp_path: Path) -> None:
    holed = _bytes(BLOCK, 9) + bytes(BLOCK) + _bytes(BLOCK, 10)  # block 1: a hole
    image = _image(tmp_path, {KERNEL: _bytes(2 * BLOCK, 11), "/holed": holed})
    before = image.read_bytes()
    with pytest.raises(ej.Ext4JournalError, match="only a same-size"):
        ej.make_pending_journal(image, KERNEL, _bytes(2 * BLOCK + 1, 12))
    with pytest.raises(ej.Ext4JournalError, match="not a regular file"):
        ej.make_pending_journal(image, "/lost+found", b"")
    with pytest.raises(ej.Ext4JournalError):
        ej.make_pending_journal(image, "/absent", b"x")
    with pytest.raises(ej.Ext4JournalError, match="a hole"):
        ej.make_pending_journal(image, "/holed", _bytes(3 * BLOCK, 13))
    with pytest.raises(ValueError, match="without blanks"):
        ej.make_pending_journal(image, "/two words", b"")
    assert image.read_bytes() == before
    # A hole that stays zero needs no block: the rest is journalled.
    changed = _bytes(BLOCK, 14) + bytes(BLOCK) + _bytes(BLOCK, 15)
    ej.make_pending_journal(image, "/holed", changed)
    ej.replay(image)
    assert ej.read_file_no_replay(image, "/holed") == changed


def test_a_journal_too_small_is_reported(tmp_path: Path) -> None:
    # 1100 changed blocks; mke2fs gives a 32 MiB file system a 1024-block journal.
    image = _image(tmp_path, {KERNEL: _bytes(1100 * BLOCK, 16)})
    with pytest.raises(ej.Ext4JournalError, match="No space left"):
        ej.make_pending_journal(image, KERNEL, _bytes(1100 * BLOCK, 17))


def test_not_an_ext4_image(tmp_path: Path) -> None:
    image = tmp_path / "zeros.img"
    image.write_bytes(bytes(1 << 20))
    assert not ej.journal_pending(image)
    with pytest.raises(ej.Ext4JournalError):
        ej.make_pending_journal(image, KERNEL, b"x")


def test_request_lists_are_cut_below_debugfs_line_buffer() -> None:
    blocks = list(range(100_000, 103_000))
    chunks = ej._chunks(blocks)
    assert [b for chunk in chunks for b in chunk] == blocks
    assert len(chunks) > 1
    assert all(len(",".join(map(str, chunk))) <= ej._MAX_LIST_CHARS for chunk in chunks)
    assert ej._chunks([]) == [[]]


def test_in_the_os_disk_boot_partition(tmp_path: Path) -> None:
    from tools.make_os_disk import BOOT_OFFSET, BOOT_SIZE
    from tools.os_disk_edit import BootPartition

    # The OS disk's layout without the GPT, which BootPartition does not read.
    old, new = _bytes(5 * BLOCK, 18), _bytes(5 * BLOCK, 19)
    part = _image(tmp_path, {KERNEL: old}, size_mib=BOOT_SIZE >> 20)
    disk = tmp_path / "disk.img"
    with disk.open("wb") as f:
        f.truncate(BOOT_OFFSET + BOOT_SIZE + (1 << 20))
        f.seek(BOOT_OFFSET)
        f.write(part.read_bytes())
    ej.make_pending_journal_in_disk(disk, KERNEL, new)

    with disk.open("rb") as f:
        f.seek(BOOT_OFFSET)
        assert ext4_journal_pending(f.read(4096))
    with BootPartition(disk) as boot:
        assert boot.read(KERNEL) == old
        ej.replay(boot.image)
        assert ej.read_file_no_replay(boot.image, KERNEL) == new
