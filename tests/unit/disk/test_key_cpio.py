"""The key cpio (heads-facts.md §5.4) against the tools that read cpio: GNU
cpio's own newc output for the same tree (equal but for its inode numbering),
GNU and busybox cpio extracting it, and the host's newc reader; then names
that must be refused, and properties over generated trees."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime.disk.crypttab import crypttabs_from_overrides, default_crypttabs, override_lines
from runtime.disk.key_cpio import (
    ARCHIVE_BLOCK,
    KEY_FILE_NAME,
    TRAILER,
    KeyCpioError,
    build_key_cpio,
)
from tools.initrd.cpio import read_archive, read_header

KEY = bytearray(range(128))
UUID_A = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
CRYPTTABS = default_crypttabs([UUID_A])
NESTED = {
    "etc/crypttab": b"a UUID=1 /secret.key luks\n",
    "usr/lib/x/crypttab": b"",
    "etc/b/crypttab": b"odd size\n",
}
C_LOCALE = {"LC_ALL": "C", "PATH": os.environ.get("PATH", "/usr/bin:/bin")}


def _headers(archive: bytes | bytearray) -> list[tuple[str, dict[str, int], int]]:
    """(name, header fields, header offset) of every entry, the trailer too."""
    out = []
    offset = 0
    while True:
        fields = read_header(bytes(archive), offset)
        start = offset + 110
        name = bytes(archive[start : start + fields["namesize"] - 1]).decode()
        out.append((name, fields, offset))
        if name == TRAILER:
            return out
        offset = start + fields["namesize"]
        offset += -offset % 4
        offset += fields["filesize"] + (-fields["filesize"] % 4)


def test_layout_and_fields() -> None:
    archive = build_key_cpio(KEY, CRYPTTABS)
    assert isinstance(archive, bytearray)
    assert len(archive) % ARCHIVE_BLOCK == 0
    entries = _headers(archive)
    assert [name for name, _, _ in entries] == [
        "secret.key",
        "cryptroot",
        "cryptroot/crypttab",
        "etc",
        "etc/crypttab",
        TRAILER,
    ]
    modes = [f["mode"] for _, f, _ in entries]
    assert modes == [0o100400, 0o40755, 0o100644, 0o40755, 0o100644, 0]
    assert [f["ino"] for _, f, _ in entries] == [1, 2, 3, 4, 5, 0]
    assert [f["nlink"] for _, f, _ in entries] == [1, 2, 1, 2, 1, 1]
    for _, fields, offset in entries:
        assert offset % 4 == 0
        assert fields["uid"] == fields["gid"] == fields["mtime"] == fields["check"] == 0
        assert fields["devmajor"] == fields["devminor"] == 0
        assert fields["rdevmajor"] == fields["rdevminor"] == 0
    end = entries[-1][2] + 110 + len(TRAILER) + 1
    assert not any(archive[end:])  # only padding after the trailer
    read = {e.path: e.data for e in read_archive(bytes(archive))}
    assert read["secret.key"] == KEY
    assert read["etc/crypttab"] == read["cryptroot/crypttab"] == CRYPTTABS["etc/crypttab"]


def test_deterministic_whatever_the_mapping_order() -> None:
    reordered = dict(reversed(list(NESTED.items())))
    assert build_key_cpio(KEY, NESTED) == build_key_cpio(bytes(KEY), reordered)


def _tree_for_gnu(root: Path, names: list[str], files: dict[str, bytes]) -> None:
    for name in names:
        path = root / name
        if name in files:
            path.write_bytes(files[name])
            path.chmod(0o400 if name == KEY_FILE_NAME else 0o644)
        else:
            path.mkdir()
            path.chmod(0o755)
    for name in names:
        os.utime(root / name, (0, 0), follow_symlinks=False)


def _normalized(archive: bytes | bytearray, directory_nlink: bool = True) -> bytearray:
    """Inode numbers zeroed, and a directory's nlink 2: ours is fixed, a real
    directory counts its subdirectories (the kernel reads neither for a directory)."""
    out = bytearray(archive)
    for _, fields, offset in _headers(archive):
        out[offset + 6 : offset + 14] = b"00000000"
        if directory_nlink and stat.S_ISDIR(fields["mode"]):
            out[offset + 38 : offset + 46] = b"00000002"
    return out


@pytest.mark.parametrize("crypttabs", [CRYPTTABS, NESTED], ids=["default", "nested"])
def test_equals_gnu_cpio_but_for_inode_numbers(tmp_path: Path, crypttabs: dict[str, bytes]) -> None:
    """GNU cpio -o over the same tree, in the same order, owner 0:0 and mtime 0:
    the same bytes, padding and trailer included. GNU renumbers inodes from 0;
    a directory's nlink is the real one (3 for etc/ holding b/)."""
    ours = build_key_cpio(KEY, crypttabs)
    names = [name for name, _, _ in _headers(ours)][:-1]
    _tree_for_gnu(tmp_path, names, {KEY_FILE_NAME: bytes(KEY), **crypttabs})
    gnu = subprocess.run(
        ["cpio", "-o", "-H", "newc", "--reproducible", "-R", "0:0", "--quiet"],
        input="".join(n + "\n" for n in names).encode(),
        cwd=tmp_path,
        env=C_LOCALE,
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    assert [f["ino"] for _, f, _ in _headers(gnu)][:-1] == list(range(len(names)))
    assert _normalized(ours) == _normalized(gnu)
    if crypttabs is CRYPTTABS:  # no subdirectories: nothing but the inodes differs
        assert _normalized(ours, directory_nlink=False) == _normalized(gnu, directory_nlink=False)


def _check_extracted(root: Path, crypttabs: dict[str, bytes]) -> None:
    key = root / KEY_FILE_NAME
    assert key.read_bytes() == KEY
    assert stat.S_IMODE(key.stat().st_mode) == 0o400
    for name, content in crypttabs.items():
        path = root / name
        assert path.read_bytes() == content
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
        for parent in path.relative_to(root).parents[:-1]:
            assert stat.S_IMODE((root / parent).stat().st_mode) == 0o755


@pytest.mark.parametrize("crypttabs", [CRYPTTABS, NESTED], ids=["default", "nested"])
def test_gnu_cpio_extracts_it(tmp_path: Path, crypttabs: dict[str, bytes]) -> None:
    archive = build_key_cpio(KEY, crypttabs)
    listing = subprocess.run(
        ["cpio", "-t", "--quiet"], input=bytes(archive), capture_output=True, check=True, timeout=60
    ).stdout
    assert listing.decode().splitlines() == [name for name, _, _ in _headers(archive)][:-1]
    subprocess.run(
        ["cpio", "-idv", "--no-absolute-filenames", "--quiet"],
        input=bytes(archive),
        cwd=tmp_path,
        capture_output=True,
        check=True,
        timeout=60,
    )
    _check_extracted(tmp_path, crypttabs)


@pytest.mark.skipif(shutil.which("busybox") is None, reason="busybox not installed")
@pytest.mark.parametrize("crypttabs", [CRYPTTABS, NESTED], ids=["default", "nested"])
def test_busybox_cpio_extracts_it(tmp_path: Path, crypttabs: dict[str, bytes]) -> None:
    archive = build_key_cpio(KEY, crypttabs)
    subprocess.run(
        ["busybox", "cpio", "-id"],
        input=bytes(archive),
        cwd=tmp_path,
        capture_output=True,
        check=True,
        timeout=60,
    )
    _check_extracted(tmp_path, crypttabs)


def test_overrides_end_to_end_in_the_archive() -> None:
    os_crypttab = f"root_crypt UUID={UUID_A} none luks,discard\n# gone\n".encode()
    files = crypttabs_from_overrides(override_lines("/cryptroot/crypttab", os_crypttab))
    read = {e.path: e for e in read_archive(bytes(build_key_cpio(KEY, files)))}
    assert read["cryptroot/crypttab"].data == (
        f"root_crypt UUID={UUID_A} /secret.key luks,discard\n".encode()
    )
    assert stat.S_ISDIR(read["cryptroot"].mode)


# ---------------------------------------------------------------- the key's buffer


def test_key_from_a_view_and_the_buffer_left_free() -> None:
    backing = bytearray(b"\xaa" * 16) + KEY + bytearray(b"\xbb" * 16)
    with memoryview(backing) as view:
        archive = build_key_cpio(view[16:144], CRYPTTABS)
    assert archive == build_key_cpio(KEY, CRYPTTABS)
    key = bytearray(KEY)
    build_key_cpio(key, CRYPTTABS)
    key += b"!"  # no view of it was left behind: it can still be resized (and wiped)
    del key[-1]
    wide = memoryview(bytearray(KEY)).cast("I")  # any contiguous format is its bytes
    assert build_key_cpio(wide, {}) == build_key_cpio(KEY, {})


def test_the_archive_is_a_copy_the_caller_wipes() -> None:
    key = bytearray(KEY)
    archive = build_key_cpio(key, CRYPTTABS)
    key[:] = bytes(len(key))
    assert {e.path: e.data for e in read_archive(bytes(archive))}[KEY_FILE_NAME] == KEY


@pytest.mark.parametrize(
    "key",
    [bytearray(), memoryview(bytearray(256))[::2]],
    ids=["empty", "not contiguous"],
)
def test_key_refusals(key: bytearray | memoryview) -> None:
    with pytest.raises(KeyCpioError):
        build_key_cpio(key, CRYPTTABS)


@pytest.mark.parametrize(
    ("names", "words"),
    [
        ([""], "empty"),
        (["/etc/crypttab"], "absolute"),
        (["../crypttab"], ".."),
        (["etc/../crypttab"], ".."),
        (["etc/..crypttab"], ".."),
        (["etc/crypt\0tab"], "NUL"),
        (["etc/crypt\ntab"], "line break"),
        (["etc//crypttab"], "not a plain relative path"),
        (["etc/crypttab/"], "not a plain relative path"),
        (["./etc/crypttab"], "not a plain relative path"),
        ([TRAILER], "not a plain relative path"),
        (["etc/\udcffcrypttab"], "UTF-8"),
        ([KEY_FILE_NAME], "given twice"),
        (["etc", "etc/crypttab"], "both a file and a directory"),
        (["etc/crypttab/x", "etc/crypttab"], "both a file and a directory"),
    ],
)
def test_name_refusals(names: list[str], words: str) -> None:
    with pytest.raises(KeyCpioError) as caught:
        build_key_cpio(KEY, dict.fromkeys(names, b"x\n"))
    assert isinstance(caught.value, ValueError)
    assert words in str(caught.value)


# ---------------------------------------------------------------- properties

_component = st.from_regex(r"[A-Za-z0-9_+-][A-Za-z0-9._+-]{0,7}", fullmatch=True).filter(
    lambda c: ".." not in c
)
relative_names = st.lists(_component, min_size=1, max_size=3).map("/".join)


def _conflicts(names: list[str]) -> bool:
    files = {*names, KEY_FILE_NAME}
    parents = {"/".join(n.split("/")[:i]) for n in names for i in range(1, n.count("/") + 1)}
    return bool(files & parents) or KEY_FILE_NAME in names


@settings(max_examples=200)
@given(
    st.dictionaries(relative_names, st.binary(max_size=70), max_size=6),
    st.binary(min_size=1, max_size=300),
)
def test_generated_trees_read_back(files: dict[str, bytes], key: bytes) -> None:
    if _conflicts(list(files)):
        with pytest.raises(KeyCpioError):
            build_key_cpio(bytearray(key), files)
        return
    archive = build_key_cpio(bytearray(key), files)
    assert len(archive) % ARCHIVE_BLOCK == 0
    entries = read_archive(bytes(archive))
    assert entries[0].path == KEY_FILE_NAME and entries[0].data == key
    seen: set[str] = set()
    for entry in entries:
        parent = entry.path.rpartition("/")[0]
        assert not parent or parent in seen  # a directory before what it holds
        seen.add(entry.path)
        if stat.S_ISREG(entry.mode) and entry.path != KEY_FILE_NAME:
            assert entry.data == files[entry.path]
    assert {e.path for e in entries if stat.S_ISREG(e.mode)} == {*files, KEY_FILE_NAME}
    assert [f["ino"] for _, f, _ in _headers(archive)] == [*range(1, len(entries) + 1), 0]


@given(st.lists(st.text(max_size=12), max_size=4))
def test_any_name_is_written_or_refused_with_its_error(names: list[str]) -> None:
    try:
        build_key_cpio(KEY, dict.fromkeys(names, b"x"))
    except KeyCpioError as err:
        assert str(err)
