"""The read-only file-system view parsers get: paths as the configuration names
them ("/boot/grub/grub.cfg"), always inside one root. A hostile /boot or ISO
must not make a parser read the rest of the system, so '..' cannot climb out
and symlinks pointing outside the root resolve to nothing.
"""

from __future__ import annotations

import os
import posixpath
from pathlib import Path
from typing import Protocol

#: A configuration larger than this is not a configuration: don't read it all.
MAX_TEXT_BYTES = 4 * 1024 * 1024


class BootFS(Protocol):
    def read_text(self, path: str) -> str | None:
        """The file's text (undecodable bytes replaced), or None if unreadable."""
        ...

    def exists(self, path: str) -> bool: ...


def normalize(path: str) -> str | None:
    """'/a/./b/../c' -> '/a/c'; None when '..' would climb above the root."""
    if "\0" in path:
        return None
    depth = 0
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if depth == 0:
                return None
            depth -= 1
            parts.pop()
            continue
        depth += 1
        parts.append(part)
    return "/" + "/".join(parts)


class DirFS:
    """A directory standing in for the root: "/x" is <root>/x."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self._root = Path(os.path.realpath(root))

    def _resolve(self, path: str) -> Path | None:
        norm = normalize(path)
        if norm is None:
            return None
        try:
            real = Path(os.path.realpath(self._root / norm.lstrip("/")))
        except (OSError, ValueError):
            return None
        # symlinks are followed, but only while they stay inside the root
        if real != self._root and not real.is_relative_to(self._root):
            return None
        return real

    def exists(self, path: str) -> bool:
        real = self._resolve(path)
        try:
            return real is not None and real.exists()
        except (OSError, ValueError):
            return False

    def listdir(self, path: str) -> list[str] | None:
        """The names in a directory inside the root (sorted), None if there is none."""
        real = self._resolve(path)
        if real is None:
            return None
        try:
            return sorted(os.listdir(real))
        except OSError:
            return None

    def scan(self, path: str) -> list[tuple[str, bool]] | None:
        """(name, is a directory) in the order the kernel returns them, symlinks
        not followed: what `find` sees, so a Heads-style scan lists the same
        order on the same file system. None if path is no directory."""
        real = self._resolve(path)
        if real is None:
            return None
        try:
            with os.scandir(real) as it:
                return [(e.name, e.is_dir(follow_symlinks=False)) for e in it]
        except OSError:
            return None

    def read_text(self, path: str) -> str | None:
        real = self._resolve(path)
        if real is None:
            return None
        try:
            if not real.is_file():
                return None
            with real.open("rb") as f:
                data = f.read(MAX_TEXT_BYTES + 1)
        except (OSError, ValueError):
            return None
        if len(data) > MAX_TEXT_BYTES:
            return None
        return data.decode("utf-8", errors="replace")


class MemoryFS:
    """Files given as a dict (path -> text): for tests and unpacked archives."""

    def __init__(self, files: dict[str, str]) -> None:
        self._files: dict[str, str] = {}
        for path, text in files.items():
            norm = normalize(path)
            if norm is not None:
                self._files[norm] = text

    def exists(self, path: str) -> bool:
        norm = normalize(path)
        if norm is None:
            return False
        if norm in self._files:
            return True
        prefix = norm.rstrip("/") + "/"
        return any(p.startswith(prefix) for p in self._files)

    def read_text(self, path: str) -> str | None:
        norm = normalize(path)
        return None if norm is None else self._files.get(norm)

    def listdir(self, path: str) -> list[str] | None:
        found = self.scan(path)
        return None if found is None else sorted(name for name, _ in found)

    def scan(self, path: str) -> list[tuple[str, bool]] | None:
        """(name, is a directory) in the order the files were given."""
        norm = normalize(path)
        if norm is None or norm in self._files:
            return None
        prefix = norm.rstrip("/") + "/"
        seen: dict[str, bool] = {}
        for p in self._files:
            if p.startswith(prefix):
                name, sep, _ = p[len(prefix) :].partition("/")
                seen[name] = seen.get(name, False) or bool(sep)
        if not seen and norm != "/":
            return None
        return list(seen.items())


def join(base_dir: str, path: str) -> str:
    """A configuration path resolved against base_dir (absolute paths win)."""
    return posixpath.join(base_dir, path) if base_dir else path
