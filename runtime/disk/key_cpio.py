"""The small RAM-only cpio appended to the OS's initrd at kexec: the DUK as
`secret.key` at the archive's root and the crypttab files that name it
(heads-facts.md §5.4). The kernel unpacks it over the OS's own initramfs, so
these files replace the OS's crypttab files.

newc ("070701") as the kernel reads it (Documentation/driver-api/early-userspace/
buffer-format.rst), every field fixed so the same input gives the same bytes:
owner 0:0, mtime 0, inode numbers counting from 1 in archive order, nlink 1 for
files and 2 for directories, no device numbers; each header+name and each
file's data padded to 4 bytes; the `TRAILER!!!` entry; the whole padded to 512.

The archive holds the disk key, so it is built in one bytearray of its final
size (growing it would leave the key in the freed old buffer) and the key is
copied in straight from the caller's buffer. The returned bytearray is the one
copy made here, and the caller wipes it (runtime.secrets.ram.wipe_buffer). A key
passed as `bytes` is already an immutable copy the caller cannot wipe: pass a
bytearray.
"""

from __future__ import annotations

import stat
from collections.abc import Mapping
from dataclasses import dataclass

MAGIC = b"070701"
TRAILER = "TRAILER!!!"
#: at the archive's root, so /secret.key in the OS's initramfs
KEY_FILE_NAME = "secret.key"
KEY_MODE = stat.S_IFREG | 0o400
FILE_MODE = stat.S_IFREG | 0o644
DIR_MODE = stat.S_IFDIR | 0o755
ARCHIVE_BLOCK = 512

_HEADER_SIZE = len(MAGIC) + 13 * 8
_MAX_FIELD = (1 << 32) - 1


class KeyCpioError(ValueError):
    """An archive member that cannot be written (plain words)."""


@dataclass(frozen=True)
class _Member:
    name: bytes
    mode: int
    data: bytes | memoryview  # empty for a directory

    @property
    def nlink(self) -> int:
        return 2 if stat.S_ISDIR(self.mode) else 1


_TRAILER = _Member(TRAILER.encode(), 0, b"")


def _padded(length: int) -> int:
    return length + (-length % 4)


def _checked_name(name: str) -> bytes:
    """A relative name the kernel puts where it says: nothing absolute or
    climbing, no empty or '.' component, nothing that ends a header's name."""
    if not name:
        raise KeyCpioError("an archive member has an empty name")
    if name.startswith("/"):
        raise KeyCpioError(f"the archive name {name!r} is absolute")
    if ".." in name:
        raise KeyCpioError(f"the archive name {name!r} contains '..'")
    if "\0" in name or "\n" in name:
        raise KeyCpioError(f"the archive name {name!r} contains a NUL or a line break")
    if name == TRAILER or any(part in ("", ".") for part in name.split("/")):
        raise KeyCpioError(f"the archive name {name!r} is not a plain relative path")
    try:
        return name.encode("utf-8")
    except UnicodeEncodeError:
        raise KeyCpioError(f"the archive name {name!r} cannot be encoded as UTF-8") from None


def _members(key: memoryview, crypttabs: Mapping[str, bytes]) -> list[_Member]:
    """The key first, then each crypttab in byte order, its missing parent
    directories just before it."""
    members = [_Member(KEY_FILE_NAME.encode(), KEY_MODE, key)]
    files = {KEY_FILE_NAME.encode()}
    directories: set[bytes] = set()
    for encoded, original in sorted((_checked_name(n), n) for n in crypttabs):
        parts = encoded.split(b"/")
        for depth in range(1, len(parts)):
            parent = b"/".join(parts[:depth])
            if parent in files:
                raise KeyCpioError(f"{parent.decode()!r} would be both a file and a directory")
            if parent not in directories:
                directories.add(parent)
                members.append(_Member(parent, DIR_MODE, b""))
        if encoded in files:
            raise KeyCpioError(f"the archive name {original!r} is given twice")
        if encoded in directories:
            raise KeyCpioError(f"{original!r} would be both a file and a directory")
        files.add(encoded)
        members.append(_Member(encoded, FILE_MODE, crypttabs[original]))
    return members


def _header(inode: int, member: _Member) -> bytes:
    size = len(member.data)
    fields = (inode, member.mode, 0, 0, member.nlink, 0, size, 0, 0, 0, 0, len(member.name) + 1, 0)
    return MAGIC + b"".join(b"%08X" % value for value in fields) + member.name


def _entry_size(member: _Member) -> int:
    return _padded(_HEADER_SIZE + len(member.name) + 1) + _padded(len(member.data))


def _put(out: memoryview, offset: int, inode: int, member: _Member) -> int:
    """Write one entry at `offset` (the zeros of its padding are already there);
    returns where the next one starts."""
    header = _header(inode, member)
    out[offset : offset + len(header)] = header
    offset = _padded(offset + len(header) + 1)  # +1: the name's NUL
    # an equal-length slice: copied straight from the caller's buffer, nothing resized
    out[offset : offset + len(member.data)] = member.data
    return _padded(offset + len(member.data))


def build_key_cpio(
    key: bytes | bytearray | memoryview, crypttabs: Mapping[str, bytes]
) -> bytearray:
    """The archive: `secret.key` (0400) holding `key`, and {relative path:
    content} crypttab files (0644) under their directories (0755). The caller
    wipes the result."""
    for name, content in crypttabs.items():
        if len(content) > _MAX_FIELD:
            raise KeyCpioError(f"{name!r} is too large for a cpio entry")
    with memoryview(key) as given:
        if not given.c_contiguous:
            raise KeyCpioError("the disk key is not in one contiguous buffer")
        with given.cast("B") as key_bytes:
            if not 0 < len(key_bytes) <= _MAX_FIELD:
                raise KeyCpioError("the disk key is empty or too large for a cpio entry")
            members = _members(key_bytes, crypttabs)
            size = sum(_entry_size(m) for m in [*members, _TRAILER])
            # one allocation of the final size, zeroed: growing it would leave the key behind
            archive = bytearray(size + (-size % ARCHIVE_BLOCK))
            with memoryview(archive) as out:
                offset = 0
                for inode, member in enumerate(members, start=1):
                    offset = _put(out, offset, inode, member)
                _put(out, offset, 0, _TRAILER)
    return archive
