"""/boot as the boot menu reads it: the file-system view the configuration
parsers get (runtime.boot_configs.fs.BootFS, with `scan` for Heads' listing).

Verified (after verify_boot passed): only what the owner signed exists here.
A configuration is read once, hashed, and returned only when its hash is the
signed one; only signed symlinks are followed; a directory lists only signed
names. Unverified (the unsafe boot, or a /boot not signed yet): the disk as
it is, still never outside /boot, never the ./kexec* area, never a FIFO or
device. Either way, every path goes through boot_paths.resolve once.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass

from runtime.integrity.boot_lists import is_signed_state_path
from runtime.integrity.boot_paths import (
    BootPathError,
    LinkTarget,
    live_links,
    open_dir,
    open_file,
    resolve,
    signed_links,
)

#: a configuration larger than this is not a configuration (as boot_configs.fs)
MAX_TEXT_BYTES = 4 * 1024 * 1024
#: all configurations one view reads, together (hard links and copies count each time)
MAX_READ_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class Signed:
    """What verify_boot found to be exactly as the owner signed it."""

    digests: Mapping[str, str]  # './rel' -> sha256 of every signed regular file
    tree: frozenset[str]  # every signed path (directories and symlinks too)
    links: Mapping[str, str] | None  # signed symlink targets; None: none were signed


class BootView:
    def __init__(self, root: str, signed: Signed | None) -> None:
        self.root = root
        self.signed = signed
        self._budget = MAX_READ_BYTES
        self._links: LinkTarget = (
            signed_links(signed.links) if signed is not None else live_links(root)
        )

    @property
    def verified(self) -> bool:
        return self.signed is not None

    def resolve(self, path: str) -> str:
        """The canonical './rel' of a configuration's path; BootPathError."""
        return resolve(path, self._links)

    def signed_digest(self, rel: str) -> str | None:
        """The owner's digest of a canonical path (verified view only)."""
        return None if self.signed is None else self.signed.digests.get(rel)

    def check_bootable(self, path: str) -> str:
        """The canonical './rel' of a file the boot may load; BootPathError
        when the verified view has no signed regular file there."""
        rel = self.resolve(path)
        if self.signed is not None and rel not in self.signed.digests:
            if rel in self.signed.tree and self.signed.links is None:
                raise BootPathError(
                    f"{path} is a symbolic link, and this /boot's signature does not say "
                    "where it points (signed by Heads?): sign /boot again with this firmware"
                )
            raise BootPathError(f"{path} is not one of the signed files on /boot")
        return rel

    def open(self, path: str) -> tuple[str, int]:
        """(canonical rel, descriptor) of a regular file the view offers."""
        rel = self.check_bootable(path)
        return rel, open_file(self.root, rel)

    # --- runtime.boot_configs.fs.BootFS ----------------------------------------

    def read_text(self, path: str) -> str | None:
        if self._budget <= 0:
            return None  # enough read: the rest of a hostile tree is not read
        try:
            rel, fd = self.open(path)
        except BootPathError:
            return None
        try:
            with os.fdopen(fd, "rb", closefd=False) as f:
                data = f.read(min(MAX_TEXT_BYTES, self._budget) + 1)
                self._budget -= len(data)
        except OSError:
            return None
        finally:
            os.close(fd)
        if len(data) > MAX_TEXT_BYTES or self._budget < 0:
            return None
        digest = self.signed_digest(rel)
        if self.signed is not None and hashlib.sha256(data).hexdigest() != digest:
            return None  # changed since it was verified: not what the owner signed
        return data.decode("utf-8", errors="replace")

    def exists(self, path: str) -> bool:
        try:
            rel = self.resolve(path)
        except BootPathError:
            return False
        if self.signed is not None:
            return rel in self.signed.digests or rel == "./" or rel in self.signed.tree
        try:
            os.lstat(os.path.join(self.root, rel[2:]))
        except (OSError, ValueError):
            return False
        return True

    def scan(self, path: str) -> list[tuple[str, bool]] | None:
        """(name, is a directory) in the order the disk gives them, symlinks
        not followed; the ./kexec* area and (verified) unsigned names left out."""
        try:
            rel = self.resolve(path)
            fd = open_dir(self.root, rel)
        except (BootPathError, OSError):
            return None
        base = rel if rel.endswith("/") else rel + "/"
        found: list[tuple[str, bool]] = []
        try:
            with os.scandir(fd) as entries:
                for entry in entries:
                    child = base + entry.name
                    if is_signed_state_path(child):
                        continue
                    if self.signed is not None and child not in self.signed.tree:
                        continue
                    found.append((entry.name, entry.is_dir(follow_symlinks=False)))
        except OSError:
            return None
        finally:
            os.close(fd)
        return found

    def listdir(self, path: str) -> list[str] | None:
        found = self.scan(path)
        return None if found is None else sorted(name for name, _ in found)
