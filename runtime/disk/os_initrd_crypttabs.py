"""The crypttab files inside an OS initrd, read when the owner saves a default
boot with the Disk Unlock Key set up: their lines become
kexec_initrd_crypttab_overrides.txt (runtime.disk.crypttab.override_lines), as
Heads reads them with its unpack_initramfs.

An initrd is read as the kernel unpacks it (init/initramfs.c): parts one after
the other, zero bytes between them skipped. A part is an uncompressed newc
cpio archive ("070701", or "070702" with checksums), as distributions put the
early microcode first, or a compressed stream holding whole cpio archives:
gzip (zlib), xz and lzma (liblzma), zstd (the zstd program: Python 3.11 has no
zstd module). bzip2, lzo and lz4 are not unpacked. Kept: every regular file
whose name, without a leading "/" or "./", is_override_path accepts. As in
the kernel, a later entry of the same path replaces the earlier one (a later
directory, link or device there removes the crypttab); a crypttab that is a
hard link (nlink of 2 or more) is refused rather than followed.

The initrd is hostile input even after its signature was checked: every
count and size is bounded, decompression streams under MAX_UNPACKED_BYTES
(a decompression bomb costs at most that much work and one piece of memory),
file bodies are skipped, not kept, and nothing of this raises. Whatever
cannot be read ends the reading with `problem`, a plain sentence saying
why; the files found before it are returned with it, and the caller decides
what to use (the default crypttab lines, say). A 070702 checksum is checked
for the crypttab files kept, not for the files skipped.
"""

from __future__ import annotations

import os
import re
import select
import stat
import subprocess
import time
import zlib
from collections.abc import Generator, Iterator
from contextlib import suppress
from dataclasses import dataclass

from runtime.disk.key_lists import MAX_FILE_BYTES, is_override_path

#: an OS initrd unpacks to tens of MiB; more than this is not one
MAX_UNPACKED_BYTES = 512 * 1024 * 1024
#: entries of all its archives (a distribution's initrd holds a few thousand)
MAX_ENTRIES = 200_000
#: parts (cpio archives and compressed streams); distributions make two or three
MAX_PARTS = 64
#: PATH_MAX, the terminating NUL included: the kernel skips an entry with a longer name
MAX_NAME_BYTES = 4096
MAX_CRYPTTAB_BYTES = MAX_FILE_BYTES
MAX_CRYPTTABS = 32
#: where the image puts it (an absolute path: PATH is not trusted)
ZSTD = "/usr/bin/zstd"
#: one zstd run over a whole part, at most MAX_UNPACKED_BYTES out
ZSTD_TIMEOUT = 120.0
#: what xz -9 needs (64 MiB dictionary) with room; also the zstd program's limit
DECODER_MEMORY = 128 * 1024 * 1024
#: a zstd block carries up to 128 KiB: this many is far more than an initrd has
MAX_ZSTD_BLOCKS = 1 << 20

_MIB = 1024 * 1024
_CPIO_MAGICS = (b"070701", b"070702")
_TRAILER = b"TRAILER!!!"
_HEADER_SIZE = 110
_HEX_FIELDS = re.compile(rb"[0-9A-Fa-f]{104}")
_NONZERO = re.compile(rb"[^\x00]")
_IN_CHUNK = 1 << 16
#: what one decompressor call may return: bounds the memory a piece takes
_OUT_CHUNK = 1 << 20
_GZIP_WBITS = 16 + zlib.MAX_WBITS
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
#: the kernel knows a compressed part by its first two bytes (lib/decompress.c)
_FORMATS = {
    b"\x1f\x8b": "gzip",
    b"\xfd\x37": "xz",
    b"\x5d\x00": "lzma",
    b"\x28\xb5": "zstd",
    b"\x1f\x9e": "old gzip",
    b"\x42\x5a": "bzip2",
    b"\x89\x4c": "lzo",
    b"\x02\x21": "lz4",
}
#: a compressed part's output, piece by piece (closed: its work stops)
_Pieces = Generator[bytes, None, None]
_UNPACKED = ("gzip", "xz", "lzma", "zstd")
_ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth")


@dataclass(frozen=True)
class InitrdCrypttabs:
    #: {path in the initrd, relative ("etc/crypttab"): content}, in unpacking order
    files: dict[str, bytes]
    #: what each part read was: "cpio", "gzip", "xz", "lzma" or "zstd"
    parts: tuple[str, ...]
    #: None when the whole initrd was read; else why reading stopped (plain words)
    problem: str | None = None


class _Unreadable(Exception):
    """Reading stops here; the message is the problem, in plain words."""


class _Damaged(Exception):
    """A compressed part cannot be read on; the message says how, after the
    part's name ("is cut short")."""


def _part_name(number: int) -> str:
    if number <= len(_ORDINALS):
        return f"the initrd's {_ORDINALS[number - 1]} part"
    return f"part {number} of the initrd"


class _Budget:
    """The bytes all compressed parts may still unpack to."""

    def __init__(self) -> None:
        self.left = MAX_UNPACKED_BYTES

    def take(self, size: int) -> None:
        self.left -= size
        if self.left < 0:
            raise _Unreadable(
                f"the initrd unpacks to more than {MAX_UNPACKED_BYTES // _MIB} MiB, "
                "more than an OS initrd holds"
            )


@dataclass
class _End:
    """Where a compressed part ended in the initrd, once it was read to its end."""

    at: int = -1


class _Stream:
    """One part's bytes in order, from pieces; `offset` counts the bytes taken."""

    def __init__(self, pieces: Iterator[bytes | memoryview]) -> None:
        self._pieces = pieces
        self._piece: bytes | memoryview = b""
        self._at = 0
        self.offset = 0

    def _available(self) -> int:
        while self._at >= len(self._piece):
            piece = next(self._pieces, None)
            if piece is None:
                return 0
            self._piece, self._at = piece, 0
        return len(self._piece) - self._at

    def _take(self, size: int, keep: bool) -> bytes | None:
        """`size` bytes (joined when kept), or None when the stream ends first."""
        kept: list[bytes] = []
        while size:
            available = self._available()
            if not available:
                return None
            count = min(available, size)
            if keep:
                kept.append(bytes(self._piece[self._at : self._at + count]))
            self._at += count
            self.offset += count
            size -= count
        return b"".join(kept)

    def read(self, size: int) -> bytes | None:
        return self._take(size, keep=True)

    def skip(self, size: int) -> bool:
        return self._take(size, keep=False) is not None

    def next_nonzero(self) -> int | None:
        """Skips zero bytes; the next byte (left in the stream), or None at its end."""
        while self._available():
            found = _NONZERO.search(self._piece, self._at)
            if found is not None:
                self.offset += found.start() - self._at
                self._at = found.start()
                return self._piece[self._at]
            self.offset += len(self._piece) - self._at
            self._at = len(self._piece)
        return None


class _Walk:
    """The cpio entries of every part, the crypttab files kept."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.entries = 0

    def archives(self, stream: _Stream, part: str) -> None:
        """A decompressed part: whole archives, zero padding between them."""
        while (following := stream.next_nonzero()) is not None:
            if following != ord("0") or stream.offset % 4:
                raise _Unreadable(
                    f"{part} holds data after its cpio archive that is not another archive"
                )
            self.archive(stream, part)

    def archive(self, stream: _Stream, part: str) -> None:
        """One archive, up to and with its trailer entry."""
        while self._entry(stream, part):
            pass

    def _entry(self, stream: _Stream, part: str) -> bool:
        """One entry; False after the trailer."""
        start = stream.offset
        header = stream.read(_HEADER_SIZE)
        if header is None:
            raise _Unreadable(f"the cpio archive in {part} is cut short")
        magic = header[:6]
        if magic not in _CPIO_MAGICS or not _HEX_FIELDS.fullmatch(header, 6):
            raise _Unreadable(f"the cpio archive in {part} has a damaged entry at byte {start}")
        fields = [int(header[at : at + 8], 16) for at in range(6, _HEADER_SIZE, 8)]
        mode, nlink, size, name_size = fields[1], fields[4], fields[6], fields[11]
        check = fields[12] if magic == b"070702" else None
        body_end = start + _padded(_HEADER_SIZE + name_size) + size
        if not 0 < name_size <= MAX_NAME_BYTES:
            # the kernel skips such an entry whole
            return self._skip_to(stream, _padded(body_end), part)
        name = stream.read(name_size)
        if name is None or not stream.skip(-stream.offset % 4):
            raise _Unreadable(f"the cpio archive in {part} is cut short")
        if name[-1] != 0:
            raise _Unreadable(f"an entry's name in {part} does not end as cpio names do")
        # the kernel reads the name as a C string: it ends at the first NUL
        name = name[: name.index(0) + 1]
        if name[:-1] == _TRAILER:
            self._skip_to(stream, _padded(body_end), part)
            return False
        self.entries += 1
        if self.entries > MAX_ENTRIES:
            raise _Unreadable(f"the initrd holds more than {MAX_ENTRIES} files")
        path = _crypttab_path(name[:-1])
        if path is not None and stat.S_ISREG(mode):
            self._keep(stream, path, nlink, size, check)
        elif path in self.files and _replaces(mode, size):
            del self.files[path]
        return self._skip_to(stream, _padded(body_end), part)

    def _keep(self, stream: _Stream, path: str, nlink: int, size: int, check: int | None) -> None:
        if nlink >= 2:
            raise _Unreadable(f"/{path} in the initrd is a hard link, which is not followed")
        if size > MAX_CRYPTTAB_BYTES:
            raise _Unreadable(f"/{path} in the initrd is larger than {MAX_CRYPTTAB_BYTES} bytes")
        if path not in self.files and len(self.files) >= MAX_CRYPTTABS:
            raise _Unreadable(f"the initrd holds more than {MAX_CRYPTTABS} crypttab files")
        content = stream.read(size)
        if content is None:
            raise _Unreadable(f"/{path} in the initrd is cut short")
        if check is not None and sum(content) & 0xFFFFFFFF != check:
            raise _Unreadable(f"/{path} in the initrd does not match its cpio checksum")
        self.files[path] = content

    @staticmethod
    def _skip_to(stream: _Stream, offset: int, part: str) -> bool:
        if not stream.skip(offset - stream.offset):
            raise _Unreadable(f"the cpio archive in {part} is cut short")
        return True


def _padded(offset: int) -> int:
    return offset + (-offset % 4)


def _crypttab_path(name: bytes) -> str | None:
    """The entry's path as kept, or None ('..', control characters, odd names).
    Empty and '.' components go, as in the kernel's path walk; a directory
    symlink the archive made earlier is not followed."""
    try:
        path = name.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if path.endswith(("/", "/.")):
        return None  # the kernel cannot create a file by such a name
    path = "/".join(c for c in path.split("/") if c not in ("", "."))
    return path if is_override_path(path) else None


def _replaces(mode: int, size: int) -> bool:
    """Whether a non-regular entry removes a file of its path, as the kernel
    unpacks it: it makes links and empty directories and devices, and skips
    the rest."""
    if stat.S_ISLNK(mode):
        return size <= MAX_NAME_BYTES
    return size == 0


def _gunzip(data: memoryview, start: int, end: _End, budget: _Budget) -> _Pieces:
    inflater = zlib.decompressobj(wbits=_GZIP_WBITS)
    at = start
    feed: bytes | memoryview = b""
    while not inflater.eof:
        if not feed:
            if at >= len(data):
                raise _Damaged("is cut short")
            feed = data[at : at + _IN_CHUNK]
            at += len(feed)
        try:
            out = inflater.decompress(feed, _OUT_CHUNK)
        except zlib.error:
            raise _Damaged("is not valid gzip data") from None
        feed = inflater.unconsumed_tail
        budget.take(len(out))
        yield out
    end.at = at - len(inflater.unused_data)


def _unxz(data: memoryview, start: int, end: _End, budget: _Budget, kind: str) -> _Pieces:
    try:
        import lzma
    except ImportError:
        raise _Damaged(f"is compressed with {kind}, which this firmware cannot unpack") from None
    form = lzma.FORMAT_XZ if kind == "xz" else lzma.FORMAT_ALONE
    decoder = lzma.LZMADecompressor(format=form, memlimit=DECODER_MEMORY)
    at = start
    while not decoder.eof:
        feed: bytes | memoryview = b""
        if decoder.needs_input:
            if at >= len(data):
                raise _Damaged("is cut short")
            feed = data[at : at + _IN_CHUNK]
            at += len(feed)
        try:
            out = decoder.decompress(feed, _OUT_CHUNK)
        except lzma.LZMAError as err:
            if "memory" in str(err).lower():
                raise _Damaged(
                    f"needs more than {DECODER_MEMORY // _MIB} MiB of memory to unpack"
                ) from None
            raise _Damaged(f"is not valid {kind} data") from None
        budget.take(len(out))
        yield out
    end.at = at - len(decoder.unused_data)


def _zstd_frames_end(data: memoryview, start: int) -> int:
    """Where the zstd frames that follow each other from `start` end, from
    their headers and block sizes alone (the zstd program, unlike the
    kernel, does not say how much it read)."""
    at, blocks = start, 0
    while bytes(data[at : at + 4]) == _ZSTD_MAGIC:
        if at + 5 > len(data):
            raise _Damaged("is cut short")
        descriptor = data[at + 4]
        if descriptor & 0x08:
            raise _Damaged("is not valid zstd data")
        single_segment = bool(descriptor & 0x20)
        content_size = (int(single_segment), 2, 4, 8)[descriptor >> 6]
        at += 5 + (not single_segment) + (0, 1, 2, 4)[descriptor & 3] + content_size
        last = False
        while not last:
            if at + 3 > len(data):
                raise _Damaged("is cut short")
            block = int.from_bytes(data[at : at + 3], "little")
            last, kind, size = bool(block & 1), (block >> 1) & 3, block >> 3
            if kind == 3:
                raise _Damaged("is not valid zstd data")
            at += 3 + (1 if kind == 1 else size)
            blocks += 1
            if blocks > MAX_ZSTD_BLOCKS:
                raise _Damaged(f"holds more than {MAX_ZSTD_BLOCKS} zstd blocks")
        at += 4 if descriptor & 0x04 else 0
        if at > len(data):
            raise _Damaged("is cut short")
    return at


def _start_zstd(frames: memoryview) -> subprocess.Popen[bytes]:
    """The zstd program reading `frames`, held in memory as its stdin: nothing
    to feed it while its output is read."""
    try:
        source = os.memfd_create("initrd-zstd", os.MFD_CLOEXEC)
    except OSError:
        raise _Damaged("is compressed with zstd, and it could not be handed to zstd") from None
    try:
        written = 0
        while written < len(frames):
            written += os.write(source, frames[written:])
        os.lseek(source, 0, os.SEEK_SET)
        return subprocess.Popen(
            [ZSTD, "-d", "-c", "-q", f"--memory={DECODER_MEMORY // _MIB}MB"],
            stdin=source,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env={"LC_ALL": "C"},
        )
    except OSError:
        raise _Damaged("is compressed with zstd, and this firmware's zstd did not run") from None
    finally:
        os.close(source)


def _unzstd(data: memoryview, start: int, end: _End, budget: _Budget) -> _Pieces:
    stop = _zstd_frames_end(data, start)
    process = _start_zstd(data[start:stop])
    too_long = f"took zstd more than {ZSTD_TIMEOUT:.0f} seconds to unpack"
    deadline = time.monotonic() + ZSTD_TIMEOUT
    try:
        assert process.stdout is not None
        output = process.stdout.fileno()
        ready = select.poll()
        ready.register(output, select.POLLIN)
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not ready.poll(left * 1000):
                raise _Damaged(too_long)
            out = os.read(output, _OUT_CHUNK)
            if not out:
                break
            budget.take(len(out))
            yield out
        try:
            code = process.wait(timeout=max(deadline - time.monotonic(), 1.0))
        except subprocess.TimeoutExpired:
            raise _Damaged(too_long) from None
        if code != 0:
            raise _Damaged("is not valid zstd data")
    finally:
        # stopped early (a problem, or the cap reached): its work ends here too
        if process.poll() is None:
            process.kill()
            with suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()
    end.at = stop


def _read_compressed(
    data: memoryview, at: int, kind: str, walk: _Walk, budget: _Budget, part: str
) -> int:
    """The archives of one compressed part; returns where the part ends."""
    end = _End()
    if kind == "gzip":
        pieces = _gunzip(data, at, end, budget)
    elif kind == "zstd":
        pieces = _unzstd(data, at, end, budget)
    else:
        pieces = _unxz(data, at, end, budget, kind)
    try:
        walk.archives(_Stream(pieces), part)
    except _Damaged as err:
        raise _Unreadable(f"{part} ({kind}) {err}") from None
    finally:
        pieces.close()
    return end.at


def _read_parts(data: memoryview, walk: _Walk, parts: list[str]) -> None:
    budget = _Budget()
    at, after_cpio = 0, False
    while (found := _NONZERO.search(data, at)) is not None:
        at = found.start()
        part = _part_name(len(parts) + 1)
        if len(parts) == MAX_PARTS:
            raise _Unreadable(f"the initrd has more than {MAX_PARTS} parts")
        is_cpio = bytes(data[at : at + 6]) in _CPIO_MAGICS
        # the kernel's rule: a cpio archive, and whatever follows one, starts
        # at a multiple of 4 bytes
        if at % 4 and (is_cpio or after_cpio):
            raise _Unreadable(f"the padding before {part} is broken")
        if is_cpio:
            parts.append("cpio")
            stream = _Stream(iter((data[at:],)))
            walk.archive(stream, part)
            at, after_cpio = at + stream.offset, True
            continue
        kind = _FORMATS.get(bytes(data[at : at + 2]))
        if kind is None:
            raise _Unreadable(f"{part} is neither a cpio archive nor compressed data")
        if kind not in _UNPACKED:
            raise _Unreadable(
                f"{part} is compressed with {kind}, which this firmware cannot unpack"
            )
        parts.append(kind)
        at, after_cpio = _read_compressed(data, at, kind, walk, budget, part), False


def crypttabs_in_initrd(data: bytes | bytearray | memoryview) -> InitrdCrypttabs:
    """The crypttab files of an OS initrd, read as the kernel would unpack it.
    Never raises for any bytes given: what cannot be read is the `problem`."""
    walk = _Walk()
    parts: list[str] = []
    problem: str | None = None
    with memoryview(data) as view, view.cast("B") as flat:
        try:
            _read_parts(flat, walk, parts)
        except _Unreadable as err:
            problem = str(err)
        except MemoryError:
            problem = "there is not enough memory to unpack the initrd"
        except OSError as err:  # the zstd program's pipes
            problem = f"the initrd could not be unpacked ({err.strerror or err})"
        if problem is None and not parts:
            problem = "the initrd is empty" if not flat.nbytes else "the initrd holds only zeros"
    return InitrdCrypttabs(dict(walk.files), tuple(parts), problem)
