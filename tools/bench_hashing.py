"""Hashing /boot: the runtime's streamed hashlib against `sha256sum` on the
same files (target: at least 90 % of its throughput).

    .venv/bin/python -m tools.bench_hashing [--mib 256] [--runs 5]

Makes a /boot-like tree in a temporary directory (a 12 MiB kernel, initrds,
many small GRUB files), reads it once so both measure the page cache, then
times each tool `--runs` times and prints medians. Figures only; no asserts.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from runtime.integrity.boot_scan import hash_files, scan_boot


def _make_tree(root: Path, mib: int) -> None:
    (root / "grub" / "x86_64-efi").mkdir(parents=True)
    for i in range(300):  # GRUB's modules: many small files
        (root / "grub" / "x86_64-efi" / f"mod{i}.mod").write_bytes(os.urandom(8 * 1024))
    left = mib * 1024 * 1024 - 300 * 8 * 1024
    sizes = [12 << 20]
    while sum(sizes) < left:
        sizes.append(min(64 << 20, left - sum(sizes)))
    for i, size in enumerate(sizes):
        name = "vmlinuz-6.1" if i == 0 else f"initrd.img-6.{i}"
        with open(root / name, "wb") as f:
            for _ in range(size // (1 << 20)):
                f.write(os.urandom(1 << 20))


def _time(fn: object) -> float:
    start = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-hash-") as tmp:
        root = Path(tmp)
        _make_tree(root, args.mib)
        scan = scan_boot(str(root))
        total = sum(scan.files.values())
        files = sorted(scan.files)

        def ours() -> None:
            hash_files(str(root), scan.files)

        def theirs() -> None:
            subprocess.run(
                ["sha256sum", *files], cwd=root, check=True, timeout=600, stdout=subprocess.DEVNULL
            )

        ours()
        theirs()  # warm the page cache for both
        t_ours = statistics.median(_time(ours) for _ in range(args.runs))
        t_theirs = statistics.median(_time(theirs) for _ in range(args.runs))
    mib = total / (1 << 20)
    print(f"{len(files)} files, {mib:.0f} MiB, medians of {args.runs} runs (page cache warm)")
    print(f"sha256sum (coreutils): {mib / t_theirs:7.0f} MiB/s")
    ratio = t_theirs / t_ours
    print(f"runtime (hashlib):     {mib / t_ours:7.0f} MiB/s  = {ratio:.0%} of sha256sum")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
