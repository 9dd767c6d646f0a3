"""Reading a mounted /boot the way Heads' lists were made: the paths `find ./`
prints (the tree) and the regular files `find ./ -type f` hashes, both without
the signed-state files, and the files' sha256, streamed with progress.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from runtime.integrity.boot_lists import is_signed_state_path

CHUNK = 1 << 20
#: a /boot with more entries than this is not a boot partition
MAX_ENTRIES = 200_000

#: progress(bytes done, bytes in all, current file)
Progress = Callable[[int, int, str], None]


class ScanError(OSError):
    """/boot could not be read completely: the lists would be wrong."""


@dataclass
class BootScan:
    tree: list[str] = field(default_factory=list)  # './' first, then every path
    files: dict[str, int] = field(default_factory=dict)  # './rel' -> size, regular files


def _join(rel: str, name: str) -> str:
    return rel + name if rel.endswith("/") else f"{rel}/{name}"


def scan_boot(root: str) -> BootScan:
    """Every path under root (not following symlinks), as './rel' names."""
    scan = BootScan()
    pending = ["./"]
    while pending:
        rel = pending.pop()
        if not is_signed_state_path(rel):
            scan.tree.append(rel)
        directory = os.path.join(root, rel[2:]) if rel != "./" else root
        try:
            entries = list(os.scandir(directory))
        except OSError as err:
            raise ScanError(err.errno, f"cannot list {rel}: {err.strerror}") from err
        for entry in entries:
            child = _join(rel, entry.name)
            if len(scan.tree) + len(pending) > MAX_ENTRIES:
                raise ScanError(0, f"more than {MAX_ENTRIES} entries under /boot")
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError as err:
                raise ScanError(err.errno, f"cannot read {child}: {err.strerror}") from err
            if stat.S_ISDIR(st.st_mode):
                pending.append(child)
                continue
            if is_signed_state_path(child):
                continue
            scan.tree.append(child)
            if stat.S_ISREG(st.st_mode):
                scan.files[child] = st.st_size
    return scan


def hash_file(
    path: str, done: int = 0, total: int = 0, progress: Progress | None = None, name: str = ""
) -> str:
    """sha256 of one file, read in 1 MiB chunks into one buffer (no copies)."""
    h = hashlib.sha256()
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(view):
            h.update(view[:n])
            done += n
            if progress:
                progress(done, total, name)
    return h.hexdigest()


def hash_files(
    root: str, files: dict[str, int] | Iterable[str], progress: Progress | None = None
) -> dict[str, str]:
    """{'./rel': sha256 hex} for the given files under root."""
    sizes = files if isinstance(files, dict) else dict.fromkeys(files, 0)
    total = sum(sizes.values())
    done = 0
    out: dict[str, str] = {}
    for rel in sorted(sizes):
        path = os.path.join(root, rel[2:])
        try:
            out[rel] = hash_file(path, done, total, progress, rel)
        except OSError as err:
            raise ScanError(err.errno, f"cannot read {rel}: {err.strerror}") from err
        done += sizes[rel]
    return out
