"""The OS root file system's hashes (CONFIG_ROOT_*), as Heads keeps them:
kexec_root_hashes.txt on /boot, `sha256sum` lines for every regular file
under the listed directories (`cd /root && find DIRS -type f ! -name
'*kexec*'`), signed with the rest of /boot's state.

The root file system is hostile input like /boot: no symlink is followed
(a listed directory that is a symlink, as /bin is on merged-/usr systems,
lists nothing, as find does), FIFOs and devices are never opened, and the
walk is bounded. A name a sha256sum list cannot hold (a line break, a
backslash) is never silently left out: it is reported.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from runtime.integrity.boot_lists import ListFormatError, format_sum_line, parse_sums, sort_key
from runtime.integrity.boot_scan import hash_fd
from runtime.integrity.safe_read import UnsafeFile, open_regular

ROOT_HASHES_FILE = "kexec_root_hashes.txt"
#: more than any OS's bin, lib, sbin and usr hold (directories count too)
MAX_ENTRIES = 2_000_000
MAX_DEPTH = 64
#: all the files hashed together: a sparse file can claim terabytes
MAX_ROOT_BYTES = 128 << 30
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

#: progress(files done, files in all, current file)
Progress = Callable[[int, int, str], None]


class RootHashError(OSError):
    """The root file system could not be read completely; str() says why."""

    def __str__(self) -> str:
        return str(self.strerror or super().__str__())


@dataclass
class RootHashes:
    digests: dict[str, str] = field(default_factory=dict)  # 'usr/bin/ls' -> hex
    #: names no sha256sum list can hold: reported, never left out silently
    unlistable: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RootCheck:
    changed: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    added: tuple[str, ...] = ()
    checked: int = 0

    @property
    def ok(self) -> bool:
        return not (self.changed or self.missing or self.added)


@dataclass
class _Walk:
    files: list[str] = field(default_factory=list)
    entries: int = 0
    size: int = 0
    seen: set[tuple[int, int]] = field(default_factory=set)  # directories (dev, inode)


def _walk(dir_fd: int, rel: str, depth: int, walk: _Walk) -> None:
    if depth > MAX_DEPTH:
        raise RootHashError(0, f"{rel} is nested deeper than {MAX_DEPTH} directories")
    here = os.fstat(dir_fd)
    if (here.st_dev, here.st_ino) in walk.seen:
        # no file system an OS made links a directory twice: a crafted one
        # could make the walk endless
        raise RootHashError(0, f"{rel} is a directory met twice (a crafted file system)")
    walk.seen.add((here.st_dev, here.st_ino))
    with os.scandir(dir_fd) as entries:
        children = sorted(entries, key=lambda e: sort_key(e.name))
    for entry in children:
        child = f"{rel}/{entry.name}"
        walk.entries += 1
        if walk.entries > MAX_ENTRIES:
            raise RootHashError(
                0,
                f"more than {MAX_ENTRIES} entries under the listed "
                "directories: no root file system holds that many",
            )
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError as err:
            raise RootHashError(err.errno, f"cannot read {child}: {err.strerror}") from err
        mode = st.st_mode
        if stat.S_ISDIR(mode):
            try:
                sub = os.open(entry.name, _DIR_FLAGS, dir_fd=dir_fd)
            except OSError as err:
                raise RootHashError(err.errno, f"cannot open {child}: {err.strerror}") from err
            try:
                _walk(sub, child, depth + 1, walk)
            finally:
                os.close(sub)
        elif stat.S_ISREG(mode) and "kexec" not in entry.name:
            walk.files.append(child)
            walk.size += st.st_size
            if walk.size > MAX_ROOT_BYTES:
                raise RootHashError(
                    0,
                    f"the listed files add up to more than "
                    f"{MAX_ROOT_BYTES >> 30} GiB (a sparse file?)",
                )


def _open_listed(root: str, directory: str) -> int | None:
    """The listed directory, each component opened without following a
    symlink (None, as find lists nothing, when one is a symlink or missing)."""
    parts = directory.split("/")
    if directory.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise RootHashError(
            0,
            f"{directory!r} is not a directory of the root file system "
            "(write names such as usr or usr/lib, no leading or trailing /)",
        )
    fd = os.open(root, _DIR_FLAGS)
    for part in parts:
        try:
            sub = os.open(part, _DIR_FLAGS, dir_fd=fd)
        except OSError:
            os.close(fd)
            return None  # a symlink (merged /usr's /bin), missing, or no directory
        os.close(fd)
        fd = sub
    return fd


def list_files(root: str, dirs: Sequence[str]) -> list[str]:
    """The regular files under root/dir for each dir, as 'dir/...' paths."""
    walk = _Walk()
    for directory in dirs:
        fd = _open_listed(root, directory)
        if fd is None:
            continue
        try:
            _walk(fd, directory, 0, walk)
        finally:
            os.close(fd)
    return walk.files


def hash_root(root: str, dirs: Sequence[str], progress: Progress | None = None) -> RootHashes:
    """Every listed directory's regular files and their sha256."""
    files = list_files(root, dirs)
    out = RootHashes()
    for done, rel in enumerate(files):
        if any(c in rel for c in "\n\r\\"):
            out.unlistable.append(rel)
            continue
        try:
            fd = open_regular(os.path.join(root, rel), shown=rel)
        except FileNotFoundError:
            continue  # gone while the OS is not running: only a live system does that
        except UnsafeFile as err:
            raise RootHashError(err.errno, str(err)) from err
        try:
            out.digests[rel] = hash_fd(fd)
        except OSError as err:
            raise RootHashError(err.errno, f"cannot read {rel}: {err.strerror}") from err
        finally:
            os.close(fd)
        if progress:
            progress(done + 1, len(files), rel)
    return out


def format_root_hashes(hashes: RootHashes) -> bytes:
    """The list, sorted, so the same tree gives the same bytes."""
    if hashes.unlistable:
        raise ListFormatError(
            f"{len(hashes.unlistable)} file name(s) no sha256sum list can "
            f"hold, for example {hashes.unlistable[0]!r}"
        )
    return os.fsencode(
        "".join(
            format_sum_line(hashes.digests[rel], rel)
            for rel in sorted(hashes.digests, key=sort_key)
        )
    )


def parse_root_hashes(data: bytes) -> dict[str, str]:
    lines = parse_sums(data, ROOT_HASHES_FILE, MAX_ENTRIES)
    return {line.name: line.digest for line in lines}


def compare(expected: dict[str, str], found: RootHashes) -> RootCheck:
    """What differs between the signed list and the root file system now."""
    actual = found.digests
    changed = sorted(
        (n for n in expected.keys() & actual.keys() if expected[n] != actual[n]), key=sort_key
    )
    missing = sorted(expected.keys() - actual.keys(), key=sort_key)
    added = sorted([*(actual.keys() - expected.keys()), *found.unlistable], key=sort_key)
    return RootCheck(tuple(changed), tuple(missing), tuple(added), len(actual))
