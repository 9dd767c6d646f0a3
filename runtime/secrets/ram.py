"""The RAM secret store: /tmp/secret, a tmpfs that /init mounts mode 0700.

Secrets the runtime must keep between steps (a cached passphrase, a key for
the OS initrd) live here and nowhere else: a tmpfs never reaches a disk, and
the initramfs has no swap. Every file is overwritten with zeros before it is
unlinked, because tmpfs hands freed pages back without clearing them.
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
import stat
from collections.abc import Callable

# Not a shared-/tmp file and not a password: /init mounts a private tmpfs here.
SECRET_DIR = "/tmp/secret"  # noqa: S105, S108
TMPFS = "tmpfs"
MOUNTINFO = "/proc/self/mountinfo"
_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
# Opened without following a symlink planted in place of a secret.
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
_WRITE_FLAGS = os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC
_ZEROS = bytes(65536)


class SecretDirError(Exception):
    """The secret directory is unsafe or an operation on it failed (plain words)."""


class SecretMissing(SecretDirError):
    """No secret of that name is stored."""


def wipe_buffer(buf: bytearray) -> None:
    """Overwrite ``buf`` with zeros in place.

    memset writes into the bytearray's own memory in one call: no zeroed copy
    is allocated in its place (as ``buf = bytearray(n)`` would, leaving the
    secret behind) and it is not slow for large buffers as a byte loop is.
    """
    if buf:
        ctypes.memset((ctypes.c_char * len(buf)).from_buffer(buf), 0, len(buf))


def _unescape(field: str) -> str:
    # mountinfo writes space, tab, newline and backslash as octal escapes.
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def fstype_from_mountinfo(path: str, mountinfo: str) -> str | None:
    """The filesystem type of the mount holding ``path`` (already resolved),
    from the text of /proc/self/mountinfo; the last, topmost mount wins."""
    best: tuple[int, str] | None = None
    for line in mountinfo.splitlines():
        fields = line.split()
        if "-" not in fields[6:]:
            continue
        mountpoint = _unescape(fields[4])
        fstype = fields[fields.index("-", 6) + 1]
        inside = path == mountpoint or path.startswith(mountpoint.rstrip("/") + "/")
        if inside and (best is None or len(mountpoint) >= best[0]):
            best = (len(mountpoint), fstype)
    return best[1] if best else None


def mounted_fstype(path: str) -> str | None:
    """The filesystem type holding ``path``, read from the kernel's mount table."""
    with open(MOUNTINFO, encoding="utf-8", errors="replace") as f:
        return fstype_from_mountinfo(os.path.realpath(path), f.read())


class SecretDir:
    """Named secrets in one RAM-only directory."""

    def __init__(
        self, path: str = SECRET_DIR, fstype_of: Callable[[str], str | None] = mounted_fstype
    ) -> None:
        self.path = path
        self._fstype_of = fstype_of  # tests give a fake: their tmp_path is no tmpfs

    def check(self) -> None:
        """Raise SecretDirError unless the directory is a tmpfs, mode 0700, ours."""
        try:
            info = os.lstat(self.path)
            fstype = self._fstype_of(self.path)
        except OSError as err:
            raise SecretDirError(
                f"The secret directory {self.path} cannot be checked ({err.strerror}). "
                "Secrets will not be stored; reboot so /init can create it."
            ) from err
        if not stat.S_ISDIR(info.st_mode):
            raise SecretDirError(
                f"{self.path} is not a plain directory (a symlink or a file?). Secrets "
                "stored there could end up elsewhere; none will be stored. Reboot."
            )
        if fstype != TMPFS:
            raise SecretDirError(
                f"{self.path} is on {fstype or 'an unknown filesystem'}, not a RAM-only "
                "tmpfs, so secrets could reach a disk; none will be stored. Reboot."
            )
        mode = stat.S_IMODE(info.st_mode)
        if mode != 0o700 or info.st_uid != os.geteuid():
            raise SecretDirError(
                f"{self.path} has mode {mode:04o} and owner {info.st_uid}; it must be 0700 "
                "and this user's, or others could read the secrets. None will be stored."
            )

    def _file(self, name: str) -> str:
        if not _NAME.fullmatch(name):
            raise SecretDirError(
                f"{name!r} is not a valid secret name: use 1-64 letters, digits, '_' "
                "or '-' (no slashes or dots, so a name cannot leave the directory)."
            )
        return os.path.join(self.path, name)

    def write(self, name: str, data: bytes | bytearray) -> None:
        """Store ``data`` as ``name``, replacing any old value atomically; the old
        value is wiped once the new one is in place."""
        target = self._file(name)
        temp = os.path.join(self.path, f".{name}.new-{os.urandom(6).hex()}")
        try:
            fd = os.open(temp, _WRITE_FLAGS, 0o600)
        except OSError as err:
            raise SecretDirError(f"Cannot store the secret {name}: {err.strerror}.") from err
        try:
            with memoryview(data) as view:
                written = 0
                while written < len(view):
                    written += os.write(fd, view[written:])
        except OSError as err:
            os.close(fd)
            self._wipe_path(temp)
            raise SecretDirError(f"Cannot store the secret {name}: {err.strerror}.") from err
        os.close(fd)
        try:
            old = self._open_old(target)
        except SecretDirError:
            self._wipe_path(temp)
            raise
        try:
            os.rename(temp, target)
        except OSError as err:
            if old is not None:
                os.close(old)
            self._wipe_path(temp)
            raise SecretDirError(f"Cannot store the secret {name}: {err.strerror}.") from err
        if old is not None:
            # The replaced inode lives on through this descriptor: clear it now.
            try:
                _zero_fd(old)
            finally:
                os.close(old)

    @staticmethod
    def _open_old(target: str) -> int | None:
        try:
            return os.open(target, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        except OSError as err:
            raise SecretDirError(
                f"The stored secret {os.path.basename(target)} cannot be replaced "
                f"({err.strerror}); is it a link or a directory?"
            ) from err

    def read(self, name: str) -> bytearray:
        """The secret's bytes; the caller wipes them with wipe_buffer after use."""
        path = self._file(name)
        try:
            fd = os.open(path, _READ_FLAGS)
        except FileNotFoundError as err:
            raise SecretMissing(f"No secret named {name} is stored.") from err
        except OSError as err:
            raise SecretDirError(f"Cannot read the secret {name}: {err.strerror}.") from err
        try:
            size = os.fstat(fd).st_size
            buf = bytearray(size)  # read straight into it: no bytes copy to leave behind
            got = 0
            with memoryview(buf) as view:
                while got < size:
                    n = os.readv(fd, [view[got:]])
                    if n == 0:
                        break
                    got += n
            if got < size:
                wipe_buffer(buf)
                raise SecretDirError(f"The secret {name} changed while it was read.")
            return buf
        except OSError as err:
            raise SecretDirError(f"Cannot read the secret {name}: {err.strerror}.") from err
        finally:
            os.close(fd)

    def wipe(self, name: str) -> bool:
        """Overwrite the secret with zeros and remove it; False if it was absent."""
        return self._wipe_path(self._file(name))

    def wipe_all(self) -> int:
        """Wipe every file (also in subdirectories), leave the directory empty and
        0700, and return how many files were wiped."""
        try:
            if os.path.islink(self.path):
                os.unlink(self.path)  # never wipe through a link to somewhere else
            if not os.path.lexists(self.path):
                os.mkdir(self.path, 0o700)
                return 0
            count = self._wipe_tree(self.path)
            os.chmod(self.path, 0o700)
        except OSError as err:
            raise SecretDirError(
                f"The secrets in {self.path} could not all be wiped ({err.strerror}). "
                "Power off to clear RAM."
            ) from err
        return count

    def _wipe_tree(self, directory: str) -> int:
        count = 0
        with os.scandir(directory) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    count += self._wipe_tree(entry.path)
                    os.rmdir(entry.path)
                elif entry.is_file(follow_symlinks=False):
                    count += self._wipe_path(entry.path)
                else:
                    os.unlink(entry.path)  # a link or socket holds no secret bytes
        return count

    @staticmethod
    def _wipe_path(path: str) -> bool:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        except OSError as err:
            if err.errno == errno.ELOOP:  # a symlink; remove the link, not its target
                os.unlink(path)
                return False
            raise SecretDirError(
                f"Cannot wipe {path}: {err.strerror}. Reboot to clear RAM."
            ) from err
        try:
            _zero_fd(fd)
        finally:
            os.close(fd)
        os.unlink(path)
        return True


def _zero_fd(fd: int) -> None:
    """Overwrite the whole file with zeros in place (same pages on tmpfs)."""
    size = os.fstat(fd).st_size
    done = 0
    while done < size:
        done += os.pwrite(fd, _ZEROS[: min(len(_ZEROS), size - done)], done)
