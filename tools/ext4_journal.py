"""Hide a change to a file on an ext4 image in its journal, unapplied: the attack
that runtime/devices/boot_device.py's ``remount`` refuses to fall for.

The runtime probes /boot with ``mount -o ro,noload`` (the journal is not
replayed), so the owner verifies and is shown the old content; a read-write
mount to sign /boot would then replay the journal and apply the change
unseen. An attacker with the disk writes such a transaction offline:

    make_pending_journal(Path("boot.ext4"), "/vmlinuz-6.1", evil_kernel)
    read_file_no_replay(Path("boot.ext4"), "/vmlinuz-6.1")  # still the old kernel
    replay(Path("boot.ext4"))                               # now evil_kernel

Host only, no root, no loop device: debugfs -w writes the transaction with
its journal commands (jo, jw -b, jc), which sets the superblock's
needs_recovery flag and leaves the file's blocks as they were. Only the
blocks that differ go into the journal, so the change must fit the journal
(4 MiB on a small file system); the file keeps its inode, size and blocks.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from runtime.devices.boot_device import ext4_journal_pending
from tools.debugfs import TIMEOUT, debugfs_errors, run_debugfs

_HEAD = 4096
_SUPERBLOCK = 1024
_LOG_BLOCK_SIZE = 0x18  # s_log_block_size: the block size is 1024 << this
# debugfs -f reads each request into a BUFSIZ (8 KiB) buffer: a longer `jw -b`
# list is cut, so the blocks go in several transactions, each list this long at most.
_MAX_LIST_CHARS = 6000


class Ext4JournalError(Exception):
    """The image cannot be read or changed as asked (and is left as it was
    unless the journal write itself failed)."""


def _tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if found is None:
        raise Ext4JournalError(f"{name} is not installed: install the Debian package e2fsprogs")
    return found


def _check_path(path_in_fs: str) -> None:
    # debugfs splits requests on blanks and reads quotes: such names would
    # silently address another file.
    if not path_in_fs.startswith("/") or any(c.isspace() or c in "\"'" for c in path_in_fs):
        raise ValueError(f"{path_in_fs!r}: an absolute path without blanks or quotes is needed")


def _debugfs(image: Path, requests: list[str], writable: bool = False) -> str:
    """Run requests in one debugfs session; its output, or the error it printed."""
    done, errors = run_debugfs(_tool("debugfs"), image, requests, writable=writable)
    if done.returncode != 0 or errors:
        raise Ext4JournalError(
            f"debugfs on {image.name} failed ({done.returncode}): {'; '.join(errors[:5])}"
        )
    return done.stdout


def _read_head(image: Path) -> bytes:
    with image.open("rb") as f:
        return f.read(_HEAD)


def _block_size(head: bytes) -> int:
    if len(head) < 2048 or head[_SUPERBLOCK + 0x38 : _SUPERBLOCK + 0x3A] != b"\x53\xef":
        raise Ext4JournalError("not an ext2/3/4 file system image (no superblock magic)")
    shift = int.from_bytes(head[_SUPERBLOCK + _LOG_BLOCK_SIZE : _SUPERBLOCK + 0x1C], "little")
    return 1024 << shift


def journal_pending(image: Path) -> bool:
    """Whether the image's journal holds transactions not yet applied."""
    return ext4_journal_pending(_read_head(image))


def read_file_no_replay(image: Path, path_in_fs: str) -> bytes:
    """The file's content as the runtime's ro,noload mount reads it: debugfs
    `cat` reads the blocks in place and never replays the journal."""
    _check_path(path_in_fs)
    done = subprocess.run(
        [_tool("debugfs"), "-R", f"cat {path_in_fs}", str(image)],
        capture_output=True,
        timeout=TIMEOUT,
        check=False,
    )
    errors = debugfs_errors(done.stderr.decode(errors="replace"))
    if done.returncode != 0 or errors:
        raise Ext4JournalError(f"{path_in_fs} cannot be read: {'; '.join(errors[:5])}")
    return done.stdout


def replay(image: Path) -> None:
    """Apply the journal, as a read-write mount would: e2fsck -fy recovers it
    (and checks that the result is a consistent file system)."""
    done = subprocess.run(
        [_tool("e2fsck"), "-fy", str(image)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    # 0: clean; 1: errors corrected (a recovered journal can count as one).
    if done.returncode not in (0, 1):
        raise Ext4JournalError(
            f"e2fsck on {image.name} failed ({done.returncode}): "
            f"{(done.stdout + done.stderr).strip()[-800:]}"
        )


def _file_type(image: Path, path_in_fs: str) -> str:
    stat = _debugfs(image, [f"stat {path_in_fs}"])
    for word, after in zip(stat.split(), stat.split()[1:], strict=False):
        if word == "Type:":
            return after
    raise Ext4JournalError(f"debugfs did not say what {path_in_fs} is")


def _block_map(image: Path, path_in_fs: str, count: int) -> list[tuple[int, bool]]:
    """(physical block, initialized) for logical blocks 0..count-1; 0 is a hole."""
    out = _debugfs(image, [f"bmap {path_in_fs} {n}" for n in range(count)])
    answers = [line.split() for line in out.splitlines() if not line.startswith("debugfs: ")]
    if len(answers) != count or not all(a and a[0].isdigit() for a in answers):
        raise Ext4JournalError(f"debugfs bmap gave {len(answers)} answers for {count} blocks")
    return [(int(a[0]), "(uninit)" not in a) for a in answers]


def _at(data: bytes, logical: int, size: int) -> bytes:
    return data[logical * size : (logical + 1) * size]


def _chunks(blocks: list[int]) -> list[list[int]]:
    chunks: list[list[int]] = [[]]
    length = 0
    for block in blocks:
        if chunks[-1] and length + len(str(block)) + 1 > _MAX_LIST_CHARS:
            chunks.append([])
            length = 0
        chunks[-1].append(block)
        length += len(str(block)) + 1
    return chunks


def make_pending_journal(image: Path, path_in_fs: str, new_content: bytes) -> None:
    """Write journal transactions that, when replayed, make the regular file
    ``path_in_fs`` hold ``new_content`` (the same size as it has now), and
    leave the file as it was for anything that reads without replaying.

    Only blocks that differ are journalled, each with the rest of its block
    (past the end of the file) kept. When nothing differs the first data
    block is journalled unchanged, so the journal is still pending. Calls
    stack: each adds transactions after those already pending (the
    comparison is with the content as read without replay). Raises Ext4JournalError when the file
    has no block on disk where the new content needs one (a hole, an
    unwritten extent, inline data) or the journal is too small."""
    _check_path(path_in_fs)
    if _file_type(image, path_in_fs) != "regular":
        raise Ext4JournalError(f"{path_in_fs} is not a regular file")
    old = read_file_no_replay(image, path_in_fs)
    if len(old) != len(new_content):
        raise Ext4JournalError(
            f"{path_in_fs} is {len(old)} bytes and the new content {len(new_content)}: "
            "only a same-size rewrite of its blocks is supported"
        )
    size = _block_size(_read_head(image))
    count = -(-len(old) // size)
    mapping = _block_map(image, path_in_fs, count)
    on_disk = [n for n, (physical, initialized) in enumerate(mapping) if physical and initialized]
    written = set(on_disk)
    differing = [n for n in range(count) if _at(new_content, n, size) != _at(old, n, size)]
    if not differing and on_disk:
        differing = on_disk[:1]  # a pending journal that changes nothing
    if not differing:
        raise Ext4JournalError(f"{path_in_fs} has no data block to journal")
    changed: list[tuple[int, bytes]] = []  # (physical block, its content after replay)
    with image.open("rb") as f:
        for logical in differing:
            if logical not in written:
                # A hole or unwritten extent reads as zeros whatever its block holds.
                raise Ext4JournalError(
                    f"block {logical} of {path_in_fs} has no written data block on disk "
                    "(a hole, an unwritten extent or inline data): rewriting it would need "
                    "new metadata, which this tool does not write"
                )
            physical = mapping[logical][0]
            f.seek(physical * size)
            block = bytearray(f.read(size))
            if len(block) != size:
                raise Ext4JournalError(f"block {physical} lies past the end of {image.name}")
            new = _at(new_content, logical, size)
            block[: len(new)] = new  # the rest, past the end of the file, stays
            changed.append((physical, bytes(block)))
    _write_transactions(image, changed)
    if not journal_pending(image) or read_file_no_replay(image, path_in_fs) != old:
        raise Ext4JournalError(
            f"the journal of {image.name} was written but is not pending, or the file changed"
        )


def _write_transactions(image: Path, changed: list[tuple[int, bytes]]) -> None:
    by_block = dict(changed)
    with tempfile.TemporaryDirectory(prefix="ext4-journal-") as tmp:
        requests = ["jo"]
        for n, chunk in enumerate(_chunks([physical for physical, _ in changed])):
            data = Path(tmp) / f"blocks-{n}.bin"
            data.write_bytes(b"".join(by_block[physical] for physical in chunk))
            requests.append(f"jw -b {','.join(str(b) for b in chunk)} {data}")
        requests.append("jc")
        try:
            _debugfs(image, requests, writable=True)
        except Ext4JournalError as err:
            raise Ext4JournalError(
                f"{err} ({len(changed)} blocks changed: a journal too small says "
                "'No space left on device')"
            ) from err


def make_ext4_image(
    image: Path, files: dict[str, bytes], size_mib: int = 32, journal_mib: int = 0
) -> None:
    """A fresh ext4 image (4 KiB blocks) holding ``files`` ({"/grub/grub.cfg":
    b"..."}), for tests; ``journal_mib`` 0 lets mke2fs choose (4 MiB when small).
    mke2fs -d leaves all-zero blocks of a file as holes."""
    with tempfile.TemporaryDirectory(prefix="ext4-image-") as tmp:
        root = Path(tmp)
        for name, data in files.items():
            _check_path(name)
            path = root / name.lstrip("/")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        journal = ["-J", f"size={journal_mib}"] if journal_mib else []
        argv = [_tool("mke2fs"), "-t", "ext4", "-F", "-q", "-b", "4096", *journal, "-d", tmp]
        done = subprocess.run(
            [*argv, str(image), f"{size_mib}M"],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
    if done.returncode != 0:
        raise Ext4JournalError(f"mke2fs failed ({done.returncode}): {done.stderr.strip()[-800:]}")


def make_pending_journal_in_disk(disk_image: Path, path_in_boot: str, new_content: bytes) -> None:
    """make_pending_journal on the /boot partition of the test OS disk
    (tools/make_os_disk.py): the partition is copied out, changed and copied
    back by tools/os_disk_edit.py's BootPartition."""
    # Imported here: it loads the board table, which the image-only helpers need not.
    from tools.os_disk_edit import BootPartition

    with BootPartition(disk_image) as boot:
        make_pending_journal(boot.image, path_in_boot, new_content)
