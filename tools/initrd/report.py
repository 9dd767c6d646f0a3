"""The build's manifest (every file: size, sha256, origin) and size report."""

from __future__ import annotations

import hashlib
import lzma
import stat
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
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
        kind = (
            "l"
            if stat.S_ISLNK(e.mode)
            else "d"
            if stat.S_ISDIR(e.mode)
            else ("c" if stat.S_ISCHR(e.mode) else "f")
        )
        digest = (
            hashlib.sha256(e.data).hexdigest()
            if kind == "f"
            else (e.data.decode() if kind in "lc" else "-")
        )
        lines.append(
            f"{e.path}\t{kind}{stat.S_IMODE(e.mode):04o}\t{len(e.data)}\t{digest}\t{m.origin}"
        )
    return "\n".join(lines) + "\n"


def _mib(n: int) -> str:
    return f"{n / 1048576:7.2f} MiB"


def size_report(
    members: Sequence[Member], raw: int, xz: int | None, zstd: int, per_component_xz: bool = True
) -> str:
    per_component: dict[str, int] = defaultdict(int)
    per_component_data: dict[str, list[bytes]] = defaultdict(list)
    for m in members:
        if stat.S_ISREG(m.entry.mode):
            per_component[m.component] += len(m.entry.data)
            per_component_data[m.component].append(m.entry.data)
    if xz is None:
        xz_line = "  xz -9        not computed (--quick)"
    else:
        verdict = "met" if xz <= TARGET_XZ_BYTES else f"{_mib(xz - TARGET_XZ_BYTES).strip()} over"
        xz_line = f"  xz -9        {_mib(xz)}   (target {_mib(TARGET_XZ_BYTES)}: {verdict})"
    lines = [
        "initramfs size",
        f"  raw cpio     {_mib(raw)}",
        f"  zstd         {_mib(zstd)}",
        xz_line,
        "",
        "per component (raw"
        + (", and xz -6 of that component alone)" if per_component_xz else ")"),
    ]
    components = sorted(per_component.items(), key=lambda kv: -kv[1])
    with ThreadPoolExecutor(max_workers=2) as pool:
        alone = list(
            pool.map(
                lambda item: (
                    len(lzma.compress(b"".join(per_component_data[item[0]]), preset=6))
                    if per_component_xz
                    else None
                ),
                components,
            )
        )
    for (component, size), packed in zip(components, alone, strict=True):
        extra = f"  {_mib(packed)}" if packed is not None else ""
        lines.append(f"  {component:<24} {_mib(size)}{extra}")
    lines += ["", "20 largest files (raw)"]
    files = sorted(
        (m for m in members if stat.S_ISREG(m.entry.mode)), key=lambda m: -len(m.entry.data)
    )
    lines += [f"  {_mib(len(m.entry.data))}  {m.entry.path}  ({m.origin})" for m in files[:20]]
    if xz is not None and xz > TARGET_XZ_BYTES:
        sizes = dict(zip((c for c, _ in components), alone, strict=True))
        lines += ["", "to meet the xz target, candidates to drop (component alone, xz -6):"]
        for component in (
            "kernel modules",
            "flashrom",
            "gnupg",
            "cryptsetup",
            "lvm",
            "kexec",
            "cbfstool",
            "busybox",
        ):
            packed = sizes.get(component)
            if packed is not None:
                lines.append(f"  {component:<24} ~{_mib(packed)}")
        lines.append("  (also: .pyc at -OO, fewer kernel modules, a smaller stdlib closure)")
    return "\n".join(lines) + "\n"
