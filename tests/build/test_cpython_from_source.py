"""CPython built from its pinned Debian source (tools/initrd/cpython_build.py):
the interpreter has every module of Setup.local built in and builds no shared
module, needs only libc, libm, zlib, liblzma, libffi and libcrypto, and a second build
in another directory, with another umask and time zone, gives the same bytes
(the frozen interpreter of the image is linked from these).

The first build (1-2 minutes on two cores) goes into the ordinary cache and is
reused afterwards; the second is always compiled afresh."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

from tests.support.second_build import build_elsewhere
from tools.initrd import elf
from tools.initrd.cache import default_cache_dir
from tools.initrd.cpython_build import (
    INCLUDE_DIR,
    INTERPRETER,
    STATIC_LIBRARY,
    build_cpython,
    built_in_names,
)
from tools.initrd.lock import load_lock
from tools.initrd.source_build import Built

pytestmark = [pytest.mark.build, pytest.mark.xdist_group("build"), pytest.mark.timeout(3600)]


@pytest.fixture(scope="module")
def built() -> Built:
    return build_cpython(load_lock(), default_cache_dir())


def _used(root: Path) -> dict[str, str]:
    """What the frozen link uses: the interpreter, libpython3.11.a and the
    headers. (The config directory's Makefile and python3.11-config record the
    build directory in the flags they list; nothing reads them.)"""
    files = [root / INTERPRETER, root / STATIC_LIBRARY, *sorted((root / INCLUDE_DIR).rglob("*"))]
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in files
        if p.is_file()
    }


def test_the_closures_c_modules_are_built_in_and_nothing_is_shared(built: Built) -> None:
    interpreter = built.program(INTERPRETER)
    done = subprocess.run(
        [str(interpreter), "-S", "-c", "import sys; print(' '.join(sys.builtin_module_names))"],
        # its own standard library is not installed; builtins need none of it
        env={"PYTHONHOME": "/usr", "LC_ALL": "C"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert set(built_in_names()) <= set(done.stdout.split())
    assert not list(built.root.rglob("*.so")) and not list(built.root.rglob("lib-dynload"))
    names, _ = elf.needed(str(interpreter))
    assert sorted(names) == sorted(
        ["libcrypto.so.3", "libffi.so.8", "libz.so.1", "liblzma.so.5", "libm.so.6", "libc.so.6"]
    )


def test_a_second_build_elsewhere_is_bit_identical(
    built: Built, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    again = build_elsewhere(build_cpython, tmp_path, monkeypatch)
    assert again.root != built.root
    first, second = _used(built.root), _used(again.root)
    assert len(first) > 100 and first == second
