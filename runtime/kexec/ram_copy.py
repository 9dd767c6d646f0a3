"""Every file kexec loads is first copied from /boot into RAM, hashed as it is
copied, and loaded from that copy: the bytes checked are the bytes booted,
even if the disk answers a second read differently or a name is swapped
after /boot was verified. On the verified path a copy whose hash is not the
owner's signed one is deleted and nothing is loaded.

The copies go into a tmpfs of their own, sized for the entry (the RAM
secrets' tmpfs is kept small on purpose), and checked against the free RAM
first so a large initrd set fails with a plain message, not half-loaded.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from runtime.boot_configs.entry import BootEntry
from runtime.error_detail import plain
from runtime.integrity.boot_paths import BootPathError
from runtime.integrity.boot_view import BootView
from runtime.kexec.errors import KexecError

STAGE_DIR = "/run/kexec-load"
MOUNT = "/bin/mount"
UMOUNT = "/bin/umount"
MOUNT_TIMEOUT = 20
CHUNK = 1 << 20
_MIB = 1 << 20
#: kept free beside the copies and kexec's own copy in kernel memory
RAM_MARGIN = 48 * _MIB
_OUT_FLAGS = os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass
class StagedEntry:
    """Entry path -> its checked copy in RAM; the combined initrd's path."""

    paths: dict[str, str] = field(default_factory=dict)
    initrd_out: str = ""


def needed_bytes(view: BootView, entry: BootEntry, extra_initrd: int = 0) -> int:
    """RAM the copies take (the initrds twice when they are concatenated: the
    parts and the whole), with ``extra_initrd`` bytes appended to them."""
    combined = len(entry.initrds) > 1 or extra_initrd > 0
    total = 2 * extra_initrd
    for path, what in entry.loaded_files():
        _, fd = view.open(path)
        try:
            size = os.fstat(fd).st_size
        finally:
            os.close(fd)
        total += size * (2 if what == "initrd" and combined else 1)
    return total


def copy_checked(view: BootView, path: str, dest: str) -> str:
    """Copy one file the view offers to dest (created, mode 0600), hashing it
    on the way; on a verified view the hash must be the owner's."""
    rel, fd = view.open(path)
    want = view.signed_digest(rel)
    digest = hashlib.sha256()
    buf = bytearray(CHUNK)
    view_buf = memoryview(buf)
    try:
        out = os.open(dest, _OUT_FLAGS, 0o600)
    except OSError as err:
        os.close(fd)
        raise KexecError(f"Cannot make the RAM copy of {path}: {err.strerror}.") from err
    try:
        while n := os.readv(fd, [view_buf]):
            digest.update(view_buf[:n])
            chunk = view_buf[:n]
            while chunk:
                chunk = chunk[os.write(out, chunk) :]
    except OSError as err:
        with contextlib.suppress(OSError):
            os.unlink(dest)
        raise KexecError(f"Cannot copy {path} into RAM: {err.strerror}.") from err
    finally:
        os.close(fd)
        os.close(out)
    if view.verified and digest.hexdigest() != want:
        os.unlink(dest)
        raise KexecError(
            f"{path} read differently from the file the owner signed (the disk changed "
            "it after /boot was checked): nothing was loaded."
        )
    return dest


def stage_entry(view: BootView, entry: BootEntry, directory: str) -> StagedEntry:
    """Checked RAM copies of everything the entry loads, in directory."""
    staged = StagedEntry(initrd_out=os.path.join(directory, "initrd-combined"))
    try:
        for number, (path, what) in enumerate(entry.loaded_files()):
            if path not in staged.paths:
                staged.paths[path] = copy_checked(
                    view, path, os.path.join(directory, f"{number}-{what}")
                )
    except BootPathError as err:
        raise KexecError(f"Not loaded: {err}.") from err
    return staged


def locator(staged: StagedEntry) -> Callable[[str, str], str]:
    """For plan_for: an entry's path -> its checked copy."""

    def locate(path: str, what: str) -> str:
        try:
            return staged.paths[path]
        except KeyError:
            raise KexecError(f"The {what} {path} was not copied into RAM.") from None

    return locate


def available_ram() -> int:
    """MemAvailable in bytes (0 when it cannot be read)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def room_problem(needed: int, available: int) -> str:
    """Plain words when the copies and kexec's own copy will not fit."""
    want = 2 * needed + RAM_MARGIN
    if available and want > available:
        return (
            f"This entry needs about {want // _MIB} MiB of RAM to load and "
            f"{available // _MIB} MiB are free."
        )
    return ""


@contextlib.contextmanager
def ram_stage(size: int, directory: str = STAGE_DIR) -> Iterator[str]:
    """A tmpfs of the given size at directory for the duration, then gone
    (its pages are freed when it is unmounted)."""
    os.makedirs(directory, mode=0o700, exist_ok=True)
    pages = max(size + _MIB, 4 * _MIB)
    try:
        options = f"mode=0700,size={pages}"
        subprocess.run(
            [MOUNT, "-t", "tmpfs", "-o", options, "tmpfs", directory],
            check=True,
            timeout=MOUNT_TIMEOUT,
            capture_output=True,
        )
    except (OSError, subprocess.SubprocessError) as err:
        raise KexecError(
            plain(
                "kexec-ram",
                err,
                (
                    "No RAM area for the kernel could be set up, so nothing was loaded. Restart "
                    "and try again."
                ),
            )
        ) from err
    try:
        yield directory
    finally:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(
                [UMOUNT, directory], check=True, timeout=MOUNT_TIMEOUT, capture_output=True
            )
