"""The initramfs: bit-for-bit reproducible, and every module of runtime/ (and
every library the runtime ships for its later stages) imports inside the
image's own pruned Python, with the image's own shared libraries."""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from build_initrd import component_of
from runtime.config.board import parse_board
from runtime.tpm.lazy_crypto import CryptographyUnavailable
from tools.boards import board_file
from tools.initrd import elf
from tools.initrd.python_tree import EXCLUDED_MODULES, LIBRARY_ROOTS, runtime_modules

pytestmark = [pytest.mark.build, pytest.mark.xdist_group("build"), pytest.mark.timeout(1800)]
REPO = Path(__file__).resolve().parents[2]


def build(out: Path, *extra: str, env: dict[str, str] | None = None) -> dict[str, object]:
    subprocess.run(
        [sys.executable, str(REPO / "build_initrd.py"), "--quick", "--out", str(out), *extra],
        check=True,
        timeout=1800,
        stdout=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )
    info: dict[str, object] = json.loads((out / "build-info.json").read_text())
    return info


def manifest_rows(out: Path) -> list[list[str]]:
    """manifest.tsv's rows: path, mode, size, sha256, origin."""
    text = (out / "manifest.tsv").read_text()
    return [line.split("\t") for line in text.splitlines() if not line.startswith("#")]


@pytest.fixture(scope="module")
def first(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("first")
    build(out)
    return out


def test_two_builds_are_identical(first: Path, tmp_path: Path) -> None:
    time.sleep(1.1)  # a later time, another directory, another time zone and umask,
    # and tpm2-pytss compiled again rather than taken from the cache
    second = tmp_path / "elsewhere" / "second"
    old_umask = os.umask(0o077)
    try:
        info = build(second, "--rebuild-wheel", env={"TZ": "Pacific/Kiritimati"})
    finally:
        os.umask(old_umask)
    assert (first / "manifest.tsv").read_text() == (second / "manifest.tsv").read_text()
    digest = hashlib.sha256((first / "initrd.cpio.zst").read_bytes()).hexdigest()
    assert info["sha256"] == digest
    assert hashlib.sha256((second / "initrd.cpio.zst").read_bytes()).hexdigest() == digest


def test_manifest_names_an_origin_for_every_file(first: Path) -> None:
    rows = manifest_rows(first)
    files = [r for r in rows if r[1].startswith("f")]
    assert len(files) > 60  # the frozen interpreter holds the Python modules
    for path, _mode, size, digest, origin in files:
        assert origin and origin != "?", path
        assert len(digest) == 64 and int(size) >= 0
    paths = {r[0] for r in rows}
    for needed in (
        "init",
        "usr/bin/python3.11",
        "bin/busybox",
        "sbin/kexec",
        "sbin/cryptsetup",
        "usr/bin/zstd",
        "usr/bin/gpg",
        "usr/bin/gpgv",
        "usr/bin/gpg-agent",
        "usr/lib/gnupg/scdaemon",
        "usr/sbin/flashrom",
        "usr/sbin/cbfstool",
        "etc/board.toml",
        "etc/modules.load",
        "dev/console",
    ):
        assert needed in paths, needed
    # No FAPI: tpm2-pytss was built against a libtss2 without it.
    assert not any("libtss2-fapi" in p for p in paths)
    report = (first / "size-report.txt").read_text()
    assert "raw cpio" in report and "20 largest files" in report


@pytest.fixture(scope="module")
def unpacked(first: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("cpio") is None:
        pytest.skip("GNU cpio is not installed (Debian package cpio; tools/bootstrap.sh adds it)")
    root = tmp_path_factory.mktemp("unpacked")
    raw = subprocess.run(
        ["zstd", "-dc", str(first / "initrd.cpio.zst")],
        check=True,
        capture_output=True,
        timeout=300,
    ).stdout
    subprocess.run(
        ["cpio", "-id", "--quiet", "--no-absolute-filenames"],
        input=raw,
        cwd=root,
        check=True,
        timeout=300,
    )
    return root


def image_python(
    root: Path, code: str, trace: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the image's python3.11 as /init does (-I), chrooted into the unpacked
    image: every file it reads, library or module, is the image's. With
    ``trace``, strace writes every file system call of it there."""
    argv = ["/usr/sbin/chroot", str(root), "/usr/bin/python3.11", "-I", "-c", code]
    if trace is not None:
        argv = ["strace", "-f", "-qq", "-e", "trace=%file", "-o", str(trace), *argv]
    return subprocess.run(
        argv,
        env={"LC_ALL": "C", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture()
def proc_mounted(unpacked: Path) -> Iterator[Path]:
    """/proc inside the unpacked image, for the tests that read /proc/self/maps."""
    subprocess.run(["mount", "-t", "proc", "proc", str(unpacked / "proc")], check=True, timeout=30)
    try:
        yield unpacked
    finally:
        subprocess.run(["umount", str(unpacked / "proc")], check=True, timeout=30)


def test_every_runtime_module_imports_in_the_image(unpacked: Path) -> None:
    modules = runtime_modules(REPO) + LIBRARY_ROOTS + ["tpm2_pytss"]
    # __main__ modules would run the runtime: import their packages' code only.
    modules = [m for m in modules if not m.endswith("__main__")]
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "files = [getattr(m, '__file__', None) or '' for m in sys.modules.values()]\n"
        "stray = [f for f in files if f and not f.startswith('/usr/')]\n"
        "assert not stray, stray\n"
        "print('imported', len(sys.modules))\n"
    )
    done = image_python(unpacked, code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("imported")


def test_the_image_python_has_no_sources_and_no_host_paths(unpacked: Path) -> None:
    assert not list((unpacked / "usr/lib/python3.11").rglob("*.py"))
    assert not list((unpacked / "usr/lib/python3/dist-packages").rglob("*.py"))
    done = image_python(unpacked, "import sys; print(sys.path)")
    assert done.returncode == 0, done.stderr
    assert "/work" not in done.stdout and "site-packages" not in done.stdout


PROGRAMS = [
    "usr/bin/python3.11",
    "bin/busybox",
    "sbin/kexec",
    "sbin/cryptsetup",
    "usr/bin/zstd",
    "usr/bin/gpg",
    "usr/bin/gpgv",
    "usr/bin/gpg-agent",
    "usr/bin/gpgconf",
    "usr/lib/gnupg/scdaemon",
    "usr/sbin/flashrom",
    "usr/sbin/cbfstool",
    "sbin/lvm",  # qemu-swtpm has [disk] lvm = true
]


def test_every_program_finds_all_its_libraries_in_the_image(unpacked: Path) -> None:
    libs = f"{unpacked}/lib/x86_64-linux-gnu:{unpacked}/usr/lib/x86_64-linux-gnu"
    for program in PROGRAMS:
        listed = subprocess.run(
            [
                str(unpacked / "lib64/ld-linux-x86-64.so.2"),
                "--library-path",
                libs,
                "--list",
                str(unpacked / program),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert listed.returncode == 0, (program, listed.stderr)
        assert "not found" not in listed.stdout, (program, listed.stdout)
        # Every library resolved inside the image, none from the host.
        for line in listed.stdout.splitlines():
            if "=>" in line and "linux-vdso" not in line:
                assert str(unpacked) in line, (program, line)


def test_run_time_loaded_libraries_load_in_the_image(proc_mounted: Path) -> None:
    done = image_python(
        proc_mounted,
        (
            "import ctypes\n"
            "ctypes.CDLL('libtss2-tcti-device.so.0')\n"  # tpm2-pytss's TCTI loader opens it
            "ctypes.CDLL('libudev.so.1')\n"  # pyudev
            "import runtime.tpm.connection\n"  # tpm2-pytss: libtss2-esys and its libcrypto
            "import hashlib; print(hashlib.sha256(b'x').hexdigest()[:8])\n"  # _hashlib: libcrypto
            "print(open('/proc/self/maps').read())\n"
        ),
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "2d711642"
    # Each is mapped (chrooted: from the image, never from the host).
    mapped = [line.split()[-1] for line in done.stdout.splitlines()[1:] if ".so" in line]
    for name in ("libtss2-tcti-device", "libudev", "libtss2-esys", "libcrypto"):
        assert [p for p in mapped if name in p], name


def test_the_image_has_no_cryptography_and_tpm2_pytss_imports_without_it(
    first: Path, unpacked: Path
) -> None:
    """The runtime never uses `cryptography` (runtime/tpm/lazy_crypto.py): neither it
    nor what only it needed (libssl, OpenSSL's legacy provider) is in the image, and a
    tpm2-pytss helper that would need it fails in words, not with an ImportError."""
    paths = [row[0] for row in manifest_rows(first)]
    # (tpm2_pytss/cryptography.pyc is tpm2-pytss's own module: shipped, never imported)
    unwanted = ("dist-packages/cryptography", "libssl.so", "ossl-modules/legacy.so")
    assert [p for p in paths if any(u in p for u in unwanted)] == []
    done = image_python(
        unpacked,
        (
            "import sys\n"
            "from runtime.tpm import connection, lazy_crypto, nv, sealing\n"
            "from tpm2_pytss.types import TPMT_PUBLIC\n"
            "try:\n"
            "    TPMT_PUBLIC.parse('ecc').get_name()\n"
            "except lazy_crypto.CryptographyUnavailable as err:\n"
            "    print(err.plain())\n"
            "print(sorted(m for m in sys.modules if m.startswith('cryptography')))\n"
        ),
    )
    assert done.returncode == 0, done.stderr
    words, modules = done.stdout.splitlines()
    assert words.startswith(CryptographyUnavailable.summary) and modules == "[]"


def test_kexec_is_built_from_source_without_xen_libraries(first: Path) -> None:
    """sbin/kexec is tools/initrd/kexec_build.py's, reported as component kexec,
    and none of the Xen dom0 libraries Debian's kexec linked is in the image."""
    rows = manifest_rows(first)
    origins = {r[0]: r[4] for r in rows}
    assert origins["sbin/kexec"].startswith("kexec-tools ")
    assert origins["sbin/kexec"].endswith(" (built from source)")
    unwanted = ("libxen", "libyajl", "libnl-")
    assert [p for p in origins if any(u in p for u in unwanted)] == []
    report = (first / "size-report.txt").read_text()
    assert [line for line in report.splitlines() if line.split()[:1] == ["kexec"]]


def test_lvm_runs_with_the_image_libraries_and_needs_its_own_alone(
    first: Path, unpacked: Path
) -> None:
    """qemu-swtpm asks for lvm ([disk] lvm): /sbin/lvm runs chrooted in the image
    (its loader and libraries only), is reported as component lvm, and no other
    file of the image needs a library reported as lvm's (they leave with it)."""
    assert parse_board(board_file("qemu-swtpm").read_text()).disk_lvm
    rows = manifest_rows(first)
    origins = {r[0]: r[4] for r in rows}
    assert origins["sbin/lvm"].startswith("lvm2 ")
    upstream = origins["sbin/lvm"].split()[1].split("-")[0]  # 2.03.16-2 -> 2.03.16
    done = subprocess.run(
        ["/usr/sbin/chroot", str(unpacked), "/sbin/lvm", "version"],
        # no /dev/mapper here: lvm says so on stderr, and still answers
        env={"LC_ALL": "C", "PATH": "/sbin:/bin", "LVM_SUPPRESS_FD_WARNINGS": "1"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert f"LVM version:     {upstream}" in done.stdout, done.stdout
    report = (first / "size-report.txt").read_text()
    assert [line for line in report.splitlines() if line.split()[:1] == ["lvm"]]
    lvm_names = {
        Path(path).name for path, origin in origins.items() if component_of(origin) == "lvm"
    }
    assert "libsystemd.so.0" in lvm_names and "libedit.so.2" in lvm_names
    needing = {
        path: sorted(set(elf.needed(str(unpacked / path))[0]) & lvm_names)
        for path, mode, *_ in rows
        if mode.startswith("f") and component_of(origins[path]) != "lvm"
        and not path.endswith(".ko")
    }  # fmt: skip
    assert {path: names for path, names in needing.items() if names} == {}


def _imported_names(source: str) -> set[str]:
    """Every absolute module name a file imports, at any depth (lazy imports
    inside functions included), with each parent package."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        found: list[str] = []
        if isinstance(node, ast.Import):
            found = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found = [node.module]
        for name in found:
            parts = name.split(".")
            names.update(".".join(parts[: i + 1]) for i in range(len(parts)))
    return names


def test_every_module_the_runtime_imports_lazily_is_in_the_frozen_interpreter(
    unpacked: Path,
) -> None:
    """Imports inside functions run late (after a menu choice, in the recovery
    shell): each one the runtime's code names must be frozen, built in, or an
    extension file the interpreter knows, unless it is left out on purpose."""
    names: set[str] = set()
    for path in sorted((REPO / "runtime").rglob("*.py")):
        names |= _imported_names(path.read_text())

    def left_out(name: str) -> bool:  # the name or a package above it, on purpose
        parts = name.split(".")
        return any(".".join(parts[: i + 1]) in EXCLUDED_MODULES for i in range(len(parts)))

    names = {n for n in names if not left_out(n) and n != "__future__"}
    code = (
        "import importlib.util, sys\n"
        f"names = {sorted(names)!r}\n"
        "absent = [n for n in names if importlib.util.find_spec(n) is None]\n"
        "print(len(names), absent)\n"
    )
    done = image_python(unpacked, code)
    assert done.returncode == 0, done.stderr
    count, absent = done.stdout.split(" ", 1)
    assert int(count) > 100 and absent.strip() == "[]", absent


def test_the_frozen_interpreter_reads_no_module_files(unpacked: Path, tmp_path: Path) -> None:
    """Every runtime module and library imported, under strace: no .py or .pyc
    file is opened or even looked for, nothing under the standard library's
    directory, and of dist-packages only the C extension modules that stay
    files (tools/initrd/python_freeze.py)."""
    modules = [m for m in runtime_modules(REPO) + LIBRARY_ROOTS if not m.endswith("__main__")]
    code = f"import importlib\nfor name in {modules!r}:\n    importlib.import_module(name)\n"
    trace = tmp_path / "trace"
    done = image_python(unpacked, code, trace)
    assert done.returncode == 0, done.stderr
    paths = set(re.findall(r'"([^"]*)"', trace.read_text()))
    assert paths, "strace recorded nothing"
    assert not [p for p in paths if p.endswith((".py", ".pyc"))]
    assert not [p for p in paths if p.startswith("/usr/lib/python3.11")]
    site = sorted(p for p in paths if p.startswith("/usr/lib/python3/"))
    assert site and all(p.endswith(".so") for p in site), site


def test_the_frozen_interpreter_ignores_the_environment_and_has_no_sys_path(
    unpacked: Path, tmp_path: Path
) -> None:
    """The kernel command line can set environment variables for /init: none of
    Python's may put a module in front of the frozen ones."""
    planted = unpacked / "tmp" / "planted"
    planted.mkdir(parents=True, exist_ok=True)
    (planted / "runtime.py").write_text("raise SystemExit('planted module ran')\n")
    (planted / "sitecustomize.py").write_text("raise SystemExit('planted module ran')\n")
    try:
        done = subprocess.run(
            ["/usr/sbin/chroot", str(unpacked), "/usr/bin/python3.11", "-c",
             "import sys, runtime; print(sys.path, sys.flags.isolated, runtime.__spec__.origin)"],
            env={"PYTHONPATH": "/tmp/planted", "PYTHONSTARTUP": "/tmp/planted/runtime.py",
                 "PYTHONHOME": "/tmp/planted", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
    finally:
        shutil.rmtree(planted)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["[]", "1", "frozen"]


def test_busybox_is_built_from_source_with_a_link_for_each_applet(first: Path) -> None:
    from tools.initrd.busybox_build import APPLETS

    rows = manifest_rows(first)
    origins = {r[0]: r[4] for r in rows}
    assert origins["bin/busybox"].endswith("(built from source)")
    links = {r[0].removeprefix("bin/") for r in rows if r[4] == "generated: busybox applet"}
    assert links == set(APPLETS)
