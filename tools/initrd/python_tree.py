"""The image's Python: tpm2-pytss built from its pinned source with Debian's
python3.11, the import closure of runtime/ found by the image's interpreter,
and sourceless .pyc compiled by that same interpreter."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tools.initrd.lock import DEBIAN_PYTHON, SourcePin

STDLIB = "usr/lib/python3.11"
DIST_PACKAGES = "usr/lib/python3/dist-packages"
# Never needed at boot; excluding them keeps optional imports from dragging
# in whole subsystems (GUI, test suites, packaging, interactive debuggers).
EXCLUDED_MODULES = [
    "tkinter",
    "turtle",
    "idlelib",
    "lib2to3",
    "ensurepip",
    "distutils",
    "pydoc",
    "pydoc_data",
    "test",
    "unittest",
    "doctest",
    "pdb",
    "sqlite3",
    "dbm",
    "curses",
    "sitecustomize",
    "_pyrepl",
    "setuptools",
    "pkg_resources",
    "pip",
    "IPython",
    "numpy",
    "PIL",
    "gi",
    "twisted",
    "tornado",
    "trio",
    "asyncio",
    "ssl",
    "_ssl",
    "multiprocessing",
    "concurrent",
    "xmlrpc",
    "http.server",
    "wsgiref",
    "ftplib",
    "smtplib",
    "imaplib",
    "poplib",
    "nntplib",
    "mailbox",
    "xml.dom",
    "pyexpat",
    "_decimal",
    "decimal",
    "_pydecimal",
    "bz2",
    "_bz2",
    # need decimal (excluded); only random's self-test reaches them
    "fractions",
    "statistics",
    # Only paths the runtime never takes reach these: segno's show() (a web
    # browser), importlib.metadata (a development checkout's version) and
    # shutil's archive helpers. (urllib.request, http and email stay: segno's
    # SVG writer imports xml.sax.saxutils, which imports urllib.request.)
    "webbrowser",
    "importlib.metadata",
    "tarfile",
    "zipfile",
    # tpm2-pytss imports it, the runtime never uses it: runtime/tpm/lazy_crypto.py
    # lets tpm2-pytss import without it (3.8 MiB raw, with libssl and OpenSSL's
    # legacy provider, which only it loaded).
    "cryptography",
]
# Packages kept whole: tpm2-pytss needs the files of modules that raise at
# import when FAPI is absent, which an import closure cannot see.
WHOLE_PACKAGES = ["tpm2_pytss"]
# Libraries the runtime's next stages use (signatures, devices, QR codes):
# shipped and import-checked now, so the image's contents are settled early.
LIBRARY_ROOTS = [
    "gnupg",
    "pyudev",
    "segno",
    "pyotp",
    "urwid",
]
# The interpreter itself imports these before any user code runs.
STARTUP_MODULES = [
    "site",
    "encodings",
    "encodings.utf_8",
    "encodings.latin_1",
    "encodings.ascii",
    "encodings.aliases",
    "runpy",
    "_sitebuiltins",
]


class PythonTreeError(Exception):
    """The import closure or the compilation failed."""


@dataclass(frozen=True)
class PyFile:
    image: str  # path in the image
    host: Path
    origin: str


def build_tpm2_pytss(pin: SourcePin, sdist: Path, cache: Path, rebuild_into: Path | None) -> Path:
    """Unpacked wheel of tpm2-pytss, without FAPI, cached by its inputs.

    With ``rebuild_into``, it is compiled again into that directory and the
    cache is left alone (the reproducibility test compiles it twice).
    """
    tool_versions = subprocess.run(
        [
            "dpkg-query",
            "-W",
            "-f",
            "${Package}=${Version}\\n",
            "libtss2-dev",
            "python3.11",
            "gcc",
            "python3-cffi",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    key = hashlib.sha256(f"{pin.sha256}\n{tool_versions}".encode()).hexdigest()[:16]
    target = cache / "wheels" / f"{pin.name}-{pin.version}-{key}"
    if rebuild_into is not None:
        target = rebuild_into / target.name
    elif target.exists():
        return target
    with tempfile.TemporaryDirectory(prefix="tpm2-pytss-") as tmp:
        work = Path(tmp)
        # Hide FAPI: a pkg-config directory with every tss2 .pc except tss2-fapi.
        pc_dir = work / "pkgconfig"
        pc_dir.mkdir()
        for pc in Path("/usr/lib/x86_64-linux-gnu/pkgconfig").glob("*.pc"):
            if pc.name != "tss2-fapi.pc":
                shutil.copy(pc, pc_dir / pc.name)
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(work),
            "LC_ALL": "C",
            "PKG_CONFIG_LIBDIR": str(pc_dir),
            "SOURCE_DATE_EPOCH": "0",
            "CFLAGS": f"-g0 -O2 -ffile-prefix-map={work}=.",
            "PYTHONHASHSEED": "0",
        }
        done = subprocess.run(
            [
                DEBIAN_PYTHON,
                "-m",
                "pip",
                "wheel",
                "-q",
                "--no-deps",
                "--no-build-isolation",
                "--disable-pip-version-check",
                "--no-cache-dir",
                "-w",
                str(work / "out"),
                str(sdist),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
        )
        if done.returncode != 0:
            raise PythonTreeError(
                f"building {pin.name} {pin.version} failed:\n{done.stderr[-2000:]}"
            )
        (wheel,) = (work / "out").glob("*.whl")
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(partial)
        try:
            partial.rename(target)  # a concurrent build may have won: same bytes
        except OSError:
            shutil.rmtree(partial, ignore_errors=True)
    return target


def _run_image_python(root: Path, mode: str, job: dict[str, object]) -> dict[str, object]:
    script = Path(__file__).with_name("closure_script.py")
    with tempfile.TemporaryDirectory(prefix="closure-") as tmp:
        job_file, out_file = Path(tmp) / "job.json", Path(tmp) / "out.json"
        job_file.write_text(json.dumps(job))
        done = subprocess.run(
            [
                str(root / "usr/bin/python3.11"),
                "-I",
                "-S",
                str(script),
                mode,
                str(job_file),
                str(out_file),
            ],
            env={"PYTHONHASHSEED": "0", "LC_ALL": "C", "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        if done.returncode != 0:
            raise PythonTreeError(f"the image's python3.11 failed ({mode}):\n{done.stderr[-3000:]}")
        result: dict[str, object] = json.loads(out_file.read_text())
        return result


def runtime_modules(repo: Path) -> list[str]:
    names = []
    for path in sorted((repo / "runtime").rglob("*.py")):
        parts = list(path.relative_to(repo).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names.append(".".join(parts))
    return names


@dataclass(frozen=True)
class Closure:
    files: list[PyFile]  # every module file, mapped to image paths
    missing: list[str]  # names modulefinder could not find (optional imports)
    built_in: list[str]  # C modules built into Debian's interpreter that it imports


def import_closure(root: Path, wheel: Path, repo: Path, origins: dict[str, str]) -> Closure:
    """Every Python file the runtime can import, mapped to image paths.

    `root` is a merged tree of the unpacked packages (the image's interpreter
    runs from it); `origins` maps image paths to their packages. The names
    modulefinder could not find are reported, not fatal: most are optional
    imports of other platforms.
    """
    search = {
        str(root / STDLIB): STDLIB,
        str(root / STDLIB / "lib-dynload"): f"{STDLIB}/lib-dynload",
        str(root / DIST_PACKAGES): DIST_PACKAGES,
        str(wheel): DIST_PACKAGES,
        str(repo): DIST_PACKAGES,
    }
    with tempfile.TemporaryDirectory(prefix="roots-") as tmp:
        script = Path(tmp) / "roots.py"
        imports = STARTUP_MODULES + runtime_modules(repo) + WHOLE_PACKAGES + LIBRARY_ROOTS
        script.write_text("".join(f"import {name}\n" for name in imports))
        found = _run_image_python(
            root,
            "find",
            {
                "path": list(search),
                "excludes": EXCLUDED_MODULES,
                "script": str(script),
            },
        )
    files = {Path(f) for f in found["files"]}  # type: ignore[attr-defined]
    for package in WHOLE_PACKAGES:
        files.update(p for p in (wheel / package).rglob("*") if p.is_file())
    out: dict[str, PyFile] = {}
    for host in sorted(files):
        if "__pycache__" in host.parts or host.suffix == ".pyi":
            continue
        for prefix, image_dir in sorted(search.items(), key=lambda kv: -len(kv[0])):
            if host.is_relative_to(prefix):
                image = f"{image_dir}/{host.relative_to(prefix).as_posix()}"
                break
        else:
            continue  # the roots script itself
        if str(host).startswith(str(repo)):
            origin = "runtime (this repository)"
        elif str(host).startswith(str(wheel)):
            origin = f"{wheel.name} (built from source)"
        else:
            origin = origins.get(image, "?")
        out.setdefault(image, PyFile(image, host, origin))
    # Names under an excluded package (tpm2-pytss's cryptography.*) are left out
    # on purpose, not unresolved.
    missing = sorted(
        name
        for name in set(found["missing"])  # type: ignore[call-overload]
        if name.partition(".")[0] not in EXCLUDED_MODULES
    )
    built_in = list(found["built_in"])  # type: ignore[call-overload]
    return Closure(sorted(out.values(), key=lambda f: f.image), missing, built_in)


def compile_sources(root: Path, files: list[PyFile], into: Path, optimize: int) -> list[PyFile]:
    """.py -> sourceless .pyc (by the image's interpreter); other files unchanged."""
    jobs: list[tuple[str, str]] = []
    dfile: dict[str, str] = {}
    out: list[PyFile] = []
    for f in files:
        if f.host.suffix == ".py":
            image = f.image[:-3] + ".pyc"
            target = into / image
            target.parent.mkdir(parents=True, exist_ok=True)
            jobs.append((str(f.host), str(target)))
            dfile[str(f.host)] = "/" + f.image  # tracebacks name the image path
            out.append(PyFile(image, target, f.origin))
        else:
            out.append(f)
    _run_image_python(root, "compile", {"compile": jobs, "dfile": dfile, "optimize": optimize})
    for _, compiled in jobs:
        os.utime(compiled, (0, 0))
    return out
