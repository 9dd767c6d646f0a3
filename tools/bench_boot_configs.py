"""Entries per second of the boot-config parsers on the largest corpus files.

    .venv/bin/python tools/bench_boot_configs.py [--seconds 2]

Prints figures only; nothing here asserts a speed. For each format the
largest configuration in tests/data is parsed repeatedly (from memory,
so the figure is the parser's, not the disk's), plus discovery of the whole
tree it sits in and Heads' listing of it.
"""

from __future__ import annotations

import argparse
import functools
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from runtime.boot_configs.bls import parse_bls
from runtime.boot_configs.discover import discover
from runtime.boot_configs.fs import DirFS, MemoryFS
from runtime.boot_configs.grub import parse_grub
from runtime.boot_configs.heads_listing import heads_listing
from runtime.boot_configs.syslinux import parse_syslinux

CORPORA = Path(__file__).resolve().parents[1] / "tests" / "data" / "u-root" / "pkg" / "boot"


def _tree_of(path: Path) -> Path:
    """The device directory a corpus file sits in (testdata*/<case>/...)."""
    parts = path.relative_to(CORPORA).parts
    return CORPORA.joinpath(*parts[:3])


def _memory(tree: Path) -> MemoryFS:
    return MemoryFS(
        {
            "/" + str(p.relative_to(tree)): p.read_text(errors="replace")
            for p in tree.rglob("*")
            if p.is_file() and p.stat().st_size < 1_000_000
        }
    )


def _rate(work: Callable[[], int], seconds: float) -> tuple[float, int, int]:
    """(entries per second, entries per run, runs)."""
    per_run = work()
    runs = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        work()
        runs += 1
    elapsed = time.perf_counter() - start
    return per_run * runs / elapsed, per_run, runs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    if not CORPORA.is_dir():
        print(f"no corpora at {CORPORA}", file=sys.stderr)
        return 1
    grub = max(CORPORA.rglob("grub.cfg"), key=lambda p: p.stat().st_size)
    sysl = max(
        (
            p
            for p in CORPORA.rglob("*.cfg")
            if ("isolinux" in p.parts or "syslinux" in p.parts) and p.name != "grub.cfg"
        ),
        key=lambda p: p.stat().st_size,
    )
    bls_tree = CORPORA / "bls" / "testdata" / "fedora_32"
    print(
        f"python {platform.python_version()} on {platform.machine()}, "
        f"{args.seconds:.1f} s per figure"
    )
    cases: list[tuple[str, Path, Callable[[MemoryFS], int]]] = []
    grub_rel = "/" + str(grub.relative_to(_tree_of(grub)))
    sysl_rel = "/" + str(sysl.relative_to(_tree_of(sysl)))
    cases.append(("grub", grub, lambda fs: len(parse_grub(fs, grub_rel)[0])))
    cases.append(("syslinux", sysl, lambda fs: len(parse_syslinux(fs, sysl_rel)[0])))
    if bls_tree.is_dir():
        cases.append(
            (
                "bls",
                bls_tree / "loader" / "entries",
                lambda fs: len(parse_bls(fs, "/loader/entries")[0]),
            )
        )
    for label, path, parse in cases:
        tree = bls_tree if label == "bls" else _tree_of(path)
        fs = _memory(tree)
        rate, per_run, runs = _rate(functools.partial(parse, fs), args.seconds)
        size = (
            sum(p.stat().st_size for p in path.parent.glob("*.conf"))
            if label == "bls"
            else path.stat().st_size
        )
        print(
            f"{label:9} {path.relative_to(CORPORA)} ({size} bytes, {per_run} entries): "
            f"{rate:,.0f} entries/s ({runs} parses)"
        )
    tree = _tree_of(grub)
    found = discover(DirFS(tree))
    rate, per_run, runs = _rate(lambda: len(discover(DirFS(tree)).entries), args.seconds)
    print(
        f"discover  {tree.relative_to(CORPORA)} from disk ({per_run} entries, "
        f"{len(found.menu)} offered): {rate:,.0f} entries/s ({runs} runs)"
    )
    rate, per_run, runs = _rate(
        lambda: len(heads_listing(DirFS(tree), "*.cfg").lines) or 1, args.seconds
    )
    print(
        f"heads     Heads' listing of {tree.relative_to(CORPORA)} (*.cfg): "
        f"{runs / args.seconds:,.0f} listings/s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
