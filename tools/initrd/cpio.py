"""A reproducible cpio "newc" archive writer, for the kernel's initramfs.

Written by hand rather than with cpio(1) or libarchive because every header
field must be fixed for bit-for-bit reproducibility: inode numbers in entry
order, owner 0:0, one mtime, sorted entries, no device numbers. The format is
the kernel's (Documentation/driver-api/early-userspace/buffer-format.rst).
"""

from __future__ import annotations

import stat
from collections.abc import Iterable
from dataclasses import dataclass
from typing import BinaryIO

MAGIC = b"070701"
TRAILER = "TRAILER!!!"


@dataclass(frozen=True)
class Entry:
    """One archive member; `path` is relative ("usr/bin/python3.11")."""

    path: str
    mode: int  # full st_mode: type bits and permission bits
    data: bytes = b""  # file contents, or the target of a symlink

    @staticmethod
    def directory(path: str) -> Entry:
        return Entry(path, stat.S_IFDIR | 0o755)

    @staticmethod
    def file(path: str, data: bytes, executable: bool = False) -> Entry:
        return Entry(path, stat.S_IFREG | (0o755 if executable else 0o644), data)

    @staticmethod
    def symlink(path: str, target: str) -> Entry:
        return Entry(path, stat.S_IFLNK | 0o777, target.encode())

    @staticmethod
    def char_device(path: str, major: int, minor: int, mode: int = 0o600) -> Entry:
        return Entry(path, stat.S_IFCHR | mode, f"{major}:{minor}".encode())


def _pad(length: int) -> bytes:
    return b"\0" * (-length % 4)


def _header(ino: int, entry: Entry, name: bytes, size: int, mtime: int) -> bytes:
    rdev_major = rdev_minor = 0
    if stat.S_ISCHR(entry.mode):
        major, minor = entry.data.decode().split(":")
        rdev_major, rdev_minor = int(major), int(minor)
    nlink = 2 if stat.S_ISDIR(entry.mode) else 1
    fields = (ino, entry.mode, 0, 0, nlink, mtime, size, 0, 0,
              rdev_major, rdev_minor, len(name) + 1, 0)
    return MAGIC + b"".join(b"%08X" % value for value in fields)


def write_archive(out: BinaryIO, entries: Iterable[Entry], mtime: int) -> int:
    """Write entries sorted by path (parents first), then the trailer; returns bytes written."""
    ordered = sorted(entries, key=lambda e: e.path.split("/"))
    paths = [e.path for e in ordered]
    if len(set(paths)) != len(paths):
        raise ValueError("duplicate paths in the archive")
    written = 0
    for ino, entry in enumerate([*ordered, Entry(TRAILER, 0)], start=1):
        name = entry.path.encode()
        body = b"" if stat.S_ISDIR(entry.mode) or stat.S_ISCHR(entry.mode) else entry.data
        trailer = entry.path == TRAILER
        header = _header(0 if trailer else ino, entry, name, len(body), 0 if trailer else mtime)
        chunk = header + name + b"\0"
        chunk += _pad(len(chunk)) + body + _pad(len(body))
        out.write(chunk)
        written += len(chunk)
    return written
