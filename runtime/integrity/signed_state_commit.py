"""Replacing /boot's signed state so that a power cut at any moment leaves
either the old or the new signed state, never one that verifies against
neither.

Several files change together (the lists, kexec.sig, kexec_rollback.txt, a
default entry) and the TPM counter moves with them, which no single rename can
do. So a new state is first staged whole in /boot/kexec.next.d/ (a kexec*
path, so neither Heads' lists nor ours cover it), each file fsynced, then a
COMMIT file naming every file and its hash is written and fsynced last. Only
then is the counter incremented, and the files renamed into place one by one.

At the next start, `settle_pending` looks at what is left:
  no COMMIT, or a damaged one          -> staging was cut short: drop it (old state)
  COMMIT, counter not yet incremented  -> the old state still matches: drop it
  COMMIT, counter incremented          -> finish the renames (new state)

/boot is hostile input: anyone with the disk can put any kind of file under
any name, kexec.next.d itself included. So nothing there is trusted beyond
its checks: files are read through safe_read (no link followed, no FIFO
opened, a size bound), only a regular file whose hash COMMIT names is ever
renamed into place, and dropping the pending state removes whatever is there
without following a link. Hostile content is dropped, never adopted.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from runtime.integrity.boot_lists import PENDING_DIR as PENDING_DIR
from runtime.integrity.safe_read import UnsafeFile, kind_of, read_regular

COMMIT_FILE = "COMMIT"
MAX_COMMIT_BYTES = 1024 * 1024
#: a staged file is a signed list: the bound verify_boot.MAX_LIST_BYTES puts on those
MAX_STAGED_BYTES = 32 * 1024 * 1024
MAX_NAME_BYTES = 255
_COUNTER_LIMIT = 1 << 64  # TPM NV counters are 8 bytes
_HEX = frozenset("0123456789abcdef")
#: a directory opened to work inside it: never through a link, never blocking
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class Disk(Protocol):
    """The file operations a state change uses, so a test can record them and
    cut the power after any one."""

    def write(self, path: str, data: bytes) -> None: ...  # create/truncate + write
    def fsync(self, path: str) -> None: ...  # file or directory
    def rename(self, src: str, dst: str) -> None: ...
    def unlink(self, path: str) -> None: ...
    def mkdir(self, path: str) -> None: ...
    def rmdir(self, path: str) -> None: ...
    def rmtree(self, path: str) -> None: ...  # whatever is there; never follows a link


class RealDisk:
    def write(self, path: str, data: bytes) -> None:
        # O_NOFOLLOW: a planted link must not redirect the write out of /boot
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(path, flags, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)

    def fsync(self, path: str) -> None:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def rename(self, src: str, dst: str) -> None:
        os.rename(src, dst)

    def unlink(self, path: str) -> None:
        os.unlink(path)

    def mkdir(self, path: str) -> None:
        os.mkdir(path, 0o755)

    def rmdir(self, path: str) -> None:
        os.rmdir(path)

    def rmtree(self, path: str) -> None:
        remove_tree(path)


def remove_tree(path: str) -> None:
    """Remove whatever is at path: a link, FIFO or file as itself, a directory
    with everything in it. Links are never followed, and the walk is a loop
    holding two descriptors (shutil.rmtree refuses a top-level link, and
    recurses: a hostile tree can be deeper than Python's stack)."""
    if not stat.S_ISDIR(os.lstat(path).st_mode):
        os.unlink(path)
        return
    parent, name = os.path.split(path)
    parent_fd = os.open(parent or ".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fd = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
        try:
            _remove_contents(fd)
        finally:
            os.close(fd)
        os.rmdir(name, dir_fd=parent_fd)
    finally:
        os.close(parent_fd)


def _remove_contents(fd: int) -> None:
    """Empty the directory fd, depth first; fd is closed by the caller."""
    here = os.dup(fd)  # the directory being emptied; moves down and back up
    names: list[str] = []  # the path from fd down to here
    todo = [_clear_files(here)]  # per level: subdirectories still to remove
    try:
        while todo:
            if todo[-1]:
                sub = todo[-1].pop()
                down = os.open(sub, _DIR_FLAGS, dir_fd=here)
                os.close(here)
                here = down
                names.append(sub)
                todo.append(_clear_files(here))
                continue
            todo.pop()
            if names:
                # ".." is the directory we came down from: the walk took no link
                up = os.open("..", _DIR_FLAGS, dir_fd=here)
                os.close(here)
                here = up
                os.rmdir(names.pop(), dir_fd=here)
    finally:
        os.close(here)


def _clear_files(fd: int) -> list[str]:
    """Unlink every entry of directory fd that is not a directory (links
    included, as links); the subdirectories' names."""
    with os.scandir(fd) as scan:
        entries = list(scan)  # not unlinking while the directory is being read
    subdirs: list[str] = []
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            subdirs.append(entry.name)
        else:
            os.unlink(entry.name, dir_fd=fd)
    return subdirs


@dataclass(frozen=True)
class NewState:
    """The signed-state files after the change (name -> bytes, at /boot's
    top level), those to delete, and the counter value they are signed at."""

    files: Mapping[str, bytes]
    remove: Sequence[str]
    counter: int


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_name(name: str) -> str:
    """name, when it can be a signed-state file at /boot's top level; COMMIT
    is not signed, so its names get this check before any use."""
    if (
        not name.startswith("kexec")
        or name in (PENDING_DIR, ".", "..")
        or any(c in "/\\" or ord(c) < 0x20 or ord(c) == 0x7F for c in name)
        or len(os.fsencode(name)) > MAX_NAME_BYTES
    ):
        raise ValueError(f"{name!r} is not a signed-state file name")
    return name


def _check_digest(value: object) -> str:
    if not isinstance(value, str) or len(value) != 64 or not set(value) <= _HEX:
        raise ValueError(f"{value!r} is not a sha256 digest")
    return value


def stage(boot_dir: str, state: NewState, disk: Disk | None = None) -> None:
    """Write the new state beside the old one, durable, ending with COMMIT."""
    disk = disk or RealDisk()
    pending = os.path.join(boot_dir, PENDING_DIR)
    discard_pending(boot_dir, disk)
    disk.mkdir(pending)
    disk.fsync(boot_dir)
    for name, data in state.files.items():
        path = os.path.join(pending, check_name(name))
        disk.write(path, data)
        disk.fsync(path)
    commit = json.dumps(
        {
            "files": {name: _sha256(data) for name, data in state.files.items()},
            "remove": [check_name(n) for n in state.remove],
            "counter": state.counter,
        },
        sort_keys=True,
    ).encode()
    disk.write(os.path.join(pending, COMMIT_FILE), commit)
    disk.fsync(os.path.join(pending, COMMIT_FILE))
    disk.fsync(pending)


@dataclass(frozen=True)
class Pending:
    files: dict[str, str]  # name -> sha256
    remove: list[str]
    counter: int
    complete: bool  # every file is in the pending dir or already in place


def _open_pending(boot_dir: str) -> int:
    """A descriptor of kexec.next.d when it is a real directory; OSError when
    it is missing or anything else (a link is refused, never entered)."""
    return os.open(os.path.join(boot_dir, PENDING_DIR), _DIR_FLAGS)


#: a signing writes about ten files; a COMMIT naming more is no signing's
MAX_COMMIT_FILES = 256


def _parse_commit(raw: bytes) -> tuple[dict[str, str], list[str], int]:
    """COMMIT's names, hashes and counter; ValueError for anything else."""
    try:
        doc = json.loads(raw)
    except RecursionError:
        raise ValueError("COMMIT is nested too deeply") from None
    if not isinstance(doc, dict):
        raise ValueError("COMMIT is not an object")
    files, remove, counter = doc.get("files"), doc.get("remove"), doc.get("counter")
    if not isinstance(files, dict) or not isinstance(remove, list):
        raise ValueError("COMMIT lacks its lists")
    if not isinstance(counter, int) or isinstance(counter, bool):
        raise ValueError("COMMIT's counter is not a number")
    if not 0 <= counter < _COUNTER_LIMIT:
        raise ValueError("COMMIT's counter is out of range")
    if len(files) > MAX_COMMIT_FILES or len(remove) > MAX_COMMIT_FILES:
        raise ValueError("COMMIT names more files than a signing writes")
    checked = {check_name(str(k)): _check_digest(v) for k, v in files.items()}
    for name in remove:
        if not isinstance(name, str):
            raise ValueError("COMMIT names a file to remove that is not a name")
    return checked, [check_name(n) for n in remove], counter


def read_pending(boot_dir: str) -> Pending | None:
    """The committed pending state, or None when there is none (or it was cut
    short, so it never committed, or it is not what a signing writes)."""
    try:
        fd = _open_pending(boot_dir)
    except OSError:
        return None
    try:
        raw = read_regular(COMMIT_FILE, MAX_COMMIT_BYTES, dir_fd=fd)
        files, remove, counter = _parse_commit(raw)
        complete = all(_staged_or_in_place(boot_dir, fd, n, d) for n, d in files.items())
    except (OSError, ValueError):
        return None
    finally:
        os.close(fd)
    return Pending(files, remove, counter, complete)


def _staged_or_in_place(boot_dir: str, fd: int, name: str, digest: str) -> bool:
    """The staged file is a regular file with COMMIT's hash; or it is gone
    and the file in /boot has that hash (it was renamed before a cut)."""
    if _lmode(name, dir_fd=fd) is None:
        return _file_sha256(os.path.join(boot_dir, name)) == digest
    return _file_sha256(name, dir_fd=fd) == digest


def _file_sha256(path: str, *, dir_fd: int | None = None) -> str | None:
    """The hash of a regular file of at most MAX_STAGED_BYTES; None for
    anything else (missing, a link, a FIFO, a directory, too large, unreadable)."""
    try:
        return hashlib.sha256(read_regular(path, MAX_STAGED_BYTES, dir_fd=dir_fd)).hexdigest()
    except OSError:
        return None


def roll_forward(boot_dir: str, pending: Pending, disk: Disk | None = None) -> None:
    """Move the committed files into place; safe to repeat after a cut. Only a
    staged regular file with COMMIT's hash is moved; OSError (nothing moved)
    when a file is neither staged so nor already in place."""
    disk = disk or RealDisk()
    directory = os.path.join(boot_dir, PENDING_DIR)
    moves: list[str] = []
    fd = _open_pending(boot_dir)
    try:
        for name in sorted(pending.files):
            digest = pending.files[name]
            staged = _lmode(name, dir_fd=fd) is not None
            if staged and _file_sha256(name, dir_fd=fd) == digest:
                moves.append(name)
            elif staged or _file_sha256(os.path.join(boot_dir, name)) != digest:
                raise UnsafeFile(
                    errno.EINVAL, f"/boot/{PENDING_DIR}/{name} is not the file its COMMIT names"
                )
    finally:
        os.close(fd)
    for name in moves:
        target = os.path.join(boot_dir, name)
        mode = _lmode(target)
        if mode is not None and stat.S_ISDIR(mode):
            disk.rmtree(target)  # a file cannot be renamed over a directory
        disk.rename(os.path.join(directory, name), target)
    disk.fsync(boot_dir)
    for name in pending.remove:
        if name not in pending.files and _lmode(os.path.join(boot_dir, name)) is not None:
            disk.rmtree(os.path.join(boot_dir, name))
    disk.fsync(boot_dir)
    discard_pending(boot_dir, disk)


def _lmode(path: str, *, dir_fd: int | None = None) -> int | None:
    """The mode of path itself (a link is not followed); None when nothing is there."""
    try:
        return os.lstat(path, dir_fd=dir_fd).st_mode
    except FileNotFoundError:
        return None


def discard_pending(boot_dir: str, disk: Disk | None = None) -> None:
    """Remove the pending directory and all it holds: COMMIT first, so a cut
    leaves no commit. Anything else named kexec.next.d (a link, a FIFO, a
    file) is removed as itself."""
    disk = disk or RealDisk()
    directory = os.path.join(boot_dir, PENDING_DIR)
    mode = _lmode(directory)
    if mode is None:
        return
    commit = os.path.join(directory, COMMIT_FILE)
    if stat.S_ISDIR(mode) and os.path.lexists(commit):
        disk.rmtree(commit)
    disk.rmtree(directory)
    disk.fsync(boot_dir)


def staged_files(boot_dir: str) -> dict[str, bytes]:
    """The staged files a signing names (regular, bounded); {} when none."""
    try:
        fd = _open_pending(boot_dir)
    except OSError:
        return {}
    files: dict[str, bytes] = {}
    total = 0
    try:
        names = os.listdir(fd)
        if len(names) > MAX_COMMIT_FILES:
            return {}
        for name in names:
            try:
                files[check_name(name)] = read_regular(name, MAX_STAGED_BYTES, dir_fd=fd)
            except (OSError, ValueError):
                continue  # COMMIT, or no staged file of a signing's
            total += len(files[name])
            if total > 2 * MAX_STAGED_BYTES:
                return {}  # no signing stages that much
    except OSError:
        return {}
    finally:
        os.close(fd)
    return files


def pending_counter_index(boot_dir: str) -> int | None:
    """The NV index of the counter the pending state is signed with."""
    from runtime.integrity.boot_lists import ROLLBACK_FILE, parse_rollback

    try:
        fd = _open_pending(boot_dir)
    except OSError:
        return None
    try:
        return parse_rollback(read_regular(ROLLBACK_FILE, 4096, dir_fd=fd)).nv_index
    except (OSError, ValueError):  # ListFormatError is a ValueError
        return None
    finally:
        os.close(fd)


def settle_pending(boot_dir: str, counter_now: int | None, disk: Disk | None = None) -> str:
    """Finish or drop a state change a power cut interrupted; what was done,
    in plain words ("" when there was nothing to do). Never raises OSError:
    a failure is a sentence."""
    try:
        return _settle(boot_dir, counter_now, disk)
    except OSError as err:
        return (
            f"An interrupted signing of /boot could not be settled: {_plain(err)}. "
            f"Restart to try again; if this repeats, remove /boot/{PENDING_DIR} from the "
            "recovery shell and sign /boot again."
        )


def _settle(boot_dir: str, counter_now: int | None, disk: Disk | None) -> str:
    directory = os.path.join(boot_dir, PENDING_DIR)
    mode = _lmode(directory)
    if mode is None:
        return ""
    if not stat.S_ISDIR(mode):
        discard_pending(boot_dir, disk)
        return (
            f"/boot/{PENDING_DIR} was {kind_of(mode)}, not a signing's staging directory: "
            "it was removed; the earlier state stands."
        )
    pending = read_pending(boot_dir)
    if pending is None or not pending.complete:
        discard_pending(boot_dir, disk)
        return "An interrupted signing of /boot was found and dropped; the earlier state stands."
    if counter_now != pending.counter:
        discard_pending(boot_dir, disk)
        return (
            "An interrupted signing of /boot was found before its rollback counter moved; "
            "it was dropped and the earlier state stands."
        )
    roll_forward(boot_dir, pending, disk)
    return "An interrupted signing of /boot was found and completed."


def _plain(err: OSError) -> str:
    """An OSError as words: UnsafeFile's sentence, else what failed on which file."""
    if isinstance(err, UnsafeFile) or not err.strerror:
        return err.strerror or str(err) or type(err).__name__
    return f"{err.filename}: {err.strerror}" if err.filename else err.strerror
