"""gnupg's recipe: gpg, gpg-agent, gpgv, gpgconf and scdaemon built from the
pinned Debian source package gnupg2, without what a firmware never uses.

Left out: the TOFU trust model and with it SQLite (Debian's gpg pulls
libsqlite3, 1.37 MiB raw, into the image), LDAP, the TLS libraries (GnuTLS,
NTBTLS) and DNS code, which only dirmngr uses, and dirmngr itself, gpgsm
(X.509), g13, the Web Key Service tools, gpgtar, the manuals, translations,
photo viewers and gpg's helper-program execution. Also bzip2 (detached
signatures and keys carry no compressed packet; zlib stays for the messages
that do) and readline (gpg --card-edit at the recovery shell still reads its
lines, without editing and history): with libtinfo they were 0.6 MiB raw.

Kept: smartcard support and scdaemon's internal CCID driver (on by default;
asked for explicitly, so a host without libusb fails at configure instead of
silently building a scdaemon that sees no USB reader), the classic and PGP
trust models, zlib, and Debian's build choices
that change behaviour: --libexecdir=/usr/lib/gnupg (where Debian's gpg-agent
looks for scdaemon), --enable-large-secmem, --with-agent-s2k-calibration=300.
Debian's patches are applied and configure is regenerated as Debian does, so
their configure.ac changes hold (gpg-agent and scdaemon refuse ptrace).

    python -m tools.initrd.gnupg_build [--cache DIR]
"""

from __future__ import annotations

import sys
from pathlib import Path

from tools.initrd import recipe_support, source_build
from tools.initrd.lock import Lock
from tools.initrd.source_build import Recipe

SOURCE = "gnupg2"
# Paths in the image, which are also their paths in the staging tree. Only
# these are taken: `make install` also puts helpers there (gpg-connect-agent,
# gpg-protect-tool, and gpg-wks-client, which 2.2 builds despite --disable-wks-tools).
PROGRAMS = (
    "usr/bin/gpg",
    "usr/bin/gpg-agent",
    "usr/bin/gpgv",
    "usr/bin/gpgconf",
    "usr/lib/gnupg/scdaemon",
)
CONFIGURE_FLAGS = (
    "--libexecdir=/usr/lib/gnupg",
    "--enable-large-secmem",
    "--with-agent-s2k-calibration=300",
    # what a firmware never uses
    "--disable-sqlite",
    "--disable-tofu",
    "--disable-ldap",
    "--disable-gnutls",
    "--disable-ntbtls",
    "--disable-libdns",
    "--disable-dirmngr",
    "--disable-dirmngr-auto-start",
    "--disable-gpgsm",
    "--disable-g13",
    "--disable-wks-tools",
    "--disable-gpgtar",
    "--disable-doc",
    "--disable-nls",
    "--disable-photo-viewers",
    "--disable-exec",
    "--disable-rpath",
    "--disable-tests",
    "--disable-bzip2",
    "--without-readline",
    # what it does: signing with the owner's OpenPGP card
    "--enable-card-support",
    "--enable-ccid-driver",
)
# The host's -dev packages this build compiles against -> the Debian library
# package the image runs with (from the lock).
LIBRARIES = {
    "libgpg-error-dev": "libgpg-error0",
    "libgcrypt20-dev": "libgcrypt20",
    "libassuan-dev": "libassuan0",
    "libksba-dev": "libksba8",
    "libnpth0-dev": "libnpth0",
    "libusb-1.0-0-dev": "libusb-1.0-0",
    "zlib1g-dev": "zlib1g",
}
# Libraries that must not be needed: what the flags above leave out.
FORBIDDEN_LIBRARIES = (
    "libsqlite3",
    "libldap",
    "liblber",
    "libgnutls",
    "libntbtls",
    "libbz2",
    "libreadline",
    "libtinfo",
)


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


def build_gnupg(lock: Lock, cache: Path, builds: Path | None = None) -> dict[str, Path]:
    """Image path (e.g. "usr/bin/gpg") -> the built, stripped file, from the
    cache when these inputs were built before. ``builds``: where build
    results live (default: under ``cache``)."""
    wanted = recipe(lock)
    host_versions = source_build.package_versions(tuple(LIBRARIES))
    recipe_support.check_libraries_in_lock(lock, LIBRARIES, host_versions, "gnupg")
    built = source_build.build(wanted, cache, builds)
    programs = {path: built.program(path) for path in PROGRAMS}
    check_needed(programs)
    return programs


def main(argv: list[str] | None = None) -> int:
    return recipe_support.command_line(argv, "gnupg", build_gnupg)


if __name__ == "__main__":
    sys.exit(main())
