"""The frozen interpreter: every Python module of the image's import closure
compiled by the interpreter built from source (tools/initrd/cpython_build.py)
and linked into one executable with it, through CPython's frozen-module table
(PyImport_FrozenModules), so that /init starts one binary that reads no .py
or .pyc file.

What CPython's Tools/freeze does, done here for one reason: its generated C
spells each module's bytes as a decimal list, 400 files of up to 1 MB that
take most of a minute to compile on two cores; here each module's marshalled
code is a file that the assembler includes as it is (.incbin), and one C file
holds the table. The closure is the build's own (python_tree.import_closure),
not a second module finder's, so the frozen program holds exactly what the
.pyc tree held.

Left to the interpreter: the modules CPython 3.11 already deep-freezes
(importlib's bootstrap, os, site, codecs, io, abc, stat, posixpath, runpy...),
which start faster than marshalled code. Kept as files: C extension modules
that are not part of CPython (_cffi_backend, tpm2-pytss's, urwid's), found by
the frozen `_extension_files` finder at their exact image paths.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tools.initrd import cpython_build
from tools.initrd.cpython_build import INCLUDE_DIR, INTERPRETER, SOURCE, STATIC_LIBRARY
from tools.initrd.lock import Lock
from tools.initrd.python_tree import DIST_PACKAGES, STDLIB, Closure, PyFile
from tools.initrd.source_build import COMPILER

HERE = Path(__file__).with_name("frozen")
MAIN_C = HERE / "main.c"
EXTENSION_FINDER = HERE / "extension_files.py"
EXTENSION_FINDER_NAME = "_extension_files"
IMAGE_INTERPRETER = "usr/bin/python3.11"
LIB_DYNLOAD = f"{STDLIB}/lib-dynload/"
# The interpreter's own flags (cpython_build), so main() and the table are
# compiled as libpython was.
CFLAGS = (*cpython_build.CPPFLAGS, *cpython_build.CFLAGS)
# libpython3.11.a's own needs (its config Makefile's LIBS and SYSLIBS, and the
# Setup.local modules' libraries); -export-dynamic lets the extension modules
# that stay files find the interpreter's symbols.
LINK_LIBRARIES = ("-lcrypto", "-lffi", "-lz", "-llzma", "-lm", "-ldl", "-lpthread", "-lutil")
LDFLAGS = (*cpython_build.LDFLAGS, "-Xlinker", "-export-dynamic")
STEP_TIMEOUT = 600
# C modules in the closure the frozen interpreter goes without: only
# interactive prompts (site's hook, rlcompleter, pdb) import readline.
NOT_NEEDED = frozenset({"readline"})

# Run by the built interpreter: each module compiled and marshalled by the
# version that will run it, except the ones it deep-freezes itself.
COMPILE_SCRIPT = """
import _imp, json, marshal, sys
job = json.load(open(sys.argv[1]))
own = set(_imp._frozen_module_names())
out = []
for name, source, image, optimize in job:
    if name in own:
        continue
    with open(source, "rb") as f:
        code = compile(f.read(), image, "exec", dont_inherit=True, optimize=optimize)
    data = marshal.dumps(code)
    with open(f"{sys.argv[2]}/{len(out)}.bin", "wb") as f:
        f.write(data)
    out.append([name, len(data)])
json.dump({"modules": out, "built_in": sorted(sys.builtin_module_names)}, open(sys.argv[3], "w"))
"""


class FreezeError(Exception):
    """The frozen interpreter could not be made; the message says why."""


@dataclass(frozen=True)
class Module:
    name: str
    host: Path  # its source
    image: str  # its path in the image: tracebacks name it
    package: bool


@dataclass(frozen=True)
class Frozen:
    binary: Path  # the stripped executable
    modules: tuple[str, ...]  # names in its frozen table (ours, not CPython's)
    extension_files: dict[str, str]  # module -> image path of a C module kept as a file
    built_in: tuple[str, ...]  # the interpreter's built-in C modules


def module_name(image: str) -> tuple[str, bool] | None:
    """Image path of a .py file -> (module name, is a package); None if not a module."""
    for prefix in (f"{STDLIB}/", f"{DIST_PACKAGES}/"):
        if image.startswith(prefix) and image.endswith(".py"):
            parts = image[len(prefix) : -3].split("/")
            package = parts[-1] == "__init__"
            if package:
                parts.pop()
            if not parts or not all(p.isidentifier() for p in parts):
                return None
            return ".".join(parts), package
    return None


def extension_name(image: str) -> str | None:
    """Image path of an extension module -> its module name."""
    if not image.endswith(".so"):
        return None
    base = image[:-3]
    for prefix in (LIB_DYNLOAD, f"{DIST_PACKAGES}/"):
        if base.startswith(prefix):
            parts = base[len(prefix) :].split("/")
            parts[-1] = parts[-1].split(".")[0]  # str_util.cpython-311-x86_64-linux-gnu
            return ".".join(parts)
    return None


def split_closure(files: Sequence[PyFile]) -> tuple[list[Module], dict[str, str]]:
    """The closure's Python modules, and its third-party C modules (name ->
    absolute image path; CPython's own are built into the interpreter)."""
    modules: dict[str, Module] = {}
    extensions: dict[str, str] = {}
    for f in files:
        named = module_name(f.image)
        if named is not None:
            name, package = named
            if name in modules:
                # The standard library and dist-packages both have it: which one
                # the .pyc tree's sys.path order would have taken is a guess.
                raise FreezeError(
                    f"two files are module {name}: /{modules[name].image} and /{f.image}"
                )
            modules[name] = Module(name, f.host, f.image, package)
            continue
        ext = extension_name(f.image)
        if ext is not None and not f.image.startswith(LIB_DYNLOAD):
            extensions[ext] = "/" + f.image
    return sorted(modules.values(), key=lambda m: m.name), extensions


def check_built_in(closure: Closure, built_in: Sequence[str]) -> None:
    """Every C module of the closure (built into Debian's interpreter or in its
    lib-dynload) must be built into ours, or be one it never needs."""
    needed = set(closure.built_in)
    for f in closure.files:
        if f.image.startswith(LIB_DYNLOAD) and (name := extension_name(f.image)) is not None:
            needed.add(name)
    absent = sorted(needed - set(built_in) - NOT_NEEDED)
    if absent:
        raise FreezeError(
            f"the import closure needs the C modules {', '.join(absent)}, which the "
            "interpreter does not build in: add them to BUILT_IN_MODULES in "
            "tools/initrd/cpython_build.py"
        )


def _run(argv: Sequence[str | Path], cwd: Path, env: dict[str, str], what: str) -> None:
    try:
        done = subprocess.run(
            [str(a) for a in argv],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=STEP_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise FreezeError(f"{what} did not run: {err}") from None
    if done.returncode != 0:
        raise FreezeError(f"{what} failed:\n{(done.stdout + done.stderr)[-3000:]}")


def finder_source(files: dict[str, str]) -> str:
    """The frozen _extension_files module: the finder and its table."""
    table = json.dumps(dict(sorted(files.items())), indent=1, sort_keys=True)
    return EXTENSION_FINDER.read_text() + f"\nFILES.update({table})\n"


def table_c(entries: Sequence[tuple[str, int, bool]]) -> str:
    """frozen_table.c: each module's bytes included by the assembler from
    modules/N.bin, and the table of (name, bytes, size, is a package)."""
    lines = ['#include "Python.h"', "", "__asm__(", '    "\\t.pushsection .rodata\\n"']
    for index, _ in enumerate(entries):
        lines.append(
            f'    "\\t.balign 16\\nheads_frozen_{index}:\\n\\t.incbin \\"modules/{index}.bin\\"\\n"'
        )
    lines += ['    "\\t.popsection\\n");', ""]
    lines += [f"extern const unsigned char heads_frozen_{i}[];" for i in range(len(entries))]
    lines += ["", "const struct _frozen heads_frozen_modules[] = {"]
    for index, (name, size, package) in enumerate(entries):
        lines.append(f'    {{"{name}", heads_frozen_{index}, {size}, {int(package)}, NULL}},')
    lines += ["    {NULL, NULL, 0, 0, NULL},", "};"]
    return "\n".join(lines) + "\n"


def compile_modules(
    cpython: Path, stdlib_home: Path, modules: Sequence[Module], work: Path, optimize: int
) -> tuple[list[tuple[str, int, bool]], tuple[str, ...]]:
    """Marshal each module with the built interpreter into work/modules/N.bin.
    Returns the table's entries and the interpreter's built-in C modules."""
    (work / "modules").mkdir(parents=True, exist_ok=True)
    job = [[m.name, str(m.host), "/" + m.image, optimize] for m in modules]
    (work / "job.json").write_text(json.dumps(job))
    (work / "compile.py").write_text(COMPILE_SCRIPT)
    env = {
        "PATH": "/usr/bin:/bin",
        "LC_ALL": "C",
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
        # Its own standard library is not installed; the script's json comes
        # from the image's (the unpacked packages), never the host's.
        "PYTHONHOME": str(stdlib_home),
    }
    argv: list[str | Path] = [cpython / INTERPRETER, "-S", "-s", work / "compile.py"]
    argv += [work / "job.json", work / "modules", work / "out.json"]
    _run(argv, work, env, "compiling the closure with the built interpreter")
    result = json.loads((work / "out.json").read_text())
    package = {m.name: m.package for m in modules}
    entries = [(name, size, package[name]) for name, size in result["modules"]]
    return entries, tuple(result["built_in"])


def link(cpython: Path, work: Path, epoch: int) -> Path:
    """main.c and frozen_table.c compiled and linked with libpython3.11.a."""
    cflags = [*CFLAGS, f"-ffile-prefix-map={work}=.", f"-I{cpython / INCLUDE_DIR}"]
    env = {"PATH": "/usr/bin:/bin", "LC_ALL": "C", "SOURCE_DATE_EPOCH": str(epoch)}
    objects: list[Path] = []
    for source in (MAIN_C, work / "frozen_table.c"):
        objects.append(work / (source.stem + ".o"))
        compile_argv: list[str | Path] = [COMPILER, *cflags, "-c", source, "-o", objects[-1]]
        _run(compile_argv, work, env, f"compiling {source.name}")
    binary = work / "python3.11"
    link_argv: list[str | Path] = [COMPILER, *LDFLAGS, "-o", binary, *objects]
    link_argv += [cpython / STATIC_LIBRARY, *LINK_LIBRARIES]
    _run(link_argv, work, env, "linking the frozen interpreter")
    _run(["strip", "--strip-unneeded", binary], work, env, "stripping it")
    os.utime(binary, (epoch, epoch))
    return binary


def freeze(
    cpython: Path, stdlib_home: Path, files: Sequence[PyFile], work: Path, epoch: int, optimize: int
) -> Frozen:
    """Link the frozen interpreter from the built CPython staging tree
    ``cpython`` and the closure ``files``, in ``work``."""
    work.mkdir(parents=True, exist_ok=True)
    modules, extensions = split_closure(files)
    finder = work / "extension_files.py"
    finder.write_text(finder_source(extensions))
    modules.append(Module(EXTENSION_FINDER_NAME, finder, EXTENSION_FINDER_NAME + ".py", False))
    entries, built_in = compile_modules(cpython, stdlib_home, modules, work, optimize)
    (work / "frozen_table.c").write_text(table_c(entries))
    return Frozen(
        binary=link(cpython, work, epoch),
        modules=tuple(name for name, _, _ in entries),
        extension_files=extensions,
        built_in=built_in,
    )


def frozen_interpreter(
    lock: Lock, cache: Path, closure: Closure, root: Path, work: Path, optimize: int
) -> list[PyFile]:
    """The image's Python as files: the frozen interpreter (IMAGE_INTERPRETER)
    and the third-party extension modules it loads from the image. ``root``:
    the unpacked packages (Debian's standard library among them)."""
    cpython = cpython_build.build_cpython(lock, cache)
    epoch = int(str(cpython.info["source_date_epoch"]))
    frozen = freeze(cpython.root, root / "usr", closure.files, work, epoch, optimize)
    check_built_in(closure, frozen.built_in)
    pin = lock.deb_source(SOURCE)
    origin = f"{SOURCE} {pin.version} (built from source, {len(frozen.modules)} modules frozen)"
    out = [PyFile(IMAGE_INTERPRETER, frozen.binary, origin)]
    kept = set(frozen.extension_files.values())
    return out + [f for f in closure.files if "/" + f.image in kept]
