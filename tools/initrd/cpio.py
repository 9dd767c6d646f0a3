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
    fields = (
        ino,
        entry.mode,
        0,
        0,
        nlink,
        mtime,
        size,
        0,
        0,
        rdev_major,
        rdev_minor,
        len(name) + 1,
        0,
    )
    return MAGIC + b"".join(b"%08X" % value for value in fields)


def _check_entry(entry: Entry) -> None:
    parts = entry.path.split("/")
    if (
        entry.path == TRAILER
        or not entry.path
        or entry.path.startswith("/")
        or any(p in ("", ".", "..") for p in parts)
    ):
        raise ValueError(f"bad archive path {entry.path!r}")
    kind = stat.S_IFMT(entry.mode)
    if kind not in (stat.S_IFREG, stat.S_IFDIR, stat.S_IFLNK, stat.S_IFCHR):
        raise ValueError(f"{entry.path}: only files, directories, symlinks and char devices")
    if len(entry.data) >= 1 << 32:
        raise ValueError(f"{entry.path}: too large for a cpio header")


def write_archive(out: BinaryIO, entries: Iterable[Entry], mtime: int) -> int:
    """Write entries sorted by path (parents first), then the trailer; returns bytes written."""
    ordered = sorted(entries, key=lambda e: e.path.split("/"))
    paths = [e.path for e in ordered]
    if len(set(paths)) != len(paths):
        raise ValueError("duplicate paths in the archive")
    if not 0 <= mtime < 1 << 32:
        raise ValueError(f"mtime {mtime} does not fit a cpio header")
    for entry in ordered:
        _check_entry(entry)
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


_HEADER_SIZE = len(MAGIC) + 13 * 8
_FIELDS = (
    "ino",
    "mode",
    "uid",
    "gid",
    "nlink",
    "mtime",
    "filesize",
    "devmajor",
    "devminor",
    "rdevmajor",
    "rdevminor",
    "namesize",
    "check",
)
_HEX = frozenset(b"0123456789abcdefABCDEF")


def read_header(data: bytes, offset: int) -> dict[str, int]:
    """The 13 numeric fields of the newc header at ``offset``, by name."""
    raw = data[offset : offset + _HEADER_SIZE]
    if len(raw) < _HEADER_SIZE:
        raise ValueError(
            f"cpio archive truncated: header at byte {offset} has "
            f"{len(raw)} of {_HEADER_SIZE} bytes"
        )
    if raw[: len(MAGIC)] != MAGIC:
        raise ValueError(
            f"cpio header at byte {offset}: bad magic {raw[: len(MAGIC)]!r}, "
            f"expected {MAGIC!r} (newc)"
        )
    fields: dict[str, int] = {}
    for i, name in enumerate(_FIELDS):
        text = raw[len(MAGIC) + 8 * i : len(MAGIC) + 8 * (i + 1)]
        if not set(text) <= _HEX:
            raise ValueError(f"cpio header at byte {offset}: field {name} is not hex: {text!r}")
        fields[name] = int(text, 16)
    return fields


def read_archive(data: bytes) -> list[Entry]:
    """Parse a newc archive up to its trailer; the inverse of `write_archive`.

    Char devices get back their "major:minor" data; directories carry no data.
    Raises ValueError on a bad magic, a malformed header or a truncated archive.
    """
    entries: list[Entry] = []
    offset = 0
    while True:
        if offset >= len(data):
            raise ValueError(
                f"cpio archive truncated: it ends at byte {offset} without the {TRAILER} entry"
            )
        fields = read_header(data, offset)
        name_start = offset + _HEADER_SIZE
        name_end = name_start + fields["namesize"]
        if fields["namesize"] == 0:
            raise ValueError(f"cpio header at byte {offset}: empty name")
        if name_end > len(data):
            raise ValueError(f"cpio archive truncated: name of the entry at byte {offset}")
        raw_name = data[name_start:name_end]
        if raw_name[-1:] != b"\0":
            raise ValueError(f"cpio header at byte {offset}: name is not NUL-terminated")
        try:
            path = raw_name[:-1].decode()
        except UnicodeDecodeError:
            raise ValueError(
                f"cpio header at byte {offset}: name {raw_name[:-1]!r} is not UTF-8"
            ) from None
        if path == TRAILER:
            return entries
        body_start = name_end + (-name_end % 4)
        body_end = body_start + fields["filesize"]
        if body_end > len(data):
            raise ValueError(
                f"cpio archive truncated: {path} needs {fields['filesize']} bytes "
                f"at byte {body_start}, {max(0, len(data) - body_start)} remain"
            )
        mode = fields["mode"]
        body = data[body_start:body_end]
        if stat.S_ISCHR(mode):
            body = f"{fields['rdevmajor']}:{fields['rdevminor']}".encode()
        entries.append(Entry(path, mode, body))
        offset = body_end + (-body_end % 4)
