"""Root file system hashing (runtime/integrity/root_hashes.py) on hostile
trees: symlinks, FIFOs, devices' stand-ins, odd names, a merged /usr."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from runtime.integrity.boot_lists import ListFormatError
from runtime.integrity.root_hashes import (
    RootHashError,
    compare,
    format_root_hashes,
    hash_root,
    list_files,
    parse_root_hashes,
)

DIRS = ("bin", "boot", "lib", "sbin", "usr")


def tree(root: Path) -> Path:
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "usr" / "lib" / "x").mkdir(parents=True)
    (root / "usr" / "bin" / "ls").write_bytes(b"ls binary")
    (root / "usr" / "lib" / "x" / "libc.so").write_bytes(b"libc")
    (root / "bin").symlink_to("usr/bin")  # merged /usr: find lists nothing under it
    (root / "etc").mkdir()
    (root / "etc" / "shadow").write_bytes(b"not listed")
    return root


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_the_listed_directories_regular_files(tmp_path: Path) -> None:
    root = tree(tmp_path)
    found = hash_root(str(root), DIRS)
    assert found.digests == {
        "usr/bin/ls": digest(b"ls binary"),
        "usr/lib/x/libc.so": digest(b"libc"),
    }
    assert found.unlistable == []


def test_symlinks_fifos_and_kexec_names_are_not_followed_or_listed(tmp_path: Path) -> None:
    root = tree(tmp_path)
    (root / "usr" / "bin" / "sh").symlink_to("/etc/shadow")
    (root / "usr" / "lib" / "loop").symlink_to("..")
    os.mkfifo(root / "usr" / "bin" / "fifo")  # opening it would block forever
    (root / "usr" / "bin" / "kexec-tool").write_bytes(b"left out as Heads does")
    assert list_files(str(root), DIRS) == ["usr/bin/ls", "usr/lib/x/libc.so"]


def test_a_name_no_list_can_hold_is_reported_not_dropped(tmp_path: Path) -> None:
    root = tree(tmp_path)
    (root / "usr" / "bin" / "evil\nname").write_bytes(b"hidden?")
    found = hash_root(str(root), DIRS)
    assert found.unlistable == ["usr/bin/evil\nname"]
    with pytest.raises(ListFormatError):
        format_root_hashes(found)
    signed = parse_root_hashes(format_root_hashes(hash_root(str(tree(tmp_path / "b")), DIRS)))
    check = compare(signed, found)
    assert "usr/bin/evil\nname" in check.added and not check.ok


def test_the_list_round_trips_and_a_change_is_named(tmp_path: Path) -> None:
    root = tree(tmp_path)
    listed = format_root_hashes(hash_root(str(root), DIRS))
    assert listed.splitlines()[0] == f"{digest(b'ls binary')}  usr/bin/ls".encode()
    assert listed == format_root_hashes(hash_root(str(root), DIRS))  # reproducible
    signed = parse_root_hashes(listed)
    assert compare(signed, hash_root(str(root), DIRS)).ok
    (root / "usr" / "bin" / "ls").write_bytes(b"trojan")
    (root / "usr" / "lib" / "x" / "libc.so").unlink()
    (root / "usr" / "bin" / "new").write_bytes(b"dropped in")
    check = compare(signed, hash_root(str(root), DIRS))
    assert (check.changed, check.missing, check.added) == (
        ("usr/bin/ls",),
        ("usr/lib/x/libc.so",),
        ("usr/bin/new",),
    )


def test_heads_own_list_is_read(tmp_path: Path) -> None:
    """Lines as Heads' sha256sum writes them (find's order, binary marker)."""
    data = (f"{digest(b'libc')}  usr/lib/x/libc.so\n{digest(b'ls binary')} *usr/bin/ls\n").encode()
    assert compare(parse_root_hashes(data), hash_root(str(tree(tmp_path)), DIRS)).ok


@pytest.mark.parametrize("bad", ["/usr", "../etc", "usr/../../etc"])
def test_a_directory_outside_the_root_is_refused(tmp_path: Path, bad: str) -> None:
    with pytest.raises(RootHashError):
        list_files(str(tree(tmp_path)), [bad])


def test_a_missing_directory_lists_nothing(tmp_path: Path) -> None:
    assert list_files(str(tree(tmp_path)), ["opt"]) == []


def test_a_trailing_slash_or_a_symlinked_component_lists_nothing(tmp_path: Path) -> None:
    """usr/ would follow a symlinked usr; each component is opened unfollowed."""
    root = tree(tmp_path / "a")
    with pytest.raises(RootHashError):
        list_files(str(root), ["usr/"])
    clean = tree(tmp_path / "clean")
    (root / "opt").symlink_to(clean / "usr")
    assert list_files(str(root), ["opt/bin"]) == []


def test_a_directory_linked_twice_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No OS makes one; a crafted file system could make the walk endless."""
    root = tree(tmp_path)
    real = os.fstat

    def same_inode(fd: int) -> os.stat_result:
        st = real(fd)
        if os.path.isdir(f"/proc/self/fd/{fd}"):
            return os.stat_result((st.st_mode, 1, st.st_dev, *st[3:]))
        return st

    monkeypatch.setattr(os, "fstat", same_inode)  # every directory the same inode
    with pytest.raises(RootHashError, match="met twice"):
        list_files(str(root), ["usr"])


def test_sparse_terabytes_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import runtime.integrity.root_hashes as module

    root = tree(tmp_path)
    monkeypatch.setattr(module, "MAX_ROOT_BYTES", 1000)
    with (root / "usr" / "bin" / "sparse").open("wb") as f:
        f.truncate(10_000)
    with pytest.raises(RootHashError, match="sparse"):
        list_files(str(root), ["usr"])
