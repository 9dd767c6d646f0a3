"""Reading a file from a hostile /boot without being fooled or stopped by it.

A name on /boot can be a FIFO (an open blocks forever), a symlink (to
/dev/zero, or out of /boot), a directory, or a file far larger than any
signed-state file. Every read of /boot's own files goes through here: no
symlink is followed at the last component, an open never blocks, only a
regular file is read, and never more than the caller's limit.
"""

from __future__ import annotations

import errno
import os
import stat

#: never follow the last component, never block on a FIFO or a device
OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY


class UnsafeFile(OSError):
    """Not read: the name is not a regular file, or it is too large. str() is
    a plain sentence naming the file."""

    def __str__(self) -> str:
        return str(self.strerror or super().__str__())


def kind_of(mode: int) -> str:
    """What a file's mode says it is, in words."""
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device node"
    return "a regular file" if stat.S_ISREG(mode) else "an unknown kind of file"


def open_regular(path: str, *, dir_fd: int | None = None, shown: str | None = None) -> int:
    """A file descriptor of the regular file at path (the last component not
    followed); UnsafeFile for anything else. FileNotFoundError passes through."""
    name = shown or path
    try:
        fd = os.open(path, OPEN_FLAGS, dir_fd=dir_fd)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise UnsafeFile(errno.ELOOP, f"{name} is a symbolic link, not a file") from err
        if isinstance(err, FileNotFoundError):
            raise
        raise UnsafeFile(err.errno, f"{name} cannot be opened ({err.strerror})") from err
    try:
        mode = os.fstat(fd).st_mode
    except OSError as err:
        os.close(fd)
        raise UnsafeFile(err.errno, f"{name} cannot be read ({err.strerror})") from err
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise UnsafeFile(errno.EINVAL, f"{name} is {kind_of(mode)}, not a regular file")
    # O_NONBLOCK only mattered for the open; regular files ignore it anyway
    os.set_blocking(fd, True)
    return fd


def read_regular(
    path: str, limit: int, *, dir_fd: int | None = None, shown: str | None = None
) -> bytes:
    """The whole content of a regular file of at most limit bytes; UnsafeFile
    for anything else (FileNotFoundError when the name does not exist)."""
    name = shown or path
    fd = open_regular(path, dir_fd=dir_fd, shown=shown)
    try:
        if os.fstat(fd).st_size > limit:
            raise UnsafeFile(errno.EFBIG, f"{name} is larger than {limit} bytes")
        chunks: list[bytes] = []
        got = 0
        while got <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - got))
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
    except UnsafeFile:
        raise
    except OSError as err:
        raise UnsafeFile(err.errno, f"{name} cannot be read ({err.strerror})") from err
    finally:
        os.close(fd)
    if got > limit:
        raise UnsafeFile(errno.EFBIG, f"{name} is larger than {limit} bytes")
    return b"".join(chunks)
