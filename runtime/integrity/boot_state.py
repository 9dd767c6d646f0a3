"""Replacing /boot's signed state so that a power cut at any moment leaves
either the old or the new signed state, never one that verifies against
neither.

Several files change together (the lists, kexec.sig, kexec_rollback.txt, a
default entry) and the TPM counter moves with them, which no single rename can
do. So a new state is first staged whole in /boot/kexec.next.d/ (a kexec*
path, so neither Heads' lists nor ours cover it), each file fsynced, then a
COMMIT file naming every file and its hash is written and fsynced last. Only
then is the counter incremented, and the files renamed into place one by one.

At the next start, `settle_pending` looks at what is left:
  no COMMIT, or a damaged one          -> staging was cut short: drop it (old state)
  COMMIT, counter not yet incremented  -> the old state still matches: drop it
  COMMIT, counter incremented          -> finish the renames (new state)
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

PENDING_DIR = "kexec.next.d"
COMMIT_FILE = "COMMIT"
MAX_COMMIT_BYTES = 1024 * 1024


class Disk(Protocol):
    """The file operations a state change uses, so a test can record them and
    cut the power after any one."""

    def write(self, path: str, data: bytes) -> None: ...  # create/truncate + write
    def fsync(self, path: str) -> None: ...  # file or directory
    def rename(self, src: str, dst: str) -> None: ...
    def unlink(self, path: str) -> None: ...
    def mkdir(self, path: str) -> None: ...
    def rmdir(self, path: str) -> None: ...


class RealDisk:
    def write(self, path: str, data: bytes) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)

    def fsync(self, path: str) -> None:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def rename(self, src: str, dst: str) -> None:
        os.rename(src, dst)

    def unlink(self, path: str) -> None:
        os.unlink(path)

    def mkdir(self, path: str) -> None:
        os.mkdir(path, 0o755)

    def rmdir(self, path: str) -> None:
        os.rmdir(path)


@dataclass(frozen=True)
class NewState:
    """The signed-state files after the change (name -> bytes, at /boot's
    top level), those to delete, and the counter value they are signed at."""

    files: Mapping[str, bytes]
    remove: Sequence[str]
    counter: int


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _check_name(name: str) -> str:
    if not name.startswith("kexec") or "/" in name or name in (PENDING_DIR, ".", ".."):
        raise ValueError(f"{name!r} is not a signed-state file name")
    return name


def stage(boot_dir: str, state: NewState, disk: Disk | None = None) -> None:
    """Write the new state beside the old one, durable, ending with COMMIT."""
    disk = disk or RealDisk()
    pending = os.path.join(boot_dir, PENDING_DIR)
    discard_pending(boot_dir, disk)
    disk.mkdir(pending)
    disk.fsync(boot_dir)
    for name, data in state.files.items():
        path = os.path.join(pending, _check_name(name))
        disk.write(path, data)
        disk.fsync(path)
    commit = json.dumps(
        {
            "files": {name: _sha256(data) for name, data in state.files.items()},
            "remove": [_check_name(n) for n in state.remove],
            "counter": state.counter,
        },
        sort_keys=True,
    ).encode()
    disk.write(os.path.join(pending, COMMIT_FILE), commit)
    disk.fsync(os.path.join(pending, COMMIT_FILE))
    disk.fsync(pending)


@dataclass(frozen=True)
class Pending:
    files: dict[str, str]  # name -> sha256
    remove: list[str]
    counter: int
    complete: bool  # every file is in the pending dir or already in place


def read_pending(boot_dir: str) -> Pending | None:
    """The committed pending state, or None when there is none (or it was cut
    short, so it never committed)."""
    pending = os.path.join(boot_dir, PENDING_DIR)
    try:
        with open(os.path.join(pending, COMMIT_FILE), "rb") as f:
            raw = f.read(MAX_COMMIT_BYTES + 1)
        doc = json.loads(raw)
        files = {_check_name(str(k)): str(v) for k, v in dict(doc["files"]).items()}
        remove = [_check_name(str(n)) for n in list(doc["remove"])]
        counter = int(doc["counter"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    complete = all(
        _file_sha256(os.path.join(pending, name)) == digest
        or _file_sha256(os.path.join(boot_dir, name)) == digest
        for name, digest in files.items()
    )
    return Pending(files, remove, counter, complete)


def _file_sha256(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest()
    except OSError:
        return None


def roll_forward(boot_dir: str, pending: Pending, disk: Disk | None = None) -> None:
    """Move the committed files into place; safe to repeat after a cut."""
    disk = disk or RealDisk()
    directory = os.path.join(boot_dir, PENDING_DIR)
    for name in sorted(pending.files):
        src = os.path.join(directory, name)
        if os.path.exists(src):
            disk.rename(src, os.path.join(boot_dir, name))
    disk.fsync(boot_dir)
    for name in pending.remove:
        if name not in pending.files and os.path.exists(os.path.join(boot_dir, name)):
            disk.unlink(os.path.join(boot_dir, name))
    disk.fsync(boot_dir)
    discard_pending(boot_dir, disk)


def discard_pending(boot_dir: str, disk: Disk | None = None) -> None:
    """Remove the pending directory: COMMIT first, so a cut leaves no commit."""
    disk = disk or RealDisk()
    directory = os.path.join(boot_dir, PENDING_DIR)
    if not os.path.isdir(directory):
        return
    names = sorted(os.listdir(directory), key=lambda n: n != COMMIT_FILE)
    for name in names:
        disk.unlink(os.path.join(directory, name))
    disk.rmdir(directory)
    disk.fsync(boot_dir)


def pending_counter_index(boot_dir: str) -> int | None:
    """The NV index of the counter the pending state is signed with."""
    from runtime.integrity.boot_lists import ROLLBACK_FILE, ListFormatError, parse_rollback

    try:
        with open(os.path.join(boot_dir, PENDING_DIR, ROLLBACK_FILE), "rb") as f:
            return parse_rollback(f.read(4096)).nv_index
    except (OSError, ListFormatError):
        return None


def settle_pending(boot_dir: str, counter_now: int | None, disk: Disk | None = None) -> str:
    """Finish or drop a state change a power cut interrupted; what was done,
    in plain words ("" when there was nothing to do)."""
    if not os.path.isdir(os.path.join(boot_dir, PENDING_DIR)):
        return ""
    pending = read_pending(boot_dir)
    if pending is None or not pending.complete:
        discard_pending(boot_dir, disk)
        return "An interrupted signing of /boot was found and dropped; the earlier state stands."
    if counter_now != pending.counter:
        discard_pending(boot_dir, disk)
        return (
            "An interrupted signing of /boot was found before its rollback counter moved; "
            "it was dropped and the earlier state stands."
        )
    roll_forward(boot_dir, pending, disk)
    return "An interrupted signing of /boot was found and completed."
