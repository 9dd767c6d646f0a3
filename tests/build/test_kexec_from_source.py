"""kexec built from its pinned Debian source (tools/initrd/kexec_build.py):
it needs only libc and zlib (no Xen, yajl, libnl or lzma library), reads
gzip files (xen.gz, which Debian's amd64 kexec could not), has no Xen
control code, still offers the x86 multiboot2, multiboot and bzImage
loaders a Xen or Linux plan uses, and a second build in another directory,
with another umask and time zone, gives the same bytes.

kexec is never asked to load, execute or unload anything here (no -l, -e, -p,
-u): that would act on the host's own kernel. Only --help and --version run.
The first build (seconds) goes into the ordinary cache and is reused
afterwards; the second is always compiled afresh."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from tests.support.second_build import build_elsewhere, tree
from tools.initrd import elf
from tools.initrd.cache import default_cache_dir
from tools.initrd.kexec_build import FORBIDDEN_LIBRARIES, PROGRAMS, build_kexec
from tools.initrd.lock import load_lock

pytestmark = [pytest.mark.build, pytest.mark.xdist_group("build"), pytest.mark.timeout(3600)]

TIMEOUT = 60
KEXEC = "sbin/kexec"


@pytest.fixture(scope="module")
def built() -> dict[str, Path]:
    return build_kexec(load_lock(), default_cache_dir())


def harmless(kexec: Path, option: str) -> subprocess.CompletedProcess[str]:
    # Only options that print and exit: never one that loads or executes.
    assert option in ("--help", "--version")
    return subprocess.run(
        [str(kexec), option], capture_output=True, text=True, timeout=TIMEOUT, check=False
    )


def test_kexec_needs_only_libc_and_zlib(built: dict[str, Path]) -> None:
    assert sorted(built) == sorted(PROGRAMS)
    kexec = built[KEXEC]
    names, _ = elf.needed(str(kexec))
    assert sorted(names) == ["libc.so.6", "libz.so.1"]
    assert not [n for n in names if n.startswith(FORBIDDEN_LIBRARIES)]
    assert stat.S_IMODE(kexec.stat().st_mode) == 0o755
    with kexec.open("rb") as f:
        assert ELFFile(f).get_section_by_name(".symtab") is None  # stripped
    # --without-xen took: the dom0 code (libxenctrl calls) is not compiled in.
    data = kexec.read_bytes()
    assert b"Xen control interface" not in data and b"xc_kexec" not in data
    # gzip files are unpacked (xen.gz), xz ones are not.
    assert b"Try gzip decompression" in data and b"Try LZMA decompression" not in data


def test_help_lists_the_loaders_that_xen_and_linux_plans_use(built: dict[str, Path]) -> None:
    version = harmless(built[KEXEC], "--version")
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == "kexec-tools 2.0.25"
    done = harmless(built[KEXEC], "--help")
    assert done.returncode == 0, done.stderr
    # Each loader's options follow its name on a line of its own.
    loaders = {line for line in done.stdout.splitlines() if line and not line[0].isspace()}
    assert {"multiboot2-x86", "multiboot-x86", "bzImage64", "bzImage", "elf-x86_64"} <= loaders
    # what the multiboot plans pass (runtime/kexec/plan.py)
    assert "--module=" in done.stdout and "--command-line=" in done.stdout


def test_a_second_build_elsewhere_is_bit_identical(
    built: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    again = build_elsewhere(build_kexec, tmp_path, monkeypatch)
    first_root = built[KEXEC].parents[1]
    second_root = again[KEXEC].parents[1]
    assert first_root != second_root
    assert built[KEXEC].read_bytes() == again[KEXEC].read_bytes()
    assert tree(first_root) == tree(second_root)
