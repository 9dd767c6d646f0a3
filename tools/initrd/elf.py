"""Shared-library closure of the image's ELF files, resolved inside the pool of
unpacked Debian packages (never against the host's libraries)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import PurePosixPath

from elftools.common.exceptions import ELFError
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile

# Debian 12's loader searches these (no ld.so.cache in the image).
LIBRARY_DIRS = ("lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu", "lib", "usr/lib")


class MissingLibrary(Exception):
    """An ELF file needs a library that no locked package provides."""


def is_elf(data_head: bytes) -> bool:
    return data_head[:4] == b"\x7fELF"


def needed(path: str) -> tuple[list[str], str | None]:
    """DT_NEEDED names and the PT_INTERP path of one ELF file."""
    with open(path, "rb") as f:
        try:
            elf = ELFFile(f)
        except ELFError:
            return [], None
        names: list[str] = []
        for section in elf.iter_sections():
            if isinstance(section, DynamicSection):
                names += [
                    tag.needed for tag in section.iter_tags() if tag.entry.d_tag == "DT_NEEDED"
                ]
        interp = None
        for segment in elf.iter_segments():
            if segment["p_type"] == "PT_INTERP":
                interp = segment.get_interp_name()
        return names, interp


def closure(roots: Iterable[str], pool: Mapping[str, str]) -> set[str]:
    """Image paths of every library the roots need, transitively.

    `pool` maps image paths (relative, e.g. "usr/lib/x86_64-linux-gnu/libc.so.6")
    to host paths of the unpacked files (symlinks already resolved by the caller
    into the pool's own paths).
    """
    wanted: set[str] = set()
    todo = list(roots)
    seen: set[str] = set()
    while todo:
        image_path = todo.pop()
        if image_path in seen:
            continue
        seen.add(image_path)
        names, interp = needed(pool[image_path])
        if interp:
            names.append(interp)
        for name in names:
            found = _resolve(name, pool)
            if found is None:
                raise MissingLibrary(
                    f"{image_path} needs {name}, which no package in the lock provides; add "
                    "the Debian package that ships it to etc/initrd/packages.toml"
                )
            if found not in wanted:
                wanted.add(found)
                todo.append(found)
    return wanted


def _resolve(name: str, pool: Mapping[str, str]) -> str | None:
    if name.startswith("/"):
        candidate = str(PurePosixPath(name).relative_to("/"))
        return candidate if candidate in pool else None
    for directory in LIBRARY_DIRS:
        candidate = f"{directory}/{name}"
        if candidate in pool:
            return candidate
    return None
