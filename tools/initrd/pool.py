"""The pool: every file of the locked Debian packages, unpacked once into the
cache, indexed by its path in the image and the package it came from."""

from __future__ import annotations

import os
import posixpath
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tools.initrd.cache import fetch_deb
from tools.initrd.lock import DebPin


@dataclass(frozen=True)
class PoolFile:
    host: Path  # where the unpacked file is
    origin: str  # "package version"
    link: str | None  # symlink target as packaged, or None for a regular file


class Pool:
    def __init__(self) -> None:
        self.files: dict[str, PoolFile] = {}

    def add_package(self, pin: DebPin, cache: Path) -> None:
        tree = unpack(pin, cache)
        origin = f"{pin.name} {pin.version}"
        for dirpath, dirnames, filenames in os.walk(tree):
            base = Path(dirpath)
            # Symlinked directories are entries too (os.walk lists them as dirs).
            for name in filenames + [d for d in dirnames if (base / d).is_symlink()]:
                host = base / name
                image = host.relative_to(tree).as_posix()
                link = os.readlink(host) if host.is_symlink() else None
                self.files.setdefault(image, PoolFile(host, origin, link))

    def resolve(self, image_path: str, depth: int = 0) -> str:
        """Follow symlinks inside the image's tree (absolute targets are image-rooted)."""
        if depth > 20:
            raise ValueError(f"symlink loop at {image_path}")
        parts = image_path.split("/")
        for i in range(1, len(parts) + 1):
            prefix = "/".join(parts[:i])
            entry = self.files.get(prefix)
            if entry is not None and entry.link is not None:
                target = entry.link
                joined = (
                    target.lstrip("/")
                    if target.startswith("/")
                    else posixpath.join(posixpath.dirname(prefix), target)
                )
                rest = "/".join(parts[i:])
                full = posixpath.normpath(posixpath.join(joined, rest) if rest else joined)
                return self.resolve(full, depth + 1)
        return image_path

    def host_paths(self) -> dict[str, str]:
        """Image path -> host path of the real file, for every name that resolves."""
        out: dict[str, str] = {}
        for image in self.files:
            real = self.resolve(image)
            if real in self.files and self.files[real].link is None:
                out[image] = str(self.files[real].host)
        return out


def unpack(pin: DebPin, cache: Path) -> Path:
    """The package's files, unpacked into the cache once (keyed by its sha256)."""
    tree = cache / "unpacked" / f"{pin.name}_{pin.sha256[:16]}"
    if tree.exists():
        return tree
    deb = fetch_deb(pin, cache)
    tree.parent.mkdir(parents=True, exist_ok=True)
    # A private partial directory, renamed into place: concurrent builds (the
    # test workers) may unpack the same package; the first rename wins.
    partial = Path(tempfile.mkdtemp(prefix=tree.name + ".", dir=tree.parent))
    subprocess.run(["dpkg-deb", "-x", str(deb), str(partial)], check=True, timeout=600)
    try:
        partial.rename(tree)
    except OSError:
        shutil.rmtree(partial, ignore_errors=True)
        if not tree.exists():
            raise
    return tree
