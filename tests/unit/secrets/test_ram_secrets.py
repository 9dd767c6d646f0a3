"""The RAM secret store: only a private tmpfs is accepted, names cannot leave
the directory, and wiping overwrites before it removes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runtime.secrets.ram import (
    SecretDir,
    SecretDirError,
    SecretMissing,
    fstype_from_mountinfo,
    mounted_fstype,
    wipe_buffer,
)
from tests.leakcheck import LeakWatch, secret_forms
from tests.support.secret_dir import pretend_tmpfs, ram_secret_dir

MOUNTINFO = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
25 22 0:21 / /tmp rw,nosuid shared:5 - tmpfs tmpfs rw
31 25 0:30 / /tmp/secret rw - tmpfs tmpfs rw,size=16384k,mode=700
40 22 0:40 / /mnt/with\\040space rw - vfat /dev/sdb1 rw
"""


@pytest.fixture
def store(tmp_path: Path) -> SecretDir:
    return ram_secret_dir(tmp_path)


def test_mountinfo_takes_the_deepest_mount() -> None:
    assert fstype_from_mountinfo("/tmp/secret", MOUNTINFO) == "tmpfs"
    assert fstype_from_mountinfo("/tmp/secret/x", MOUNTINFO) == "tmpfs"
    assert fstype_from_mountinfo("/tmp/secretive", MOUNTINFO) == "tmpfs"  # under /tmp
    assert fstype_from_mountinfo("/home/user", MOUNTINFO) == "ext4"
    assert fstype_from_mountinfo("/mnt/with space/a", MOUNTINFO) == "vfat"


def test_the_last_of_stacked_mounts_wins() -> None:
    stacked = MOUNTINFO + "50 31 0:50 / /tmp/secret rw - ext4 /dev/sdc1 rw\n"
    assert fstype_from_mountinfo("/tmp/secret", stacked) == "ext4"


def test_mounted_fstype_reads_the_real_table() -> None:
    assert mounted_fstype("/proc") == "proc"


def test_check_accepts_a_private_tmpfs(store: SecretDir) -> None:
    store.check()


def test_check_refuses_a_disk(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.mkdir(mode=0o700)
    with pytest.raises(SecretDirError, match="not a RAM-only"):
        SecretDir(str(path), fstype_of=lambda _p: "ext4").check()


def test_check_refuses_a_readable_directory(store: SecretDir) -> None:
    os.chmod(store.path, 0o755)  # noqa: S103 - the unsafe mode under test
    with pytest.raises(SecretDirError, match="mode 0755"):
        store.check()


def test_check_refuses_a_symlink_and_a_missing_directory(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    (tmp_path / "link").symlink_to(real)
    with pytest.raises(SecretDirError, match="not a plain directory"):
        SecretDir(str(tmp_path / "link"), fstype_of=pretend_tmpfs).check()
    with pytest.raises(SecretDirError, match="cannot be checked"):
        SecretDir(str(tmp_path / "absent"), fstype_of=pretend_tmpfs).check()


def test_write_read_round_trip_with_private_mode(store: SecretDir) -> None:
    store.write("disk_key", bytearray(b"\x01\x02secret"))
    assert store.read("disk_key") == bytearray(b"\x01\x02secret")
    assert isinstance(store.read("disk_key"), bytearray)
    assert os.stat(os.path.join(store.path, "disk_key")).st_mode & 0o777 == 0o600


def test_write_replaces_and_leaves_no_temporary_file(store: SecretDir) -> None:
    store.write("pin", b"first")
    store.write("pin", b"second value")
    assert store.read("pin") == b"second value"
    assert os.listdir(store.path) == ["pin"]


def test_replacing_wipes_the_old_value_in_place(store: SecretDir) -> None:
    store.write("pin", b"old secret")
    # Another open descriptor sees the old inode: it must hold zeros now.
    fd = os.open(os.path.join(store.path, "pin"), os.O_RDONLY)
    try:
        store.write("pin", b"new")
        assert os.pread(fd, 64, 0) == bytes(10)
    finally:
        os.close(fd)


@pytest.mark.parametrize("name", ["../x", "a/b", ".hidden", "a.b", "", "x" * 65, "é"])
def test_bad_names_are_refused(store: SecretDir, name: str) -> None:
    with pytest.raises(SecretDirError, match="not a valid secret name"):
        store.write(name, b"x")


def test_write_does_not_follow_a_planted_symlink(store: SecretDir, tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep me")
    os.symlink(victim, os.path.join(store.path, "pin"))
    with pytest.raises(SecretDirError, match="cannot be replaced"):
        store.write("pin", b"secret")
    assert victim.read_bytes() == b"keep me"
    assert os.listdir(store.path) == ["pin"]  # no temporary file left


def test_read_missing_and_symlinked(store: SecretDir, tmp_path: Path) -> None:
    with pytest.raises(SecretMissing, match="No secret named pin"):
        store.read("pin")
    os.symlink(tmp_path / "elsewhere", os.path.join(store.path, "link"))
    with pytest.raises(SecretDirError, match="Cannot read the secret link"):
        store.read("link")


def test_wipe_zeroes_then_removes(store: SecretDir) -> None:
    store.write("pin", b"1234")
    fd = os.open(os.path.join(store.path, "pin"), os.O_RDONLY)
    try:
        assert store.wipe("pin") is True
        assert os.pread(fd, 16, 0) == bytes(4)
    finally:
        os.close(fd)
    assert os.listdir(store.path) == []
    assert store.wipe("pin") is False


def test_wipe_all_counts_files_and_keeps_the_directory(store: SecretDir, tmp_path: Path) -> None:
    store.write("a", b"1")
    store.write("b", b"2")
    nested = Path(store.path, "gpg-home")
    nested.mkdir()
    (nested / "pubring.kbx").write_bytes(b"3")
    outside = tmp_path / "outside"
    outside.write_bytes(b"not ours")
    os.symlink(outside, os.path.join(store.path, "link"))
    os.chmod(store.path, 0o755)  # noqa: S103 - the unsafe mode under test
    assert store.wipe_all() == 3
    assert os.listdir(store.path) == []
    assert os.stat(store.path).st_mode & 0o777 == 0o700
    assert outside.read_bytes() == b"not ours"


def test_wipe_all_recreates_a_missing_directory(tmp_path: Path) -> None:
    store = SecretDir(str(tmp_path / "secret"), fstype_of=pretend_tmpfs)
    assert store.wipe_all() == 0
    assert os.stat(store.path).st_mode & 0o777 == 0o700


def test_wipe_all_replaces_a_symlink_with_a_directory(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.mkdir()
    (target / "keep").write_bytes(b"x")
    os.symlink(target, tmp_path / "secret")
    store = SecretDir(str(tmp_path / "secret"), fstype_of=pretend_tmpfs)
    assert store.wipe_all() == 0
    assert (target / "keep").read_bytes() == b"x"
    assert os.path.isdir(store.path) and not os.path.islink(store.path)


def test_wipe_buffer_clears_in_place() -> None:
    buf = bytearray(b"secret bytes")
    alias = memoryview(buf)  # the same memory seen from elsewhere
    wipe_buffer(buf)
    assert bytes(alias) == bytes(12)
    wipe_buffer(bytearray())  # an empty buffer is fine


def test_the_secret_stays_in_the_store(store: SecretDir) -> None:
    secret = bytearray(os.urandom(20))
    forms = secret_forms(secret)
    with LeakWatch(store.path) as watch:
        store.write("totp", secret)
        store.write("totp", secret)  # the replace path too
        copy = store.read("totp")
        wipe_buffer(copy)
        store.wipe_all()
    watch.assert_clean(forms)
    assert watch.written and all(p.startswith(store.path) for p in watch.written)
