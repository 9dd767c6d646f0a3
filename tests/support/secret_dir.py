"""The RAM secret directory (runtime.secrets.ram.SecretDir) for tests: a plain
temporary directory that the store takes for a private tmpfs."""

from __future__ import annotations

from pathlib import Path

from runtime.secrets.ram import SecretDir


def pretend_tmpfs(_path: str) -> str:
    """The ``fstype_of`` of a directory the store must take for RAM."""
    return "tmpfs"


def ram_secret_dir(parent: Path) -> SecretDir:
    """An empty, private ``parent/secret`` that passes the store's tmpfs check."""
    path = parent / "secret"
    path.mkdir(mode=0o700)
    return SecretDir(str(path), fstype_of=pretend_tmpfs)
