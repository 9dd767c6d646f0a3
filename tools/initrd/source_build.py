"""Build a pinned Debian source package with autotools (or busybox's Kconfig)
into a staging tree.

One job: unpack a `[[deb_source]]` pin (tools/initrd/debian_sources.py, Debian's
patches applied), optionally `autoreconf -fi` it as Debian's own build does,
`./configure --prefix=/usr ...`, `make -j`, `make install DESTDIR=...`, strip
every ELF file installed, and keep the staging tree in the cache under a key
that hashes every input of the build: the pin's files, the configure flags,
CPPFLAGS/CFLAGS/LDFLAGS, the compiler's version and the versions of the
host's build packages. A changed input builds afresh; an unchanged one is a
directory lookup.

A Kconfig recipe (busybox) gives the lines of its `.config` instead of
configure flags: every other option of `make allyesconfig`'s complete list is
turned off (numbers and strings keep their defaults), `make oldconfig` settles
it with nothing to ask, every wanted line must survive Kconfig's dependency
checks, and `make install` takes CONFIG_PREFIX=... (busybox's DESTDIR).

Reproducible: SOURCE_DATE_EPOCH from debian/changelog, a clean environment
(LC_ALL=C, TZ=UTC, umask 022), the build directory mapped away with
-ffile-prefix-map, no debug information, stripped programs and every mtime of
the staging tree set to SOURCE_DATE_EPOCH. Two builds in different cache
directories give the same bytes (tests/build/test_gnupg_from_source.py).

Atomic: everything happens in a temporary directory beside the entry, renamed
into place at the end, so a killed build leaves no half entry (only a hidden
`.NAME-*` directory, which is never read and can be deleted).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tools.initrd import debian_sources, kconfig
from tools.initrd.cache import exclusive, sha256_file
from tools.initrd.lock import DebSourcePin

SUBDIR = "source-builds"
# Bump when the way a build is done changes (the steps, the base configure
# flags, the environment), so old cache entries are not reused.
BUILD_FORMAT = 2
# Installed programs are small-first (the initramfs is the product); the
# hardening matches Debian's defaults for programs that handle secrets.
DEFAULT_CPPFLAGS = ("-D_FORTIFY_SOURCE=2",)
DEFAULT_CFLAGS = (
    "-Os",
    "-g0",
    "-fstack-protector-strong",
    "-fstack-clash-protection",
    "-fcf-protection",
    "-Wformat",
    "-Werror=format-security",
)
DEFAULT_LDFLAGS = ("-Wl,-O1", "-Wl,-z,relro", "-Wl,-z,now", "-Wl,--as-needed")
# Host packages every autotools build uses; their versions are in every key.
BASE_HOST_PACKAGES = ("binutils", "make", "libc6-dev", "linux-libc-dev", "pkgconf", "dpkg-dev")
AUTORECONF_HOST_PACKAGES = ("autoconf", "automake", "autopoint", "m4", "perl")
COMPILER = "gcc"
BOOTSTRAP = "tools/bootstrap.sh"

QUERY_TIMEOUT = 60
AUTORECONF_TIMEOUT = 900
CONFIGURE_TIMEOUT = 1800
MAKE_TIMEOUT = 5400  # two busy cores: a large package can take most of an hour
INSTALL_TIMEOUT = 900
STRIP_TIMEOUT = 120
LOG_TAIL_LINES = 40


class SourceBuildError(Exception):
    """A from-source build could not run or failed; the message says what to do."""


@dataclass(frozen=True)
class Recipe:
    """What to build and how: everything here is part of the cache key."""

    pin: DebSourcePin
    configure_flags: tuple[str, ...]
    # Host packages (the -dev packages and tools) the build uses: checked
    # installed before building, their versions in the key.
    host_packages: tuple[str, ...]
    # Staging paths (e.g. "usr/bin/gpg") that must exist after `make install`.
    programs: tuple[str, ...]
    autoreconf: bool = False
    # Files the recipe writes into the unpacked source before configuring
    # (path relative to the source tree, text), e.g. CPython's Modules/Setup.local.
    source_files: tuple[tuple[str, str], ...] = ()
    # `make` targets that install into the staging tree.
    install_targets: tuple[str, ...] = ("install",)
    # A Kconfig package (busybox): its .config lines, every other option off,
    # instead of ./configure (configure_flags unused).
    kconfig: str | None = None
    cppflags: tuple[str, ...] = DEFAULT_CPPFLAGS
    cflags: tuple[str, ...] = DEFAULT_CFLAGS
    ldflags: tuple[str, ...] = DEFAULT_LDFLAGS

    def all_host_packages(self) -> tuple[str, ...]:
        extra = AUTORECONF_HOST_PACKAGES if self.autoreconf else ()
        return tuple(sorted({*BASE_HOST_PACKAGES, *extra, *self.host_packages}))


@dataclass(frozen=True)
class Built:
    """A finished build in the cache."""

    root: Path  # the staging tree: root / "usr/bin/gpg"
    key: str
    info: dict[str, object]

    def program(self, path: str) -> Path:
        return self.root / path


def key_inputs(
    recipe: Recipe, compiler: str, package_versions: Mapping[str, str]
) -> dict[str, object]:
    """Every input of a build, as JSON-able data (also written beside the tree)."""
    pin = recipe.pin
    inputs: dict[str, object] = {
        "format": BUILD_FORMAT,
        "source": pin.name,
        "version": pin.version,
        "files": sorted([f.filename, f.sha256] for f in pin.files),
        "autoreconf": recipe.autoreconf,
        "configure_flags": list(recipe.configure_flags),
        "cppflags": list(recipe.cppflags),
        "cflags": list(recipe.cflags),
        "ldflags": list(recipe.ldflags),
        "programs": sorted(recipe.programs),
        "compiler": compiler,
        "host_packages": dict(sorted(package_versions.items())),
    }
    # Only when set, so the keys of recipes without them stay as they were.
    if recipe.source_files:
        inputs["source_files"] = [list(f) for f in recipe.source_files]
    if recipe.install_targets != ("install",):
        inputs["install_targets"] = list(recipe.install_targets)
    if recipe.kconfig is not None:
        inputs["kconfig"] = recipe.kconfig
    return inputs


def cache_key(recipe: Recipe, compiler: str, package_versions: Mapping[str, str]) -> str:
    canonical = json.dumps(key_inputs(recipe, compiler, package_versions), sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def entry_name(pin: DebSourcePin, key: str) -> str:
    return f"{pin.name}-{debian_sources.upstream_version(pin.version)}-{key[:16]}"


def configure_argv(recipe: Recipe) -> list[str]:
    # The install layout is the image's; the caller's flags come last and win.
    base = [
        "--prefix=/usr",
        "--sysconfdir=/etc",
        "--localstatedir=/var",
        "--disable-dependency-tracking",
    ]
    return ["./configure", *base, *recipe.configure_flags]


def build_env(recipe: Recipe, source_dir: Path, home: Path, epoch: int) -> dict[str, str]:
    """A clean environment: nothing from the caller's (CC, CFLAGS, PKG_CONFIG_PATH,
    MAKEFLAGS, a locale or a time zone) reaches the build."""
    prefix_map = f"-ffile-prefix-map={source_dir}=."
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": str(home),
        "LC_ALL": "C",
        "TZ": "UTC",
        "SOURCE_DATE_EPOCH": str(epoch),
        "CC": COMPILER,
        "CPPFLAGS": " ".join(recipe.cppflags),
        "CFLAGS": " ".join([*recipe.cflags, prefix_map]),
        "LDFLAGS": " ".join(recipe.ldflags),
    }


def log_tail(text: str, lines: int = LOG_TAIL_LINES) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


# --- the host ----------------------------------------------------------------


def _query(argv: list[str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=QUERY_TIMEOUT,
            check=False,
            env={**os.environ, "LC_ALL": "C"},
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise SourceBuildError(f"{argv[0]} did not run: {err}") from None


def compiler_version() -> str:
    """The first line of `gcc --version` (the Debian revision is in it)."""
    done = _query([COMPILER, "--version"])
    if done.returncode != 0 or not done.stdout.strip():
        raise SourceBuildError(
            f"`{COMPILER} --version` failed ({done.stderr.strip()[-300:]}); install the "
            f"compiler with {BOOTSTRAP}"
        )
    return done.stdout.splitlines()[0].strip()


def parse_package_status(text: str) -> dict[str, tuple[str, str]]:
    """`dpkg-query -W -f '${Package} ${Version} ${db:Status-Status}\\n'` output:
    name -> (version, status)."""
    found: dict[str, tuple[str, str]] = {}
    for line in text.splitlines():
        parts = line.split(" ")
        if len(parts) == 3:
            found[parts[0]] = (parts[1], parts[2])
    return found


def missing_packages_error(missing: Sequence[str]) -> SourceBuildError:
    names = " ".join(sorted(missing))
    return SourceBuildError(
        f"host build dependencies not installed: {names}. Install them with "
        f"{BOOTSTRAP} (or as root: apt-get install --no-install-recommends {names})"
    )


def package_versions(names: Sequence[str]) -> dict[str, str]:
    """The installed version of each host package; every one must be installed."""
    done = _query(
        ["dpkg-query", "-W", "-f", "${Package} ${Version} ${db:Status-Status}\\n", *names]
    )
    # dpkg-query exits 1 when a name is unknown; the rest is still listed.
    status = parse_package_status(done.stdout)
    missing = [n for n in names if status.get(n, ("", ""))[1] != "installed"]
    if missing:
        raise missing_packages_error(missing)
    return {n: status[n][0] for n in names}


def changelog_epoch(source_dir: Path) -> int:
    """SOURCE_DATE_EPOCH as Debian sets it: the date of the last changelog entry."""
    done = _query(
        ["dpkg-parsechangelog", "-l", str(source_dir / "debian" / "changelog"), "-STimestamp"]
    )
    value = done.stdout.strip()
    if done.returncode != 0 or not value.isdigit():
        raise SourceBuildError(
            f"dpkg-parsechangelog could not read {source_dir}/debian/changelog: "
            f"{done.stderr.strip()[-300:]}"
        )
    return int(value)


# --- one build -----------------------------------------------------------------


def _run_logged(
    step: str,
    argv: list[str],
    cwd: Path,
    env: Mapping[str, str],
    log: Path,
    timeout: float,
    what: str,
) -> None:
    """Run a build step with its output appended to the log. It runs in its own
    process group, so a timeout stops the compilers make started, not only make."""
    with log.open("ab") as out:
        out.write(f"\n### {step}: {' '.join(argv)}\n".encode())
        out.flush()
        try:
            process = subprocess.Popen(
                argv,
                cwd=cwd,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                umask=0o022,
            )
        except OSError as err:
            raise SourceBuildError(
                f"{step} of {what} did not start ({err}); install the build tools with {BOOTSTRAP}"
            ) from None
        try:
            code = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            raise SourceBuildError(
                f"{step} of {what} took longer than {timeout:.0f} s and was stopped. "
                f"Last lines of its log:\n{log_tail(log.read_text(errors='replace'))}\n"
                "Is the machine overloaded? Try again when it is idle."
            ) from None
    if code != 0:
        raise SourceBuildError(
            f"{step} of {what} failed (exit status {code}). Last lines of its log:\n"
            f"{log_tail(log.read_text(errors='replace'))}\n"
            f"A missing header or library usually means a host build dependency is "
            f"missing: run {BOOTSTRAP}. A configure flag the package does not know "
            "is a mistake in its recipe."
        )


def is_elf(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(4) == b"\x7fELF"


def _strip_and_settle(root: Path, env: Mapping[str, str], log: Path, epoch: int, what: str) -> None:
    """Strip every ELF file, then give every entry the one mtime."""
    files = sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink() and is_elf(p))
    if files:
        argv = ["strip", "--strip-unneeded", *(str(p) for p in files)]
        _run_logged("strip", argv, root, env, log, STRIP_TIMEOUT, what)
    for path in [*root.rglob("*"), root]:
        os.utime(path, (epoch, epoch), follow_symlinks=False)


def _kconfig(
    wanted: str, kept: Path, source_dir: Path, env: Mapping[str, str], log: Path, what: str
) -> None:
    """.config: every option off but ``wanted``'s lines; a copy of the result
    is kept beside the staging tree (work/"config"), for whoever reviews it."""
    dot_config = source_dir / ".config"
    every = ["make", "allyesconfig"]
    _run_logged("allyesconfig", every, source_dir, env, log, CONFIGURE_TIMEOUT, what)
    dot_config.write_text(kconfig.kconfig_over(dot_config.read_text(), wanted))
    # stdin is /dev/null: an option the list missed gets its default, never a prompt
    oldconfig = ["make", "oldconfig"]
    _run_logged("oldconfig", oldconfig, source_dir, env, log, CONFIGURE_TIMEOUT, what)
    config = dot_config.read_text()
    kept.write_text(config)
    dropped = kconfig.kconfig_dropped(wanted, config)
    if dropped:
        raise SourceBuildError(
            f"Kconfig did not keep these lines of {what}'s recipe: {', '.join(dropped)}. "
            "A dependency is not enabled or the name is wrong; fix the recipe."
        )


def _compile(recipe: Recipe, cache: Path, work: Path, log: Path, what: str) -> int:
    """Unpack, configure, make and install into work/"root"; the epoch used."""
    source_dir = debian_sources.unpack(recipe.pin, cache, work / "src")
    epoch = changelog_epoch(source_dir)
    home = work / "home"
    home.mkdir()
    env = build_env(recipe, source_dir, home, epoch)
    for relative, text in recipe.source_files:
        (source_dir / relative).write_text(text)
    if recipe.kconfig is not None:
        _kconfig(recipe.kconfig, work / "config", source_dir, env, log, what)
    else:
        if recipe.autoreconf:
            # Debian's patches change configure.ac and Makefile.am files; the
            # shipped configure would silently ignore those changes.
            autoreconf = ["autoreconf", "-fi"]
            _run_logged("autoreconf", autoreconf, source_dir, env, log, AUTORECONF_TIMEOUT, what)
        configure = configure_argv(recipe)
        _run_logged("configure", configure, source_dir, env, log, CONFIGURE_TIMEOUT, what)
    jobs = str(os.cpu_count() or 1)
    _run_logged("make", ["make", f"-j{jobs}"], source_dir, env, log, MAKE_TIMEOUT, what)
    root = work / "root"
    destdir = "CONFIG_PREFIX" if recipe.kconfig is not None else "DESTDIR"
    install = ["make", *recipe.install_targets, f"{destdir}={root}"]
    _run_logged("make install", install, source_dir, env, log, INSTALL_TIMEOUT, what)
    missing = [p for p in recipe.programs if not (root / p).is_file()]
    if missing:
        raise SourceBuildError(
            f"`make install` of {what} did not install {', '.join(missing)}; check the "
            "recipe's configure flags (a program that was disabled?) and its paths"
        )
    _strip_and_settle(root, env, log, epoch, what)
    return epoch


def build(recipe: Recipe, cache: Path, builds: Path | None = None) -> Built:
    """The staging tree of ``recipe``: from ``builds`` (default: the cache's
    source-builds directory) when its inputs were built before, else built now.
    Source files are fetched into and read from ``cache``."""
    pin = recipe.pin
    versions = package_versions(recipe.all_host_packages())
    compiler = compiler_version()
    key = cache_key(recipe, compiler, versions)
    builds = builds if builds is not None else cache / SUBDIR
    target = builds / entry_name(pin, key)
    if (target / "build-info.json").is_file():
        return _finished(target, key)
    # Two builds of the same inputs at once (the test workers each build an
    # image): the second waits, then takes the first one's entry.
    with exclusive(builds.with_name(f"{builds.name}.locks") / f"{target.name}.lock"):
        if (target / "build-info.json").is_file():
            return _finished(target, key)
        return _build_entry(recipe, cache, builds, target, key, versions, compiler)


def _build_entry(
    recipe: Recipe,
    cache: Path,
    builds: Path,
    target: Path,
    key: str,
    versions: dict[str, str],
    compiler: str,
) -> Built:
    pin = recipe.pin
    what = f"{pin.name} {pin.version}"
    if target.exists():
        # Entries are renamed into place whole, so this one was made by hand
        # (or damaged): never taken for a build, built afresh.
        shutil.rmtree(target)
    builds.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{pin.name}-", dir=builds))
    log = work / "build.log"
    try:
        epoch = _compile(recipe, cache, work, log, what)
        info = {
            **key_inputs(recipe, compiler, versions),
            "source_date_epoch": epoch,
            "key": key,
            "programs": {p: sha256_file(work / "root" / p) for p in recipe.programs},
        }
        (work / "build-info.json").write_text(json.dumps(info, indent=1, sort_keys=True) + "\n")
        shutil.rmtree(work / "src")
        shutil.rmtree(work / "home")
        work.chmod(0o755)  # mkdtemp made it private; the entry is an ordinary directory
        try:
            work.rename(target)
        except OSError as err:
            # Another process finished the same inputs first: same bytes, keep its.
            if not (target / "build-info.json").is_file():
                raise SourceBuildError(
                    f"the build of {what} could not be put into the cache at {target} "
                    f"({err.strerror}): check that directory and build again"
                ) from None
        (builds / f"{target.name}.failed.log").unlink(missing_ok=True)  # an earlier failure's
    except SourceBuildError as err:
        if not log.is_file():
            raise
        # The work directory goes; the log stays for whoever reads the error.
        kept = builds / f"{target.name}.failed.log"
        shutil.copyfile(log, kept)
        raise SourceBuildError(f"{err}\nFull log: {kept}") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return _finished(target, key)


def _finished(target: Path, key: str) -> Built:
    """The cache entry, each program checked against the hash recorded when it
    was built: a changed file in the cache is refused, never put in an image."""
    damaged = SourceBuildError(f"the cached build {target} is damaged: delete it and build again")
    try:
        info = json.loads((target / "build-info.json").read_text())
    except (OSError, ValueError):
        raise damaged from None
    programs = info.get("programs") if isinstance(info, dict) else None
    if not isinstance(programs, dict) or not programs:
        raise damaged
    for path, digest in programs.items():
        try:
            actual = sha256_file(target / "root" / path)
        except OSError:
            raise damaged from None
        if actual != digest:
            raise SourceBuildError(
                f"{target}/root/{path} is not the file that was built (its sha256 changed): "
                f"delete {target} and build again"
            )
    return Built(target / "root", key, info)
