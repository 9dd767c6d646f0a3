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

from tools.initrd.cpython_build import (
    INCLUDE_DIR,
    INTERPRETER,
    SOURCE,
    STATIC_LIBRARY,
    build_cpython,
)
from tools.initrd.lock import Lock
from tools.initrd.python_tree import DIST_PACKAGES, STDLIB, PyFile

HERE = Path(__file__).with_name("frozen")
MAIN_C = HERE / "main.c"
EXTENSION_FINDER = HERE / "extension_files.py"
EXTENSION_FINDER_NAME = "_extension_files"
IMAGE_INTERPRETER = "usr/bin/python3.11"
LIB_DYNLOAD = f"{STDLIB}/lib-dynload/"
COMPILER = "gcc"
CFLAGS = (
    "-O2",
    "-g0",
    "-fwrapv",
    "-fno-pie",
    "-fstack-protector-strong",
    "-fstack-clash-protection",
    "-fcf-protection",
    "-D_FORTIFY_SOURCE=2",
)
# libpython3.11.a's own needs (its config Makefile's LIBS, SYSLIBS and the
# Setup.local modules' libraries); -export-dynamic lets the extension
# modules that stay files find the interpreter's symbols.
LINK_LIBRARIES = ("-lcrypto", "-lffi", "-lz", "-lm", "-ldl", "-lpthread", "-lutil")
LDFLAGS = (
    "-no-pie",
    "-Wl,-O1",
    "-Wl,-z,relro",
    "-Wl,-z,now",
    "-Wl,--as-needed",
    "-Xlinker",
    "-export-dynamic",
)
STEP_TIMEOUT = 600
# C modules in the closure the frozen interpreter goes without: only
# interactive prompts (site's hook, rlcompleter, pdb) import readline.
NOT_NEEDED = frozenset({"readline"})

COMPILE_SCRIPT = """
import json, marshal, sys
job = json.load(open(sys.argv[1]))
out = []
for index, (name, source, image) in enumerate(job):
    with open(source, "rb") as f:
        code = compile(f.read(), image, "exec", dont_inherit=True, optimize=0)
    data = marshal.dumps(code)
    with open(f"{sys.argv[2]}/{index}.bin", "wb") as f:
        f.write(data)
    out.append(len(data))
json.dump({"sizes": out, "frozen": sorted(__import__("_imp")._frozen_module_names()),
           "builtin": sorted(sys.builtin_module_names)}, open(sys.argv[3], "w"))
"""


class FreezeError(Exception):
    """The frozen interpreter could not be made; the message says why."""


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


def _finder_source(files: dict[str, str]) -> str:
    table = json.dumps(dict(sorted(files.items())), indent=1, sort_keys=True)
    return EXTENSION_FINDER.read_text() + f"\nFILES.update({table})\n"


def table_c(entries: Sequence[tuple[str, int, bool]]) -> str:
    """frozen_table.c: each module's bytes included by the assembler from
    N.bin, and the table of (name, bytes, size, is a package)."""
    lines = ['#include "Python.h"', "", "__asm__("]
    lines.append('    "\\t.pushsection .rodata\\n"')
    for index, _ in enumerate(entries):
        lines.append(
            f'    "\\t.balign 16\\nheads_frozen_{index}:\\n\\t.incbin \\"modules/{index}.bin\\"\\n"'
        )
    lines.append('    "\\t.popsection\\n");')
    lines.append("")
    for index, _ in enumerate(entries):
        lines.append(f"extern const unsigned char heads_frozen_{index}[];")
    lines.append("")
    lines.append("const struct _frozen heads_frozen_modules[] = {")
    for index, (name, size, package) in enumerate(entries):
        lines.append(f'    {{"{name}", heads_frozen_{index}, {size}, {int(package)}, NULL}},')
    lines.append("    {NULL, NULL, 0, 0, NULL},")
    lines.append("};")
    return "\n".join(lines) + "\n"


def freeze(cpython: Path, files: Sequence[PyFile], work: Path, epoch: int) -> Frozen:
    """Link the frozen interpreter from the built CPython staging tree
    ``cpython`` and the closure ``files``, in ``work``."""
    work.mkdir(parents=True, exist_ok=True)
    modules: dict[str, tuple[Path, str, bool]] = {}
    extensions: dict[str, str] = {}
    for f in files:
        named = module_name(f.image)
        if named is not None:
            modules[named[0]] = (f.host, f.image, named[1])
            continue
        ext = extension_name(f.image)
        if ext is not None and not f.image.startswith(LIB_DYNLOAD):
            extensions[ext] = "/" + f.image
    finder = work / "extension_files.py"
    finder.write_text(_finder_source(extensions))
    modules[EXTENSION_FINDER_NAME] = (finder, "/" + EXTENSION_FINDER_NAME + ".py", False)

    (work / "modules").mkdir(exist_ok=True)
    job = [[name, str(host), "/" + image] for name, (host, image, _) in sorted(modules.items())]
    (work / "job.json").write_text(json.dumps(job))
    env = {
        "PATH": "/usr/bin:/bin",
        "LC_ALL": "C",
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
        # its own standard library is not installed: the build only runs
        # compile() and marshal, which are built in
        "PYTHONHOME": "/usr",
        "SOURCE_DATE_EPOCH": str(epoch),
    }
    script = work / "compile.py"
    script.write_text(COMPILE_SCRIPT)
    _run(
        [
            cpython / INTERPRETER,
            "-S",
            script,
            work / "job.json",
            work / "modules",
            work / "out.json",
        ],
        work,
        env,
        "compiling the closure with the built interpreter",
    )
    result = json.loads((work / "out.json").read_text())
    deep_frozen = set(result["frozen"])
    entries: list[tuple[str, int, bool]] = []
    keep: list[int] = []
    for index, ((name, (_, _, package)), size) in enumerate(
        zip(sorted(modules.items()), result["sizes"], strict=True)
    ):
        if name in deep_frozen:
            continue  # the interpreter's own deep-frozen copy starts faster
        keep.append(index)
        entries.append((name, size, package))
    # Renumber so the table and the .bin files agree.
    for new, old in enumerate(keep):
        os.replace(work / "modules" / f"{old}.bin", work / "modules" / f"new{new}.bin")
    for stale in (work / "modules").glob("[0-9]*.bin"):
        stale.unlink()
    for new in range(len(keep)):
        os.replace(work / "modules" / f"new{new}.bin", work / "modules" / f"{new}.bin")
    (work / "frozen_table.c").write_text(table_c(entries))

    include = [f"-I{cpython / INCLUDE_DIR}"]
    cflags = [*CFLAGS, f"-ffile-prefix-map={work}=.", *include]
    build_env = {"PATH": "/usr/bin:/bin", "LC_ALL": "C", "SOURCE_DATE_EPOCH": str(epoch)}
    for source in (MAIN_C, work / "frozen_table.c"):
        obj = work / (source.stem + ".o")
        _run(
            [COMPILER, *cflags, "-c", source, "-o", obj],
            work,
            build_env,
            f"compiling {source.name}",
        )
    binary = work / "python3.11"
    _run(
        [
            COMPILER,
            *LDFLAGS,
            "-o",
            binary,
            work / "main.o",
            work / "frozen_table.o",
            cpython / STATIC_LIBRARY,
            *LINK_LIBRARIES,
        ],
        work,
        build_env,
        "linking the frozen interpreter",
    )
    _run(["strip", "--strip-unneeded", binary], work, build_env, "stripping it")
    os.utime(binary, (epoch, epoch))
    return Frozen(
        binary=binary,
        modules=tuple(name for name, _, _ in entries),
        extension_files=extensions,
        built_in=tuple(result["builtin"]),
    )


def check_built_in(files: Sequence[PyFile], built_in: Sequence[str]) -> None:
    """Every C module of the closure that Debian ships in lib-dynload must be
    built into our interpreter (or be one it never needs)."""
    absent = sorted(
        name
        for f in files
        if f.image.startswith(LIB_DYNLOAD)
        and (name := extension_name(f.image)) is not None
        and name not in built_in
        and name not in NOT_NEEDED
    )
    if absent:
        raise FreezeError(
            f"the import closure needs the C modules {', '.join(absent)}, which the "
            "interpreter does not build in: add them to BUILT_IN_MODULES in "
            "tools/initrd/cpython_build.py"
        )


def frozen_interpreter(
    lock: Lock, cache: Path, files: Sequence[PyFile], work: Path
) -> list[PyFile]:
    """The image's Python as files: the frozen interpreter (IMAGE_INTERPRETER)
    and the third-party extension modules it loads from the image."""
    cpython = build_cpython(lock, cache)
    epoch = int(str(cpython.info["source_date_epoch"]))
    frozen = freeze(cpython.root, files, work, epoch)
    check_built_in(files, frozen.built_in)
    pin = lock.deb_source(SOURCE)
    origin = f"{SOURCE} {pin.version} (built from source, {len(frozen.modules)} modules frozen)"
    out = [PyFile(IMAGE_INTERPRETER, frozen.binary, origin)]
    kept = set(frozen.extension_files.values())
    out += [f for f in files if "/" + f.image in kept]
    return out
