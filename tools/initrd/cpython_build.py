"""CPython's recipe: the interpreter the frozen runtime is linked from, built
from the pinned Debian source package python3.11 (Debian's patches applied).

Built static (no libpython3.11.so: the frozen program links libpython3.11.a),
non-PIE and -O2, without debug information: measured against -Os, PIE, LTO
and Debian's own PGO+LTO binary, this is the fastest of our builds under QEMU
TCG for 0.2 MiB of xz more than -Os (README, "The frozen interpreter").

Only the extension modules the runtime's import closure needs are compiled,
all into the interpreter (Modules/Setup.local, below); everything else is
disabled, so nothing is built as a shared module and the image carries no
lib-dynload directory. `tools/initrd/python_freeze.py` checks that every
C module the closure imports is built in.

Installed: the interpreter (to compile the frozen code with the same
version that runs it), libpython3.11.a with its config directory, and the
headers. Not installed: the standard library, whose sources the freeze
takes from the Debian packages in the lock (the newest patches), and
everything `make install` would byte-compile.

    python -m tools.initrd.cpython_build [--cache DIR]
"""

from __future__ import annotations

import sys
from pathlib import Path

from tools.initrd import recipe_support, source_build
from tools.initrd.lock import Lock
from tools.initrd.source_build import (
    DEFAULT_CFLAGS,
    DEFAULT_CPPFLAGS,
    DEFAULT_LDFLAGS,
    Recipe,
)

SOURCE = "python3.11"
VERSION = "3.11"
INTERPRETER = "usr/bin/python3.11"
CONFIG_DIR = "usr/lib/python3.11/config-3.11-x86_64-linux-gnu"
STATIC_LIBRARY = f"{CONFIG_DIR}/libpython3.11.a"
INCLUDE_DIR = "usr/include/python3.11"
PROGRAMS = (INTERPRETER, STATIC_LIBRARY, f"{INCLUDE_DIR}/Python.h", f"{INCLUDE_DIR}/pyconfig.h")

# The C modules of the import closure (first rule wins: Setup.local is read
# before Setup.stdlib). Modules without flags take configure's
# MODULE_<NAME>_CFLAGS/LDFLAGS (zlib -> -lz, _lzma -> -llzma, _hashlib -> -lcrypto).
BUILT_IN_MODULES = (
    "array arraymodule.c",
    "_bisect _bisectmodule.c",
    "_csv _csv.c",
    "_heapq _heapqmodule.c",
    "_json _json.c",
    "_opcode _opcode.c",
    "_pickle _pickle.c",
    "_queue _queuemodule.c",
    "_random _randommodule.c",
    "_struct _struct.c",
    "_typing _typingmodule.c",
    "math mathmodule.c",
    "_datetime _datetimemodule.c",
    "binascii binascii.c",
    "zlib zlibmodule.c",
    # xz/lzma OS initrds (runtime/disk/os_initrd_crypttabs.py); -llzma from configure
    "_lzma _lzmamodule.c",
    "_md5 md5module.c",
    "_sha1 sha1module.c",
    "_sha256 sha256module.c",
    "_sha512 sha512module.c",
    "_sha3 _sha3/sha3module.c",
    "_blake2 _blake2/blake2module.c _blake2/blake2b_impl.c _blake2/blake2s_impl.c",
    "unicodedata unicodedata.c",
    "fcntl fcntlmodule.c",
    "grp grpmodule.c",
    "_posixsubprocess _posixsubprocess.c",
    "select selectmodule.c",
    "_socket socketmodule.c",
    "termios termios.c",
    "_hashlib _hashopenssl.c",
    "_ctypes _ctypes/_ctypes.c _ctypes/callbacks.c _ctypes/callproc.c _ctypes/stgdict.c "
    "_ctypes/cfield.c -DHAVE_FFI_PREP_CIF_VAR -DHAVE_FFI_PREP_CLOSURE_LOC "
    "-DHAVE_FFI_CLOSURE_ALLOC -lffi -ldl",
)
# Everything else setup.py or Setup.stdlib would build. Disabling them also
# keeps setup.py from building shared modules the closure never imports.
DISABLED_MODULES = (
    "_statistics _asyncio _contextvars _lsprof _xxsubinterpreters _zoneinfo audioop cmath "
    "_decimal _bz2 _gdbm _dbm pyexpat _elementtree "
    "_codecs_cn _codecs_hk _codecs_iso2022 _codecs_jp _codecs_kr _codecs_tw _multibytecodec "
    "_crypt mmap nis ossaudiodev resource spwd syslog _posixshmem _multiprocessing "
    "_sqlite3 _ssl _uuid _tkinter _scproxy readline _curses _curses_panel "
    "_xxtestfuzz _testbuffer _testinternalcapi _testcapi _testclinic "
    "_testimportmultiple _testmultiphase _ctypes_test xxlimited xxlimited_35 xxsubtype"
)
SETUP_LOCAL = (
    "# The runtime's C modules, built into the interpreter (tools/initrd/cpython_build.py).\n"
    "*static*\n"
    + "".join(f"{line}\n" for line in BUILT_IN_MODULES)
    + "\n*disabled*\n"
    + "".join(f"{name}\n" for name in DISABLED_MODULES.split())
)
CONFIGURE_FLAGS = (
    "--without-ensurepip",
    "--disable-test-modules",
    # non-PIE, as Debian's own python3.11 is, for speed: the frozen -O2 boot
    # imports took 1.04-1.08 s under TCG against 1.27-1.40 s for PIE. The
    # interpreter's own code is then at a fixed address; the libraries it
    # loads (libc, libcrypto, the TSS) are still placed at random.
    "LINKCC=gcc -no-pie",
)
# -O2 instead of the default -Os (measured: 17 % faster imports under TCG);
# -fwrapv as CPython's own OPT has it; no -g.
CPPFLAGS = DEFAULT_CPPFLAGS
CFLAGS = (*(f for f in DEFAULT_CFLAGS if f != "-Os"), "-O2", "-fwrapv", "-fno-pie")
LDFLAGS = (*DEFAULT_LDFLAGS, "-no-pie")
INSTALL_TARGETS = ("altbininstall", "libainstall", "inclinstall")
# The host's -dev packages this build compiles against -> the Debian library
# package the image runs with (from the lock).
LIBRARIES = {
    "libssl-dev": "libssl3",
    "libffi-dev": "libffi8",
    "zlib1g-dev": "zlib1g",
    "liblzma-dev": "liblzma5",
}


def recipe(lock: Lock) -> Recipe:
    return Recipe(
        pin=lock.deb_source(SOURCE),
        configure_flags=CONFIGURE_FLAGS,
        host_packages=tuple(LIBRARIES),
        programs=PROGRAMS,
        source_files=(("Modules/Setup.local", SETUP_LOCAL),),
        install_targets=INSTALL_TARGETS,
        cppflags=CPPFLAGS,
        cflags=CFLAGS,
        ldflags=LDFLAGS,
    )


def built_in_names() -> list[str]:
    """The module names Setup.local builds into the interpreter."""
    return sorted(line.split()[0] for line in BUILT_IN_MODULES)


def build_cpython(lock: Lock, cache: Path, builds: Path | None = None) -> source_build.Built:
    """The staging tree of the built interpreter (from the cache when these
    inputs were built before)."""
    host_versions = source_build.package_versions(tuple(LIBRARIES))
    recipe_support.check_libraries_in_lock(lock, LIBRARIES, host_versions, "CPython")
    return source_build.build(recipe(lock), cache, builds)


def main(argv: list[str] | None = None) -> int:
    def build(lock: Lock, cache: Path) -> dict[str, Path]:
        built = build_cpython(lock, cache)
        return {path: built.program(path) for path in PROGRAMS}

    return recipe_support.command_line(argv, "cpython", build)


if __name__ == "__main__":
    sys.exit(main())
