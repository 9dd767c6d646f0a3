"""Reading a mounted /boot the way Heads' lists were made: the paths `find ./`
prints (the tree) and the regular files `find ./ -type f` hashes, both without
the signed-state files, and the files' sha256, streamed with progress.

Also what Heads' lists leave out and a hostile disk can use: where each
symlink points, and every entry under ./kexec* (the signed-state area, which
no list covers). The work is bounded as it goes: entries are counted as they
are read, the state area's too, and the depth is limited.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from runtime.integrity.boot_lists import is_signed_state_path
from runtime.integrity.boot_paths import BootPathError, open_file

CHUNK = 1 << 20
#: a /boot with more entries than this is not a boot partition
MAX_ENTRIES = 200_000
#: deeper than this is no boot partition's layout
MAX_DEPTH = 64
#: all the files hashed together (sparse files and hard links count in full)
MAX_HASH_BYTES = 4 << 30

#: progress(bytes done, bytes in all, current file)
Progress = Callable[[int, int, str], None]


class ScanError(OSError):
    """/boot could not be read completely: the lists would be wrong. str() is
    the plain sentence it was raised with (never "[Errno N]")."""

    def __str__(self) -> str:
        return str(self.strerror or super().__str__())


@dataclass
class BootScan:
    tree: list[str] = field(default_factory=list)  # './' first, then every path
    files: dict[str, int] = field(default_factory=dict)  # './rel' -> size, regular files
    links: dict[str, str] = field(default_factory=dict)  # './rel' -> where it points
    #: every entry under ./kexec* -> its mode (the firmware's area: checked by name)
    state_area: dict[str, int] = field(default_factory=dict)


def _join(rel: str, name: str) -> str:
    return rel + name if rel.endswith("/") else f"{rel}/{name}"


def scan_boot(root: str) -> BootScan:
    """Every path under root (not following symlinks), as './rel' names."""
    scan = BootScan()
    pending: list[tuple[str, int]] = [("./", 0)]
    seen = 0
    while pending:
        rel, depth = pending.pop()
        if not is_signed_state_path(rel):
            scan.tree.append(rel)
        if depth > MAX_DEPTH:
            raise ScanError(0, f"{rel} is nested deeper than {MAX_DEPTH} directories")
        directory = os.path.join(root, rel[2:]) if rel != "./" else root
        try:
            # a directory must not be swapped for a symlink between listing and reading
            fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as err:
            raise ScanError(err.errno, f"cannot list {rel}: {err.strerror}") from err
        try:
            with os.scandir(fd) as entries:
                for entry in entries:
                    seen += 1
                    if seen > MAX_ENTRIES:
                        raise ScanError(0, f"more than {MAX_ENTRIES} entries under /boot")
                    _record(scan, fd, _join(rel, entry.name), entry, pending, depth)
        except ScanError:
            raise
        except OSError as err:
            raise ScanError(err.errno, f"cannot list {rel}: {err.strerror}") from err
        finally:
            os.close(fd)
    return scan


def _record(
    scan: BootScan,
    dir_fd: int,
    child: str,
    entry: os.DirEntry[str],
    pending: list[tuple[str, int]],
    depth: int,
) -> None:
    try:
        st = entry.stat(follow_symlinks=False)
    except OSError as err:
        raise ScanError(err.errno, f"cannot read {child}: {err.strerror}") from err
    if is_signed_state_path(child):
        scan.state_area[child] = st.st_mode
        if stat.S_ISDIR(st.st_mode):
            pending.append((child, depth + 1))
        return
    if stat.S_ISDIR(st.st_mode):
        pending.append((child, depth + 1))
        return
    scan.tree.append(child)
    if stat.S_ISREG(st.st_mode):
        scan.files[child] = st.st_size
    elif stat.S_ISLNK(st.st_mode):
        try:
            scan.links[child] = os.readlink(entry.name, dir_fd=dir_fd)
        except OSError as err:
            raise ScanError(err.errno, f"cannot read the link {child}: {err.strerror}") from err


def hash_fd(
    fd: int, done: int = 0, total: int = 0, progress: Progress | None = None, name: str = ""
) -> str:
    """sha256 of an open file, read in 1 MiB chunks into one buffer (no copies)."""
    h = hashlib.sha256()
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    while n := os.readv(fd, [view]):
        h.update(view[:n])
        done += n
        if progress:
            progress(done, total, name)
    return h.hexdigest()


def hash_files(
    root: str, files: dict[str, int] | Iterable[str], progress: Progress | None = None
) -> dict[str, str]:
    """{'./rel': sha256 hex} for the given files under root, each opened with
    no symlink followed and only when it is still a regular file."""
    sizes = files if isinstance(files, dict) else dict.fromkeys(files, 0)
    total = sum(sizes.values())
    if total > MAX_HASH_BYTES:
        raise ScanError(
            0,
            f"the files under /boot add up to {total >> 20} MiB, more than "
            f"{MAX_HASH_BYTES >> 30} GiB: no boot partition holds that much",
        )
    done = 0
    out: dict[str, str] = {}
    for rel in sorted(sizes):
        try:
            fd = open_file(root, rel)
        except BootPathError as err:
            raise ScanError(0, f"cannot read {rel}: {err}") from err
        try:
            out[rel] = hash_fd(fd, done, total, progress, rel)
        except OSError as err:
            raise ScanError(err.errno, f"cannot read {rel}: {err.strerror}") from err
        finally:
            os.close(fd)
        done += sizes[rel]
    return out
