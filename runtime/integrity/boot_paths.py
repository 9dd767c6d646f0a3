"""One way to turn a path a boot configuration names into a file on /boot.

A path is resolved once, here, the way the kernel walks it: component by
component, a symlink replaced by its target where it stands, then '..' taken
from where that leads. The result is a canonical './rel' with no symlink in
it. Which names are symlinks, and where they point, comes from the caller:
the targets the owner signed (kexec_symlinks.txt) on the verified path, the
disk's own on an unverified one. The file is then opened along that
canonical path with no symlink followed at all, so the bytes checked, hashed
and booted are the ones at the name that was checked.

Refused: leaving /boot ('..' above the top, a target starting with '/'),
anything under ./kexec* (the signed-state area, which no list covers), more
than MAX_LINKS symlinks, NUL bytes, and every kind of file but a regular one.
"""

from __future__ import annotations

import errno
import os
import stat
from collections import deque
from collections.abc import Callable, Mapping

from runtime.integrity.boot_lists import is_signed_state_path
from runtime.integrity.safe_read import UnsafeFile, open_regular

#: as the kernel's limit on symlinks in one lookup
MAX_LINKS = 40
#: a path longer than this is no boot configuration's
MAX_PATH = 4096
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

#: './rel' -> where the symlink there points, or None when it is no symlink
LinkTarget = Callable[[str], str | None]


class BootPathError(ValueError):
    """The path cannot be booted or read; str() says why in plain words."""


def signed_links(links: Mapping[str, str] | None) -> LinkTarget:
    """Only the symlinks the owner signed are followed; any other symlink is
    met as a plain name and refused when it is opened."""
    table = dict(links or {})
    return table.get


def live_links(root: str) -> LinkTarget:
    """The disk's own symlinks (for an unverified /boot)."""

    def target(rel: str) -> str | None:
        try:
            return os.readlink(os.path.join(root, rel[2:]))
        except OSError:
            return None  # not a symlink (or gone): opening it decides

    return target


def resolve(path: str, link_target: LinkTarget) -> str:
    """The canonical './rel' for a path relative to /boot's top ('/x/y')."""
    shown = path
    try:
        os.fsencode(path)  # a lone surrogate names no file
    except UnicodeError:
        raise BootPathError("the path is not a file name") from None
    if "\0" in path or len(path) > MAX_PATH:
        raise BootPathError(f"the path {shown[:80]!r} is not a file name")
    parts: deque[str] = deque(path.split("/"))
    stack: list[str] = []
    followed = 0
    while parts:
        part = parts.popleft()
        if part in ("", "."):
            continue
        if part == "..":
            if not stack:
                raise BootPathError(f"{shown} climbs out of /boot")
            stack.pop()
            continue
        stack.append(part)
        rel = "./" + "/".join(stack)
        if is_signed_state_path(rel):
            raise BootPathError(
                f"{shown} is in /boot's signed-state area (kexec*), which no signature "
                "covers: nothing is read from there"
            )
        target = link_target(rel)
        if target is None:
            continue
        followed += 1
        if followed > MAX_LINKS:
            raise BootPathError(f"{shown} goes through more than {MAX_LINKS} symlinks")
        if target.startswith("/") or not target:
            raise BootPathError(f"{shown}: {rel[2:]} is a symlink out of /boot (to {target})")
        stack.pop()
        parts.extendleft(reversed(target.split("/")))
    return "./" + "/".join(stack) if stack else "./"


def open_dir(root: str, rel: str) -> int:
    """A descriptor of the directory at canonical rel, no symlink followed."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in [p for p in rel[2:].split("/") if p]:
            try:
                inner = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as err:
                raise _walk_error(rel, part, err, fd) from err
            os.close(fd)
            fd = inner
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_file(root: str, rel: str) -> int:
    """A descriptor of the regular file at canonical rel, no symlink followed
    anywhere on the way. BootPathError when it is missing or anything else."""
    head, _, name = rel[2:].rpartition("/")
    if not name:
        raise BootPathError(f"{rel[2:] or '/'} is a directory, not a file")
    dir_fd = open_dir(root, "./" + head)
    try:
        return open_regular(name, dir_fd=dir_fd, shown=rel[2:])
    except FileNotFoundError as err:
        raise BootPathError(f"{rel[2:]} does not exist on /boot") from err
    except UnsafeFile as err:
        raise BootPathError(str(err)) from err
    finally:
        os.close(dir_fd)


def _walk_error(rel: str, part: str, err: OSError, dir_fd: int) -> BootPathError:
    where = rel[2:]
    try:
        is_link = stat.S_ISLNK(os.lstat(part, dir_fd=dir_fd).st_mode)
    except OSError:
        is_link = False
    if err.errno == errno.ELOOP or is_link:
        return BootPathError(f"{where}: {part} is a symlink whose target is not signed")
    if err.errno == errno.ENOTDIR:
        return BootPathError(f"{where}: {part} is not a directory")
    if err.errno == errno.ENOENT:
        return BootPathError(f"{where} does not exist on /boot")
    return BootPathError(f"{where} cannot be opened ({err.strerror})")
