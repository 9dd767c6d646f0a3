"""Kernel modules for the image: the board's list plus their dependencies, in
load order, read from each module's .modinfo (Debian's package ships no
modules.dep; depmod runs at install time)."""

from __future__ import annotations

from pathlib import Path

from elftools.elf.elffile import ELFFile


class ModuleError(Exception):
    """A module the board names does not exist in the kernel package."""


def _normal(name: str) -> str:
    return name.replace("-", "_")


def modinfo(path: Path) -> dict[str, str]:
    with path.open("rb") as f:
        section = ELFFile(f).get_section_by_name(".modinfo")
        raw = section.data() if section is not None else b""
    fields: dict[str, str] = {}
    for item in raw.split(b"\0"):
        key, sep, value = item.decode(errors="replace").partition("=")
        if sep and key not in fields:
            fields[key] = value
    return fields


def load_order(modules_dir: Path, wanted: list[str]) -> list[Path]:
    """Paths of `wanted` and everything they depend on, dependencies first."""
    index = {_normal(p.name.removesuffix(".ko")): p for p in modules_dir.rglob("*.ko")}
    builtin = {
        _normal(Path(line).name.removesuffix(".ko"))
        for line in (modules_dir / "modules.builtin").read_text().split()
    }
    ordered: list[Path] = []
    visiting: set[str] = set()
    done: set[str] = set()

    def visit(name: str) -> None:
        name = _normal(name)
        if name in done or name in builtin:
            return
        if name not in index:
            raise ModuleError(f"kernel module {name} is neither in the kernel package nor built in")
        if name in visiting:
            raise ModuleError(f"kernel module dependency cycle at {name}")
        visiting.add(name)
        for dep in filter(None, modinfo(index[name]).get("depends", "").split(",")):
            visit(dep)
        visiting.discard(name)
        done.add(name)
        ordered.append(index[name])

    for name in wanted:
        visit(name)
    return ordered
