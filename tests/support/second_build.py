"""The from-source builds' reproducibility tests share this: a second build
of the same pinned inputs in another directory (so another
-ffile-prefix-map), time zone, locale and umask; the sources come from the
same cache, checked against the lock."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from tools.initrd.cache import default_cache_dir
from tools.initrd.lock import Lock, load_lock

Result = TypeVar("Result")


def build_elsewhere(
    build: Callable[[Lock, Path, Path], Result], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Result:
    monkeypatch.setenv("TZ", "Pacific/Kiritimati")
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    old_umask = os.umask(0o077)
    try:
        return build(load_lock(), default_cache_dir(), tmp_path / "elsewhere" / "builds")
    finally:
        os.umask(old_umask)


def tree(root: Path) -> dict[str, tuple[int, str]]:
    """Every entry of a staging tree: mode and content (or symlink target) hash."""
    out: dict[str, tuple[int, str]] = {}
    for path in sorted(root.rglob("*")):
        mode = path.lstat().st_mode
        if path.is_symlink():
            content = os.readlink(path)
        elif path.is_file():
            content = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            content = "directory"
        out[path.relative_to(root).as_posix()] = (mode, content)
    return out
