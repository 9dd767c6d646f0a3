"""The disk unlock key's cpio as a file beside the RAM copies, so that kexec
loads it appended to the OS's initrd; and its copies zeroed once loaded.

The file lives in the RAM stage (a tmpfs, unmounted after the load) with
mode 0600. Once kexec holds the combined initrd, the two copies of the key
in the stage (its own file and the tail of the concatenation) are
overwritten before the stage goes; the rest of the freed pages are zeroed
by the kernel (init_on_free=1).
"""

from __future__ import annotations

import contextlib
import os

from runtime.kexec.errors import KexecError
from runtime.kexec.plan import INITRD_ALIGN

KEY_FILE = "disk-key.cpio"
_FLAGS = os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC


def write_key_file(directory: str, cpio: bytearray) -> str:
    """The cpio written to ``directory``; its path."""
    path = os.path.join(directory, KEY_FILE)
    try:
        fd = os.open(path, _FLAGS, 0o600)
    except OSError as err:
        raise KexecError(f"Cannot write the disk key for the OS: {err.strerror}.") from err
    try:
        view = memoryview(cpio)
        while view:
            view = view[os.write(fd, view) :]
    except OSError as err:
        raise KexecError(f"Cannot write the disk key for the OS: {err.strerror}.") from err
    finally:
        os.close(fd)
    return path


def _zero_tail(path: str, count: int) -> None:
    with contextlib.suppress(FileNotFoundError):
        fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            size = os.fstat(fd).st_size
            os.pwrite(fd, bytes(min(count, size)), max(0, size - count))
            os.fsync(fd)
        finally:
            os.close(fd)


def wipe_key_copies(key_path: str, combined: str | None, cpio_size: int) -> None:
    """Zero the key file and the key's copy at the end of ``combined``."""
    _zero_tail(key_path, cpio_size)
    if combined is not None:
        # the key's cpio is the last part, then write_initrd's padding to INITRD_ALIGN
        _zero_tail(combined, cpio_size + (-cpio_size % INITRD_ALIGN))
