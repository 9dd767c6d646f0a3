"""Figures behind two build choices in the README.

    .venv/bin/python -m tools.bench_choices crypto [--runs 7]
    .venv/bin/python -m tools.bench_choices pyc
    .venv/bin/python -m tools.bench_choices gc [--runs 7]

crypto: `import tpm2_pytss` time on the host (median of --runs fresh
interpreters, -X importtime) for tpm2-pytss 2.3.0 + cryptography 38.0.4 and
for 3.0.0 + cryptography 50.0.2, each in its own venv (made once in the
cache), and the size of each cryptography's compiled bindings: PyPI 50's
wheel, and Debian 38's as the image ships them (build/qemu-swtpm/manifest.tsv).

pyc: the .pyc files of the built image as files, in a stored zip and in a
deflated zip, each compressed with xz -9 (what a ROM would hold).

gc: importing the runtime's boot-path modules in a fresh interpreter, with
the garbage collector on and off (runtime/__main__.py turns it off until the
first screen).
Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import io
import lzma
import re
import statistics
import subprocess
import sys
import zipfile
from pathlib import Path

from tools.initrd.cache import default_cache_dir
from tools.initrd.cpio import read_archive

REPO = Path(__file__).resolve().parents[1]
BUILD = REPO / "build" / "qemu-swtpm"
CHOICES = {
    "tpm2-pytss 2.3.0 + cryptography 38.0.4": ["tpm2-pytss==2.3.0", "cryptography==38.0.4"],
    "tpm2-pytss 3.0.0 + cryptography 50.0.2": ["tpm2-pytss==3.0.0", "cryptography==50.0.2"],
}


def _mib(n: int) -> str:
    return f"{n / 1048576:6.2f} MiB"


def _xz(data: bytes) -> int:
    return len(lzma.compress(data, preset=9 | lzma.PRESET_EXTREME))


def _venv(name: str, requirements: list[str]) -> Path:
    directory = default_cache_dir() / "bench-venvs" / re.sub(r"[^a-z0-9.]+", "-", name.lower())
    python = directory / "bin" / "python"
    if not python.exists():
        print(f"making a venv for {name} (once)...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(directory)], check=True, timeout=300)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", *requirements], check=True, timeout=1800
        )
    return python


def _import_ms(python: Path, runs: int) -> float:
    times = []
    for _ in range(runs):
        done = subprocess.run(
            [str(python), "-X", "importtime", "-c", "import tpm2_pytss"],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        found = re.search(r"\|\s*(\d+) \| tpm2_pytss$", done.stderr, re.M)
        assert found, done.stderr[-500:]
        times.append(int(found.group(1)) / 1000)
    return statistics.median(times)


def _bindings(python: Path) -> list[Path]:
    done = subprocess.run(
        [
            str(python),
            "-c",
            "import cryptography, os; print(os.path.dirname(cryptography.__file__))",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return sorted((Path(done.stdout.strip()) / "hazmat" / "bindings").rglob("*.so"))


def crypto(runs: int) -> None:
    for name, requirements in CHOICES.items():
        python = _venv(name, requirements)
        print(f"{name}: import tpm2_pytss {_import_ms(python, runs):.0f} ms (median of {runs})")
        for so in _bindings(python):
            data = so.read_bytes()
            print(f"    PyPI wheel {so.name}: {_mib(len(data))} raw, {_mib(_xz(data))} xz")
    manifest = BUILD / "manifest.tsv"
    if manifest.exists():
        for line in manifest.read_text().splitlines():
            path, _mode, size, *_ = line.split("\t")
            if "cryptography/hazmat/bindings/" in path and path.endswith(".so"):
                print(f"    in the image (Debian 38) {Path(path).name}: {_mib(int(size))} raw")


def pyc() -> None:
    initrd = BUILD / "initrd.cpio.zst"
    raw = subprocess.run(
        ["zstd", "-dc", str(initrd)], capture_output=True, check=True, timeout=300
    ).stdout
    files = [e for e in read_archive(raw) if e.path.endswith(".pyc")]
    as_files = b"".join(e.data for e in files)
    print(f"{len(files)} .pyc files, {_mib(len(as_files))} raw")
    print(f"  as files           xz {_mib(_xz(as_files))}")
    for label, method in (
        ("in a stored zip", zipfile.ZIP_STORED),
        ("in a deflated zip", zipfile.ZIP_DEFLATED),
    ):
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", method, compresslevel=9) as archive:
            for entry in files:
                archive.writestr(entry.path, entry.data)
        data = buffer.getvalue()
        print(f"  {label:<18} xz {_mib(_xz(data))}  (zip {_mib(len(data))})")


_BOOT_IMPORTS = (
    "import time, gc, sys\n"
    "start = time.perf_counter()\n"
    "if sys.argv[1] == 'off': gc.disable()\n"
    "import runtime.tpm.connection, runtime.state.startup, runtime.ui, runtime.secrets.totp\n"
    "import runtime.tpm.nv, runtime.tpm.sealing, runtime.config\n"
    "print((time.perf_counter() - start) * 1000)\n"
)


def gc_effect(runs: int) -> None:
    results = {}
    for mode in ("on", "off"):
        times = [
            float(
                subprocess.run(
                    [sys.executable, "-c", _BOOT_IMPORTS, mode],
                    cwd=REPO,
                    capture_output=True,
                    text=True,
                    timeout=120,
                    check=True,
                ).stdout
            )
            for _ in range(runs)
        ]
        results[mode] = statistics.median(times)
        print(f"boot-path imports, gc {mode:>3}: {results[mode]:.0f} ms (median of {runs})")
    print(f"gc off saves {100 * (1 - results['off'] / results['on']):.0f} %")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("what", choices=["crypto", "pyc", "gc"])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args(argv)
    if args.what == "crypto":
        crypto(args.runs)
    elif args.what == "gc":
        gc_effect(args.runs)
    else:
        pyc()
    return 0


if __name__ == "__main__":
    sys.exit(main())
