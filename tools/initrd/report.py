"""The build's manifest (every file: size, sha256, origin) and size report."""

from __future__ import annotations

import hashlib
import lzma
import stat
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from tools.initrd.cpio import Entry

TARGET_XZ_BYTES = 7 * 1024 * 1024


@dataclass(frozen=True)
class Member:
    entry: Entry
    origin: str
    component: str


def manifest(members: Sequence[Member]) -> str:
    lines = ["# path\tmode\tsize\tsha256\torigin"]
    for m in sorted(members, key=lambda m: m.entry.path):
        e = m.entry
        kind = "l" if stat.S_ISLNK(e.mode) else "d" if stat.S_ISDIR(e.mode) else (
            "c" if stat.S_ISCHR(e.mode) else "f")
        digest = hashlib.sha256(e.data).hexdigest() if kind == "f" else (
            e.data.decode() if kind in "lc" else "-")
        lines.append(f"{e.path}\t{kind}{stat.S_IMODE(e.mode):04o}\t{len(e.data)}\t{digest}\t"
                     f"{m.origin}")
    return "\n".join(lines) + "\n"


def _mib(n: int) -> str:
    return f"{n / 1048576:7.2f} MiB"


def size_report(members: Sequence[Member], raw: int, xz: int, zstd: int) -> str:
    per_component: dict[str, int] = defaultdict(int)
    per_component_data: dict[str, list[bytes]] = defaultdict(list)
    for m in members:
        if stat.S_ISREG(m.entry.mode):
            per_component[m.component] += len(m.entry.data)
            per_component_data[m.component].append(m.entry.data)
    lines = [
        "initramfs size",
        f"  raw cpio     {_mib(raw)}",
        f"  zstd         {_mib(zstd)}",
        f"  xz -9        {_mib(xz)}   (target {_mib(TARGET_XZ_BYTES)}: "
        + ("met" if xz <= TARGET_XZ_BYTES else f"{_mib(xz - TARGET_XZ_BYTES).strip()} over")
        + ")",
        "",
        "per component (raw, and xz -9 of that component alone)",
    ]
    for component, size in sorted(per_component.items(), key=lambda kv: -kv[1]):
        alone = len(lzma.compress(b"".join(per_component_data[component]),
                                  preset=9 | lzma.PRESET_EXTREME))
        lines.append(f"  {component:<24} {_mib(size)}  {_mib(alone)}")
    lines += ["", "20 largest files (raw)"]
    files = sorted((m for m in members if stat.S_ISREG(m.entry.mode)),
                   key=lambda m: -len(m.entry.data))
    lines += [f"  {_mib(len(m.entry.data))}  {m.entry.path}  ({m.origin})" for m in files[:20]]
    if xz > TARGET_XZ_BYTES:
        lines += ["", "to meet the xz target, candidates to drop (component alone, xz):"]
        for component in ("kernel modules", "flashrom", "gnupg", "cryptsetup", "kexec"):
            if component in per_component:
                alone = len(lzma.compress(b"".join(per_component_data[component]), preset=6))
                lines.append(f"  {component:<24} ~{_mib(alone)}")
        lines.append("  (also: python -OO, an x86 BCJ filter, a smaller kernel module set)")
    return "\n".join(lines) + "\n"
