"""Reading the crypttab files of an OS initrd (runtime/disk/os_initrd_crypttabs.py)
from real archives: newc made by the project's writer, by GNU cpio and by hand
for what no writer makes (FIFOs, '..' names, hard links, damaged headers),
compressed by zlib, liblzma and the host's zstd, an uncompressed microcode
archive first as distributions do; then hostile and damaged initrds, bombs,
properties over arbitrary bytes and random layouts, and the test OS disk's own
LUKS target initrd."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import shutil
import stat
import subprocess
import sys
import tracemalloc
import zlib
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime.disk import os_initrd_crypttabs as oic
from runtime.disk.crypttab import override_lines
from runtime.disk.key_lists import is_override_path
from runtime.disk.os_initrd_crypttabs import InitrdCrypttabs, crypttabs_in_initrd
from tools.initrd.cpio import Entry, write_archive

ETC = b"cryptroot UUID=0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d none luks,discard\n"
CRYPTROOT = b"cryptdata UUID=11111111-2222-4333-8444-555555555555 none luks\n"
COMPRESSIONS = ("gzip", "xz", "lzma", "zstd")


def _zstd(raw: bytes, *options: str) -> bytes:
    zstd = shutil.which("zstd")
    if zstd is None:
        pytest.fail("zstd is not installed (Debian package zstd; tools/bootstrap.sh adds it)")
    return subprocess.run(
        [zstd, "-q", "-c", *options], input=raw, capture_output=True, timeout=120, check=True
    ).stdout


def _compress(raw: bytes, kind: str) -> bytes:
    if kind == "gzip":
        return gzip.compress(raw, mtime=0)
    if kind == "xz":
        return lzma.compress(raw, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32)
    if kind == "lzma":
        return lzma.compress(raw, format=lzma.FORMAT_ALONE)
    assert kind == "zstd"
    return _zstd(raw)


def _archive(entries: Sequence[Entry], block: int = 4) -> bytes:
    """A newc archive from the project's writer, zero-padded to `block`."""
    out = io.BytesIO()
    write_archive(out, entries, mtime=1_700_000_000)
    raw = out.getvalue()
    return raw + bytes(-len(raw) % block)


def _microcode() -> bytes:
    """An early microcode archive as Debian's initramfs-tools puts first."""
    return _archive(
        [
            Entry.directory("kernel"),
            Entry.directory("kernel/x86"),
            Entry.directory("kernel/x86/microcode"),
            Entry.file("kernel/x86/microcode/GenuineIntel.bin", bytes(range(256)) * 40),
        ],
        block=512,
    )


def _os_tree(extra: Sequence[Entry] = ()) -> bytes:
    return _archive(
        [
            Entry.directory("etc"),
            Entry.file("etc/crypttab", ETC),
            Entry.directory("cryptroot"),
            Entry.file("cryptroot/crypttab", CRYPTROOT),
            Entry.file("init", b"#!/bin/sh\n", executable=True),
            Entry.file("usr/lib/big.so", os.urandom(300_000)),
            Entry.symlink("bin/sh", "busybox"),
            Entry.char_device("dev/console", 5, 1),
            *extra,
        ]
    )


def _raw_entry(
    name: bytes,
    mode: int,
    data: bytes = b"",
    *,
    magic: bytes = b"070701",
    nlink: int = 1,
    ino: int = 7,
    check: int = 0,
    size: int | None = None,
    name_size: int | None = None,
) -> bytes:
    """One newc entry as a hostile archive may hold it: any name, type or field."""
    fields = (
        ino,
        mode,
        0,
        0,
        nlink,
        0,
        len(data) if size is None else size,
        0,
        0,
        0,
        0,
        len(name) + 1 if name_size is None else name_size,
        check,
    )
    head = magic + b"".join(b"%08X" % value for value in fields) + name + b"\0"
    head += bytes(-len(head) % 4)
    return head + data + bytes(-len(data) % 4)


def _hand_archive(*entries: bytes) -> bytes:
    raw = b"".join(entries) + _raw_entry(b"TRAILER!!!", 0, ino=0)
    return raw + bytes(-len(raw) % 512)


def _regular(
    name: bytes,
    data: bytes,
    *,
    magic: bytes = b"070701",
    nlink: int = 1,
    ino: int = 7,
    check: int = 0,
    size: int | None = None,
) -> bytes:
    return _raw_entry(
        name, stat.S_IFREG | 0o644, data, magic=magic, nlink=nlink, ino=ino, check=check, size=size
    )


def _read(data: bytes) -> InitrdCrypttabs:
    result = crypttabs_in_initrd(data)
    assert all(is_override_path(path) for path in result.files)
    return result


# --- what distributions make -----------------------------------------------------


@pytest.mark.parametrize("kind", COMPRESSIONS)
def test_microcode_then_a_compressed_archive(kind: str) -> None:
    result = _read(_microcode() + _compress(_os_tree(), kind))
    assert result == InitrdCrypttabs(
        {"cryptroot/crypttab": CRYPTROOT, "etc/crypttab": ETC}, ("cpio", kind)
    )
    # what the setup does with them next
    assert [o.path for o in override_lines("cryptroot/crypttab", CRYPTROOT)] == [
        "cryptroot/crypttab"
    ]


def test_an_uncompressed_initrd_and_microcode_alone() -> None:
    assert _read(_os_tree()).files == {"cryptroot/crypttab": CRYPTROOT, "etc/crypttab": ETC}
    assert _read(_microcode()) == InitrdCrypttabs({}, ("cpio",))


def test_several_compressed_parts_one_after_the_other_later_wins() -> None:
    first = _archive([Entry.file("etc/crypttab", b"first\n"), Entry.file("a/crypttab", b"a\n")])
    second = _archive([Entry.file("etc/crypttab", b"second\n")])
    third = _archive([Entry.file("etc/crypttab", b"third\n"), Entry.file("b/crypttab", b"b\n")])
    initrd = (
        _microcode()
        + _compress(first, "gzip")
        + bytes(3)  # zero padding between compressed parts is skipped
        + _compress(second, "zstd")
        + _compress(third, "xz")
        + bytes(8)
    )
    result = _read(initrd)
    assert result.problem is None
    assert result.parts == ("cpio", "gzip", "zstd", "xz")
    assert result.files == {"etc/crypttab": b"third\n", "a/crypttab": b"a\n", "b/crypttab": b"b\n"}


def test_several_archives_inside_one_compressed_stream_and_two_gzip_members() -> None:
    one = _archive([Entry.file("etc/crypttab", b"one\n")], block=512)
    two = _archive([Entry.file("cryptroot/crypttab", b"two\n")])
    result = _read(gzip.compress(one + two, mtime=0) + gzip.compress(two, mtime=0))
    assert result.parts == ("gzip", "gzip") and result.problem is None
    assert result.files == {"etc/crypttab": b"one\n", "cryptroot/crypttab": b"two\n"}


def test_zstd_in_many_frames_and_with_a_checksum() -> None:
    raw = _os_tree()
    frames = _zstd(raw[:1000]) + _zstd(raw[1000:], "--check")
    result = _read(_microcode() + frames)
    assert result.parts == ("cpio", "zstd") and result.problem is None
    assert result.files == {"cryptroot/crypttab": CRYPTROOT, "etc/crypttab": ETC}


def test_gnu_cpio_archive_of_a_tree(tmp_path: Path) -> None:
    """What distributions' tools write: GNU cpio over `find .` (a FIFO, links,
    directories and files named crypttab among them)."""
    cpio = shutil.which("cpio")
    if cpio is None:
        pytest.fail("GNU cpio is not installed (Debian package cpio; tools/bootstrap.sh adds it)")
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "crypttab").write_bytes(ETC)
    (root / "cryptroot").mkdir()
    (root / "cryptroot" / "crypttab").write_bytes(CRYPTROOT)
    (root / "lib").mkdir()
    (root / "lib" / "crypttab").symlink_to("../etc/crypttab")
    os.mkfifo(root / "lib" / "fifo-crypttab")
    (root / "var" / "crypttab").mkdir(parents=True)
    names = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    archive = subprocess.run(
        [cpio, "--quiet", "-o", "-H", "newc", "--reproducible", "-R", "0:0"],
        input=("\n".join([".", *names]) + "\n").encode(),
        cwd=root,
        capture_output=True,
        timeout=60,
        check=True,
    ).stdout
    result = _read(_microcode() + gzip.compress(archive, mtime=0))
    assert result == InitrdCrypttabs(
        {"cryptroot/crypttab": CRYPTROOT, "etc/crypttab": ETC}, ("cpio", "gzip")
    )


# --- names and kinds of entries --------------------------------------------------


def test_only_regular_files_named_crypttab_under_plain_names_are_kept() -> None:
    link = stat.S_IFLNK | 0o777
    archive = _hand_archive(
        _raw_entry(b"lib/crypttab", link, b"/etc/crypttab"),
        _raw_entry(b"run/crypttab", stat.S_IFIFO | 0o600),
        _raw_entry(b"var/crypttab", stat.S_IFDIR | 0o755, nlink=2),
        _raw_entry(b"dev/crypttab", stat.S_IFCHR | 0o600),
        _regular(b"../etc/crypttab", b"climbs\n"),
        _regular(b"etc/../crypttab", b"climbs\n"),
        _regular(b"etc/cryptt\x01ab", b"control\n"),
        _regular(b"etc/\xffcrypttab", b"not UTF-8\n"),
        _regular(b"etc/crypttab.bak", b"another name\n"),
        _regular(b"./cryptroot/crypttab", b"dot slash\n"),
        _regular(b"crypttab", b"at the root\n"),
        # the kernel's path walk: each of these is etc/crypttab, the last one wins
        _regular(b"/etc/crypttab", b"absolute\n"),
        _regular(b"etc/crypttab\0hidden/crypttab", b"a NUL inside: a C string ends there\n"),
        _regular(b"etc//./crypttab", b"empty and dot components\n"),
        # names the kernel cannot create a file by: neither kept nor replacing
        _regular(b"etc/crypttab/", b"trailing slash\n"),
        _regular(b"etc/crypttab/.", b"trailing dot\n"),
    )
    result = _read(archive)
    assert result.problem is None
    assert result.files == {
        "cryptroot/crypttab": b"dot slash\n",
        "crypttab": b"at the root\n",
        "etc/crypttab": b"empty and dot components\n",
    }


def test_a_trailer_name_is_read_as_a_c_string() -> None:
    archive = _hand_archive(
        _regular(b"etc/crypttab", b"before\n"),
        _raw_entry(b"TRAILER!!!\0junk", stat.S_IFREG | 0o644),
        _regular(b"cryptroot/crypttab", b"after the trailer: another archive's\n"),
    )
    result = _read(archive)
    assert result.problem is None  # not a damaged entry: the archive ended there
    assert result.files == {
        "etc/crypttab": b"before\n",
        "cryptroot/crypttab": b"after the trailer: another archive's\n",
    }


def test_the_same_path_twice_the_later_entry_wins_as_in_the_kernel() -> None:
    archive = _hand_archive(
        _regular(b"etc/crypttab", b"first\n"),
        _regular(b"./etc/crypttab", b"second, longer than the first\n"),
        _regular(b"etc/crypttab", b"third\n"),
        _regular(b"a/crypttab", b"kept\n"),
        # the kernel replaces a file by a link, a directory or a device of its path
        _regular(b"b/crypttab", b"gone\n"),
        _raw_entry(b"b/crypttab", stat.S_IFLNK | 0o777, b"/x"),
        _regular(b"c/crypttab", b"gone\n"),
        _raw_entry(b"c/crypttab", stat.S_IFDIR | 0o755, nlink=2),
        _regular(b"d/crypttab", b"gone\n"),
        _raw_entry(b"d/crypttab", stat.S_IFIFO | 0o600),
        # ... and skips a directory with data, or a link longer than PATH_MAX
        _regular(b"e/crypttab", b"stays\n"),
        _raw_entry(b"e/crypttab", stat.S_IFDIR | 0o755, b"data", nlink=2),
        _regular(b"f/crypttab", b"stays\n"),
        _raw_entry(b"f/crypttab", stat.S_IFLNK | 0o777, b"x" * 5000),
    )
    result = _read(archive)
    assert result.problem is None
    assert result.files == {
        "etc/crypttab": b"third\n",
        "a/crypttab": b"kept\n",
        "e/crypttab": b"stays\n",
        "f/crypttab": b"stays\n",
    }


def test_a_name_longer_than_path_max_is_skipped_as_the_kernel_skips_it() -> None:
    long_name = b"x/" * 2100 + b"crypttab"
    archive = _hand_archive(
        _regular(long_name, b"skipped\n"), _regular(b"etc/crypttab", b"read on\n")
    )
    assert _read(archive) == InitrdCrypttabs({"etc/crypttab": b"read on\n"}, ("cpio",))


def test_a_crypttab_that_is_a_hard_link_stops_the_reading() -> None:
    archive = _hand_archive(
        _regular(b"etc/crypttab", b"kept\n"),
        _regular(b"usr/other", b"", nlink=2, ino=9),
        _regular(b"cryptroot/crypttab", b"linked\n", nlink=2, ino=9),
    )
    result = _read(archive)
    assert result.files == {"etc/crypttab": b"kept\n"}
    assert (
        result.problem == "/cryptroot/crypttab in the initrd is a hard link, which is not followed"
    )


def test_the_crc_variant_is_read_and_its_checksum_checked_for_crypttabs() -> None:
    good = _regular(b"etc/crypttab", ETC, magic=b"070702", check=sum(ETC))
    other = _regular(b"usr/x", b"not checked", magic=b"070702", check=1)
    assert _read(_hand_archive(good, other)).files == {"etc/crypttab": ETC}
    bad = _regular(b"cryptroot/crypttab", CRYPTROOT, magic=b"070702", check=sum(CRYPTROOT) + 1)
    result = _read(_hand_archive(good, bad))
    assert result.files == {"etc/crypttab": ETC}
    assert result.problem == "/cryptroot/crypttab in the initrd does not match its cpio checksum"


# --- bounds -------------------------------------------------------------------------


def test_a_crypttab_larger_than_the_bound_stops_the_reading() -> None:
    big = b"#" * (oic.MAX_CRYPTTAB_BYTES + 1)
    result = _read(_hand_archive(_regular(b"etc/crypttab", big)))
    assert result.files == {}
    assert result.problem == f"/etc/crypttab in the initrd is larger than {len(big) - 1} bytes"
    fits = b"#" * oic.MAX_CRYPTTAB_BYTES
    assert _read(_hand_archive(_regular(b"etc/crypttab", fits))).files == {"etc/crypttab": fits}


def test_more_crypttab_files_than_the_bound() -> None:
    entries = [_regular(b"d%d/crypttab" % n, b"x\n") for n in range(oic.MAX_CRYPTTABS + 1)]
    result = _read(_hand_archive(*entries))
    assert len(result.files) == oic.MAX_CRYPTTABS
    assert result.problem == f"the initrd holds more than {oic.MAX_CRYPTTABS} crypttab files"
    # the same path again is no new file
    again = [*entries[:-1], _regular(b"d0/crypttab", b"again\n")]
    assert _read(_hand_archive(*again)).problem is None


def test_more_entries_than_the_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(oic, "MAX_ENTRIES", 5)
    entries = [Entry.file(f"f{n}", b"") for n in range(6)]
    result = _read(gzip.compress(_archive(entries), mtime=0))
    assert result.problem == "the initrd holds more than 5 files"


def test_more_parts_than_the_bound() -> None:
    part = _archive([Entry.file("x", b"")])
    result = _read(part * (oic.MAX_PARTS + 1))
    assert len(result.parts) == oic.MAX_PARTS
    assert result.problem == f"the initrd has more than {oic.MAX_PARTS} parts"


def _zeros_gzip(size: int) -> bytes:
    """A gzip stream of `size` zero bytes, made in a moment: after a full flush
    the compressor starts afresh, so every further MiB compresses to the same
    bytes. Its trailer is wrong, which nothing reading up to a cap reaches."""
    packer = zlib.compressobj(9, wbits=16 + zlib.MAX_WBITS)
    block = bytes(1 << 20)
    first = packer.compress(block) + packer.flush(zlib.Z_FULL_FLUSH)
    again = packer.compress(block) + packer.flush(zlib.Z_FULL_FLUSH)
    return first + again * (size // len(block) - 1) + packer.flush()


@pytest.mark.parametrize("kind", COMPRESSIONS)
def test_a_bomb_stops_at_the_cap_in_bounded_memory(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(oic, "MAX_UNPACKED_BYTES", 4 << 20)
    head = _archive([Entry.file("etc/crypttab", ETC)], block=512)
    bomb = _zeros_gzip(64 << 20) if kind == "gzip" else _compress(bytes(64 << 20), kind)
    assert len(bomb) < (64 << 20) // 500
    initrd = _compress(head, kind) + bomb
    tracemalloc.start()  # liblzma's and zlib's own allocations are counted too
    try:
        result = _read(initrd)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.files == {"etc/crypttab": ETC}
    assert result.problem == "the initrd unpacks to more than 4 MiB, more than an OS initrd holds"
    # the decoder's dictionary (8 MiB at xz's default preset) and a few 1 MiB
    # pieces, nothing near the 64 MiB the bomb unpacks to
    assert peak < (16 << 20), peak


def test_a_gzip_bomb_beyond_the_real_cap() -> None:
    bomb = _zeros_gzip(oic.MAX_UNPACKED_BYTES + (16 << 20))
    tracemalloc.start()
    try:
        result = _read(_microcode() + bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.parts == ("cpio", "gzip")
    assert result.problem == "the initrd unpacks to more than 512 MiB, more than an OS initrd holds"
    assert peak < (4 << 20), peak


def test_the_zstd_program_is_ended_when_reading_stops(monkeypatch: pytest.MonkeyPatch) -> None:
    bomb = _zstd(bytes(256 << 20))
    started: list[subprocess.Popen[bytes]] = []
    real_popen = subprocess.Popen

    def popen(*args: object, **kwargs: object) -> subprocess.Popen[bytes]:
        process: subprocess.Popen[bytes] = real_popen(*args, **kwargs)  # type: ignore[call-overload]
        started.append(process)
        return process

    monkeypatch.setattr(subprocess, "Popen", popen)
    monkeypatch.setattr(oic, "MAX_UNPACKED_BYTES", 2 << 20)
    result = _read(bomb)
    assert result.problem is not None and "more than 2 MiB" in result.problem
    assert len(started) == 1 and started[0].returncode is not None


def test_zstd_that_runs_too_long_or_not_at_all(monkeypatch: pytest.MonkeyPatch) -> None:
    initrd = _compress(_os_tree(), "zstd")
    monkeypatch.setattr(oic, "ZSTD_TIMEOUT", 0.0)
    assert _read(initrd).problem == (
        "the initrd's first part (zstd) took zstd more than 0 seconds to unpack"
    )
    monkeypatch.setattr(oic, "ZSTD", "/nonexistent/zstd")
    assert _read(initrd).problem == (
        "the initrd's first part (zstd) is compressed with zstd, and this firmware's zstd did "
        "not run"
    )


def test_an_interpreter_without_lzma_names_what_it_cannot_unpack(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "lzma", None)
    result = _read(_microcode() + _compress(_os_tree(), "xz"))
    assert result.parts == ("cpio", "xz")
    assert result.problem == (
        "the initrd's second part (xz) is compressed with xz, which this firmware cannot unpack"
    )


# --- what cannot be read ------------------------------------------------------------


@pytest.mark.parametrize(
    ("part", "name"),
    [
        (bz2.compress(b"x" * 1000), "bzip2"),
        (b"\x02\x21\x4c\x18" + bytes(100), "lz4"),
        (b"\x89LZO\x00\r\n\x1a\n" + bytes(100), "lzo"),
    ],
)
def test_a_part_compressed_otherwise_is_named(part: bytes, name: str) -> None:
    result = _read(_microcode() + part)
    assert result.parts == ("cpio",)
    assert result.problem == (
        f"the initrd's second part is compressed with {name}, which this firmware cannot unpack"
    )


def test_empty_zeros_and_garbage() -> None:
    assert _read(b"") == InitrdCrypttabs({}, (), "the initrd is empty")
    assert _read(bytes(4096)) == InitrdCrypttabs({}, (), "the initrd holds only zeros")
    assert _read(b"MZ\x90\x00 a kernel, not an initrd") == InitrdCrypttabs(
        {}, (), "the initrd's first part is neither a cpio archive nor compressed data"
    )
    assert _read(_microcode() + b"garbage").problem == (
        "the initrd's second part is neither a cpio archive nor compressed data"
    )


@pytest.mark.parametrize("kind", COMPRESSIONS)
def test_a_truncated_compressed_part(kind: str) -> None:
    whole = _compress(_os_tree(), kind)
    result = _read(_microcode() + whole[: len(whole) // 2])
    assert result.parts == ("cpio", kind)
    assert result.problem in (
        f"the initrd's second part ({kind}) is cut short",
        "the cpio archive in the initrd's second part is cut short",
    )


def test_damaged_compressed_data() -> None:
    data = bytearray(gzip.compress(_os_tree(), mtime=0))
    data[len(data) // 2] ^= 0xFF
    assert _read(bytes(data)).problem == "the initrd's first part (gzip) is not valid gzip data"
    data = bytearray(_compress(_os_tree(), "xz"))
    data[len(data) // 2] ^= 0xFF
    assert _read(bytes(data)).problem == "the initrd's first part (xz) is not valid xz data"
    data = bytearray(_compress(_os_tree(), "zstd"))
    data[4] |= 0x08  # a reserved bit of the frame header
    assert _read(bytes(data)).problem == "the initrd's first part (zstd) is not valid zstd data"


def test_an_lzma_stream_asking_for_a_huge_dictionary() -> None:
    """The decoder's memory is bounded: a header asking for a 1 GiB dictionary
    is refused before anything is allocated for it."""
    header = b"\x5d" + (1 << 30).to_bytes(4, "little") + b"\xff" * 8
    assert _read(header + bytes(64)).problem == (
        "the initrd's first part (lzma) needs more than 128 MiB of memory to unpack"
    )


def test_truncated_and_damaged_cpio() -> None:
    whole = _hand_archive(_regular(b"etc/crypttab", ETC), _regular(b"usr/big", b"x" * 1000))
    cut = whole.index(b"x" * 100)
    assert _read(whole[:cut]) == InitrdCrypttabs(
        {"etc/crypttab": ETC}, ("cpio",), "the cpio archive in the initrd's first part is cut short"
    )
    assert _read(whole[:50]).problem == "the cpio archive in the initrd's first part is cut short"
    in_crypttab = whole.index(ETC) + 10
    assert _read(whole[:in_crypttab]).problem == "/etc/crypttab in the initrd is cut short"
    # file size beyond the data
    beyond = _hand_archive(_regular(b"usr/x", b"abc", size=1 << 20))
    assert _read(beyond).problem == "the cpio archive in the initrd's first part is cut short"
    # not hex, a sign int() would take, a name without its NUL
    for bad in (b"0000000G", b"+0000001", b" 0000001"):
        damaged = whole.replace(b"%08X" % len(ETC), bad, 1)
        assert _read(damaged).problem == (
            "the cpio archive in the initrd's first part has a damaged entry at byte 0"
        )
    no_nul = _raw_entry(b"etc/crypttab", stat.S_IFREG, ETC).replace(b"crypttab\0", b"crypttabX")
    assert _read(no_nul).problem == (
        "an entry's name in the initrd's first part does not end as cpio names do"
    )
    # the old binary and odc formats the kernel refuses
    assert _read(b"070707" + bytes(200)).problem == (
        "the initrd's first part is neither a cpio archive nor compressed data"
    )


def test_padding_the_kernel_calls_broken() -> None:
    one = _archive([Entry.file("etc/crypttab", ETC)])
    assert _read(b"\0" + one).problem == "the padding before the initrd's first part is broken"
    gz = gzip.compress(one, mtime=0)
    assert _read(one + b"\0\0" + gz).problem == (
        "the padding before the initrd's second part is broken"
    )
    assert _read(one + b"\0\0\0\0" + gz).problem is None
    # inside a compressed part, what follows an archive must be another one
    assert _read(gzip.compress(one + b"junk", mtime=0)).problem == (
        "the initrd's first part holds data after its cpio archive that is not another archive"
    )
    assert _read(gzip.compress(one + b"\0\0" + one, mtime=0)).problem == (
        "the initrd's first part holds data after its cpio archive that is not another archive"
    )
    # a compressed part after a compressed part may start anywhere
    assert _read(gz + b"\0" + gz).problem is None


# --- properties ------------------------------------------------------------------------


def _assert_reads(data: bytes) -> None:
    result = crypttabs_in_initrd(data)
    assert isinstance(result, InitrdCrypttabs)
    assert result.problem is None or (result.problem and "\n" not in result.problem)
    assert all(is_override_path(path) for path in result.files)


_MAGICS = [
    b"",
    b"070701",
    b"070702",
    b"\x1f\x8b\x08\x00",
    b"\xfd7zXZ\x00",
    b"\x5d\x00\x00\x80\x00",
    b"\x28\xb5\x2f\xfd",
    b"BZh9",
]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(_MAGICS), st.binary(max_size=1024))
def test_arbitrary_bytes_never_raise(magic: bytes, data: bytes) -> None:
    _assert_reads(magic + data)


_CORPUS = [
    _microcode() + gzip.compress(_os_tree(), mtime=0),
    _hand_archive(_regular(b"etc/crypttab", ETC), _regular(b"a/crypttab", b"x\n", nlink=2)),
    lzma.compress(_os_tree(), format=lzma.FORMAT_ALONE),
    _compress(_archive([Entry.file("etc/crypttab", ETC)]), "zstd"),
]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_initrds_never_raise(data: st.DataObject) -> None:
    initrd = bytearray(data.draw(st.sampled_from(_CORPUS), label="initrd"))
    for _ in range(data.draw(st.integers(0, 6), label="mutations")):
        position = data.draw(st.integers(0, len(initrd) - 1), label="position")
        initrd[position] = data.draw(st.integers(0, 255), label="byte")
    cut = data.draw(st.integers(0, len(initrd)), label="cut")
    _assert_reads(bytes(initrd[:cut]))


_COMPONENT = st.text("abcxyz019._+-", min_size=1, max_size=6)
_CRYPTTAB_PATH = st.builds(
    lambda parts, name: "/".join([*parts, name + "crypttab"]),
    st.lists(_COMPONENT, max_size=3),
    st.text("abc._-", max_size=3),
).filter(is_override_path)
_PART = st.tuples(
    st.sampled_from(("cpio", *COMPRESSIONS)),
    st.dictionaries(_CRYPTTAB_PATH, st.binary(max_size=300), max_size=4),
    st.lists(st.binary(max_size=200), max_size=3),  # other files beside them
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.booleans(), st.lists(_PART, min_size=1, max_size=4), st.integers(0, 3))
def test_random_layouts_give_back_exactly_the_crypttabs(
    microcode: bool, parts: list[tuple[str, dict[str, bytes], list[bytes]]], gap: int
) -> None:
    initrd = bytearray(_microcode() if microcode else b"")
    expected: dict[str, bytes] = {}
    expected_parts = ["cpio"] if microcode else []
    for kind, crypttabs, others in parts:
        entries = [Entry.file(path, content) for path, content in crypttabs.items()]
        entries += [Entry.file(f"usr/share/other{n}", body) for n, body in enumerate(others)]
        archive = _archive(entries, block=4 << gap)
        # zstd frames right after zstd frames are read as one part
        follows_zstd = bool(initrd) and initrd[-1] != 0 and expected_parts[-1:] == ["zstd"]
        if kind == "cpio":
            initrd += bytes(-len(initrd) % 4)  # where the kernel looks for an archive
            initrd += archive
        else:
            initrd += _compress(archive, kind) + bytes(gap)
            initrd += bytes(-len(initrd) % 4)  # a cpio part may follow
        if not (kind == "zstd" and follows_zstd):
            expected_parts.append(kind)
        expected.update(crypttabs)
    result = crypttabs_in_initrd(bytes(initrd))
    assert result.problem is None
    assert result.files == expected
    assert result.parts == tuple(expected_parts)


# --- the test OS disk's own initrd ---------------------------------------------------


@pytest.mark.build  # the locked packages, from the download cache
def test_the_test_os_disks_luks_initrd() -> None:
    from tools.os_disk_luks import luks_target_initrd, os_crypttab

    result = crypttabs_in_initrd(luks_target_initrd())
    assert result == InitrdCrypttabs({"cryptroot/crypttab": os_crypttab()}, ("gzip",))
