"""The root file system is never hashed while its journal holds changes: a read-only mount
ignores the journal and the OS replays it, so what was checked would not be what runs."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from runtime.devices import root_fs
from tools import ext4_journal as ej

pytestmark = pytest.mark.skipif(
    not all(
        shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin")
        for tool in ("debugfs", "mke2fs", "e2fsck")
    ),
    reason="e2fsprogs (debugfs, mke2fs, e2fsck) is not installed (tools/bootstrap.sh adds it)",
)

BINARY = "/usr/bin/ls-like"


@pytest.fixture
def device(tmp_path: Path) -> Iterator[Path]:
    """An ext4 image under /dev/shm: a path under /dev/ that exists, as CONFIG_ROOT_DEV
    must name, without a loop device."""
    image = tmp_path / "root.ext4"
    ej.make_ext4_image(image, {BINARY: os.urandom(64 * 1024)})
    at = Path("/dev/shm") / f"root-fs-test-{uuid.uuid4().hex}.ext4"
    shutil.copyfile(image, at)
    yield at
    at.unlink(missing_ok=True)


def recorder(mounts: list[str]) -> Callable[[str, str], str]:
    """A stand-in for the read-only mount that records the device (no loop device here)."""

    def mount(device: str, target: str) -> str:
        mounts.append(device)
        return ""

    return mount


def test_a_pending_journal_is_refused_before_anything_is_mounted(
    device: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ej.make_pending_journal(device, BINARY, os.urandom(64 * 1024))
    mounts: list[str] = []
    monkeypatch.setattr(root_fs, "mount_read_only", recorder(mounts))
    with (
        pytest.raises(root_fs.RootMountError) as refused,
        root_fs.mounted_root(str(device), str(tmp_path / "mnt")),
    ):
        pytest.fail("the root file system was offered for hashing")
    assert "journal holding changes not yet applied" in str(refused.value)
    assert mounts == []


def test_a_clean_file_system_goes_on_to_the_mount(
    device: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mounts: list[str] = []
    monkeypatch.setattr(root_fs, "mount_read_only", recorder(mounts))
    monkeypatch.setattr(root_fs, "unmount", lambda target: None)
    with root_fs.mounted_root(str(device), str(tmp_path / "mnt")) as where:
        assert where == str(tmp_path / "mnt")
    assert mounts == [str(device)]
