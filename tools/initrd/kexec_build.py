"""kexec's recipe: /sbin/kexec built from the pinned Debian source package
kexec-tools, without Xen's dom0 libraries.

Left out: Xen's control library. Debian's kexec links libxenctrl, which pulls
in libxencall, libxendevicemodel, libxenevtchn, libxenforeignmemory,
libxengnttab, libxentoolcore and libxentoollog (0.3 MiB raw in the image).
kexec uses them only when it runs inside a Xen dom0, to ask the hypervisor to
load the next kernel (and for Xen's live update); a firmware runs on bare
metal, where kexec takes the kexec_load system call either way.
Also left out: vmcore-dmesg and kexec_test, which `make install` builds but
the image never takes.

Kept: every loader, the x86 multiboot and multiboot2 ones included: loading a
Xen hypervisor with its dom0 kernel and initrd as modules
(`kexec -l xen --module ...`) is kexec's own code and needs none of Xen's
libraries. Unlike Debian's amd64 build, this one reads gzip-compressed files
(--with-zlib): Xen installs its hypervisor as xen.gz (Qubes does too), and
the multiboot2 loader cannot find its header inside gzip data, so Debian's
kexec could not load it; Heads' kexec has zlib too. It costs nothing here
(the same binary size; libz is in the image for Python, gpg and libpci).
lzma stays out (--without-lzma), said instead of left to the build host's
headers. Debian's layout
(--sbindir=/sbin) and its patches are kept, and configure is regenerated as
Debian's build does (dh_autoreconf).

Compiled against the host's zlib1g-dev: the image's zlib1g must be at least
as new.

    python -m tools.initrd.kexec_build [--cache DIR]
"""

from __future__ import annotations

import sys
from pathlib import Path

from tools.initrd import recipe_support, source_build
from tools.initrd.lock import Lock
from tools.initrd.source_build import Recipe

SOURCE = "kexec-tools"
# The path in the image, which is also its path in the staging tree.
PROGRAMS = ("sbin/kexec",)
CONFIGURE_FLAGS = (
    # Debian's layout: the image's /sbin/kexec
    "--sbindir=/sbin",
    # what a firmware never uses: kexec inside a Xen dom0
    "--without-xen",
    # xen.gz (see above); lzma said, not left to the host
    "--with-zlib",
    "--without-lzma",
)
# Libraries that must not be needed: what the flags above leave out.
FORBIDDEN_LIBRARIES = ("libxen", "libyajl", "libnl-", "liblzma")
# The host's -dev package this build compiles against -> the image's library.
LIBRARIES = {"zlib1g-dev": "zlib1g"}


def recipe(lock: Lock) -> Recipe:
    return Recipe(
        pin=lock.deb_source(SOURCE),
        configure_flags=CONFIGURE_FLAGS,
        host_packages=tuple(LIBRARIES),
        programs=PROGRAMS,
        autoreconf=True,
    )


def check_needed(programs: dict[str, Path]) -> dict[str, list[str]]:
    """Each program's DT_NEEDED; none may name a forbidden library."""
    return recipe_support.refuse_libraries(programs, FORBIDDEN_LIBRARIES)


def build_kexec(lock: Lock, cache: Path, builds: Path | None = None) -> dict[str, Path]:
    """Image path ("sbin/kexec") -> the built, stripped file, from the cache
    when these inputs were built before. ``builds``: where build results live
    (default: under ``cache``)."""
    host_versions = source_build.package_versions(tuple(LIBRARIES))
    recipe_support.check_libraries_in_lock(lock, LIBRARIES, host_versions, "kexec")
    built = source_build.build(recipe(lock), cache, builds)
    programs = {path: built.program(path) for path in PROGRAMS}
    check_needed(programs)
    return programs


def main(argv: list[str] | None = None) -> int:
    return recipe_support.command_line(argv, "kexec", build_kexec)


if __name__ == "__main__":
    sys.exit(main())
