"""Pinned Debian source packages: fetched, checked against the lock, unpacked.

Issue 17's from-source builds (a frozen CPython, the TLS library, tpm2-tss, gnupg,
cryptsetup, kexec-tools, flashrom, busybox) start from Debian 12's own sources,
at the versions etc/initrd/lock.toml pins under [[deb_source]], with every file's
sha256 and size. Files are downloaded with `apt-get source --download-only` run
with a private apt configuration kept under the cache (its own deb-src list for
the host's mirror and suites, its own package lists and state), so the host's
apt is never changed. They are cached by sha256, and `dpkg-source -x` unpacks
them with Debian's patches applied.

    python -m tools.initrd.debian_sources [NAME ...] [--unpack DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tools.initrd.cache import FetchError, default_cache_dir, exclusive, sha256_file
from tools.initrd.lock import (
    LOCK_FILE,
    REFRESH_COMMAND,
    DebSourceFile,
    DebSourcePin,
    LockError,
    load_lock,
)

# The host's Debian 12 archive list (deb822): its mirrors and suites are the
# ones the source packages come from.
HOST_SOURCES = Path("/etc/apt/sources.list.d/debian.sources")
SUBDIR = "debian-sources"
UPDATE_TIMEOUT = 600
DOWNLOAD_TIMEOUT = 1800  # python3.11's sources are about 27 MB
UNPACK_TIMEOUT = 900
QUERY_TIMEOUT = 300
# apt's words (under LC_ALL=C) for a version its fresh index no longer lists,
# and for a file the index lists but the mirror does not serve.
_GONE = ("Unable to find a source package", "Can not find version")
_NOT_SERVED = "404  Not Found"


class DebianSourceError(FetchError):
    """A pinned Debian source package could not be had, checked or unpacked."""


class NotServedError(DebianSourceError):
    """The archive's index lists a file, but the mirror answers 404."""


def cached_path(cache: Path, file: DebSourceFile) -> Path:
    # One directory per content hash keeps the Debian file name, which
    # dpkg-source needs.
    return cache / SUBDIR / "files" / file.sha256 / file.filename


def upstream_version(version: str) -> str:
    """The version without its epoch and Debian revision (1:2.0.25-3 -> 2.0.25)."""
    without_epoch = version.split(":", 1)[1] if ":" in version else version
    return without_epoch.rsplit("-", 1)[0]


# --- deb822: the .dsc, the Sources index, the host's archive list -------------

# A paragraph: (field name, [value on the field's line, continuation lines as written]).
Paragraph = list[tuple[str, list[str]]]


def _paragraphs(lines: Iterable[str], what: str) -> list[Paragraph]:
    paragraphs: list[Paragraph] = []
    current: Paragraph = []
    for line in lines:
        if line.startswith("#"):
            continue
        if not line.strip():
            if current:
                paragraphs.append(current)
            current = []
        elif line[0] in " \t":
            if not current:
                raise DebianSourceError(f"{what}: continuation line before any field: {line!r}")
            current[-1][1].append(line)
        else:
            name, colon, value = line.partition(":")
            if not colon:
                raise DebianSourceError(f"{what}: not a deb822 field: {line!r}")
            current.append((name.strip(), [value.strip()]))
    if current:
        paragraphs.append(current)
    return paragraphs


def _field(paragraph: Paragraph, name: str) -> list[str] | None:
    # deb822 field names are case-insensitive.
    return next((v for n, v in paragraph if n.lower() == name.lower()), None)


def _checksums(value: list[str], what: str) -> tuple[DebSourceFile, ...]:
    """A Checksums-Sha256 field: one "sha256 size filename" per continuation line."""
    files = []
    for entry in value[1:]:
        parts = entry.split()
        if len(parts) != 3 or not parts[1].isdigit():
            raise DebianSourceError(f"{what}: bad Checksums-Sha256 line {entry.strip()!r}")
        try:
            files.append(DebSourceFile(filename=parts[2], sha256=parts[0], size=int(parts[1])))
        except ValueError as err:
            raise DebianSourceError(f"{what}: bad Checksums-Sha256 line: {err}") from None
    if not files:
        raise DebianSourceError(f"{what}: Checksums-Sha256 lists no files")
    return tuple(files)


@dataclass(frozen=True)
class Dsc:
    source: str
    version: str
    files: tuple[DebSourceFile, ...]  # every file but the .dsc itself


def _signed_text(text: str) -> list[str]:
    """The lines a clearsigned .dsc signs (or all of an unsigned one)."""
    lines = text.splitlines()
    if not lines or lines[0] != "-----BEGIN PGP SIGNED MESSAGE-----":
        return lines
    try:
        start = lines.index("") + 1  # armor headers ("Hash: SHA512") end at a blank line
        end = lines.index("-----BEGIN PGP SIGNATURE-----")
    except ValueError:
        raise DebianSourceError("the .dsc's PGP armor is incomplete") from None
    # OpenPGP dash-escapes signed lines that begin with a dash.
    return [line[2:] if line.startswith("- ") else line for line in lines[start:end]]


def parse_dsc(text: str) -> Dsc:
    paragraphs = _paragraphs(_signed_text(text), "the .dsc")
    if len(paragraphs) != 1:
        raise DebianSourceError(f"the .dsc has {len(paragraphs)} paragraphs, not one")
    values: dict[str, list[str]] = {}
    for name in ("Source", "Version", "Checksums-Sha256"):
        value = _field(paragraphs[0], name)
        if value is None:
            raise DebianSourceError(f"the .dsc has no {name} field")
        values[name] = value
    files = _checksums(values["Checksums-Sha256"], "the .dsc")
    return Dsc(values["Source"][0], values["Version"][0], files)


def check_dsc(pin: DebSourcePin, text: str) -> None:
    """The .dsc names the pinned package and version, and its Checksums-Sha256
    list exactly the lock's other files (a hand-edited lock fails here)."""
    dsc = parse_dsc(text)
    if (dsc.source, dsc.version) != (pin.name, pin.version):
        raise DebianSourceError(
            f"{pin.dsc.filename} is {dsc.source} {dsc.version}, the lock says "
            f"{pin.name} {pin.version}; refresh the lock with: {REFRESH_COMMAND}"
        )
    locked = {f for f in pin.files if f != pin.dsc}
    if set(dsc.files) != locked:
        differ = sorted({f.filename for f in set(dsc.files) ^ locked})
        raise DebianSourceError(
            f"{LOCK_FILE.name} disagrees with the Checksums-Sha256 of {pin.dsc.filename} "
            f"about {', '.join(differ)}; refresh the lock with: {REFRESH_COMMAND}"
        )


def deb_src_list(host_text: str) -> str:
    """deb822 entries fetching sources from the host's Debian mirrors and suites:
    each enabled `Types: deb` entry again, as `Types: deb-src`."""
    out: list[str] = []
    for paragraph in _paragraphs(host_text.splitlines(), str(HOST_SOURCES)):
        types = _field(paragraph, "Types") or [""]
        enabled = _field(paragraph, "Enabled") or ["yes"]
        if "deb" not in types[0].split() or enabled[0].lower() == "no":
            continue
        out.append("Types: deb-src")
        for name, value in paragraph:
            if name.lower() not in ("types", "enabled"):
                out += [f"{name}: {value[0]}".rstrip(), *value[1:]]
        out.append("")
    if not out:
        raise DebianSourceError(
            f"{HOST_SOURCES} has no enabled 'Types: deb' entry to take the mirror and "
            "suites from (this expects a Debian 12 host's archive list)"
        )
    return "\n".join(out)


def mismatch(path: Path, want: DebSourceFile) -> str | None:
    """What differs between a file and its pin (size first: it is free), or None."""
    size = path.stat().st_size
    if size != want.size:
        return f"size {size} does not match the lock's {want.size}"
    actual = sha256_file(path)
    if actual != want.sha256:
        return f"sha256 {actual} does not match the lock's {want.sha256}"
    return None


def _refuse(pin: DebSourcePin, file: DebSourceFile, problem: str, note: str) -> DebianSourceError:
    return DebianSourceError(
        f"{file.filename} (Debian source package {pin.name} {pin.version}): {problem}; "
        f"{note}. If the archive really changed, refresh the lock with: {REFRESH_COMMAND}"
    )


# --- the private apt ---------------------------------------------------------


def _run(
    argv: list[str], timeout: float, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run with apt's and dpkg's messages in English (they are matched here);
    callers check the result. A missing program or a hang is said in words."""
    try:
        return subprocess.run(
            argv,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env={**os.environ, "LC_ALL": "C"},
        )
    except subprocess.TimeoutExpired:
        raise DebianSourceError(
            f"{argv[0]} did not finish within {timeout:.0f} s (the mirror may be slow "
            "or unreachable): try again later"
        ) from None
    except OSError as err:
        raise DebianSourceError(
            f"{argv[0]} could not be run ({err.strerror}): install apt and dpkg-dev "
            "(tools/bootstrap.sh does)"
        ) from None


def _tail(done: subprocess.CompletedProcess[str]) -> str:
    return (done.stderr.strip() or done.stdout.strip())[-800:]


_UPDATED: set[Path] = set()  # private apt roots whose lists this process refreshed


class PrivateApt:
    """apt-get and apt-cache with their own sources, lists and state under the
    cache; of the host's apt only the keyring and apt.conf.d are read."""

    def __init__(self, cache: Path, host_sources: Path = HOST_SOURCES) -> None:
        self.root = cache / SUBDIR / "apt"
        self.host_sources = host_sources

    def locked(self) -> contextlib.AbstractContextManager[None]:
        """Hold while using the private lists: apt refuses a second process."""
        # beside the cache's tree, not in it: its listing is the cache's content
        return exclusive(self.root.parent.with_name(f"{SUBDIR}.locks") / "apt.lock")

    def options(self) -> list[str]:
        r = self.root
        settings = {
            "Dir::Etc::SourceList": r / "etc" / "sources.list",
            "Dir::Etc::SourceParts": r / "etc" / "sources.list.d",
            "Dir::Etc::Preferences": r / "etc" / "preferences",
            "Dir::Etc::PreferencesParts": r / "etc" / "preferences.d",
            "Dir::State": r / "state",
            "Dir::State::status": r / "state" / "status",
            "Dir::State::Lists": r / "lists",
            "Dir::Cache": r / "cache",
        }
        return [arg for key, value in settings.items() for arg in ("-o", f"{key}={value}")]

    def _prepare(self) -> None:
        try:
            host_text = self.host_sources.read_text()
        except OSError as err:
            raise DebianSourceError(
                f"cannot read {self.host_sources} ({err.strerror}): the Debian 12 host's "
                "archive list, whose mirror and suites the source packages come from"
            ) from None
        etc = self.root / "etc"
        for directory in (etc / "sources.list.d", etc / "preferences.d", self.root / "state",
                          self.root / "lists" / "partial", self.root / "cache"):  # fmt: skip
            directory.mkdir(parents=True, exist_ok=True)
        (etc / "sources.list").write_text("")
        (self.root / "state" / "status").write_text("")  # no installed package matters here
        (etc / "sources.list.d" / "debian-src.sources").write_text(deb_src_list(host_text))

    def update(self) -> None:
        """Fetch the Sources indexes, once per process: a fresh index tells a
        dropped version from a network failure."""
        if self.root in _UPDATED:
            return
        self._prepare()
        done = _run(["apt-get", *self.options(), "-q", "update"], UPDATE_TIMEOUT)
        # apt-get update can exit 0 with a mirror unreachable; "E:" and
        # "W: Failed to fetch" say so.
        failed = [
            line
            for line in (done.stdout + done.stderr).splitlines()
            if line.startswith(("E:", "W: Failed to fetch"))
        ]
        if done.returncode != 0 or failed:
            raise DebianSourceError(
                f"apt-get update of the source indexes (private lists under {self.root}) "
                f"failed: {' '.join(failed)[-800:] or _tail(done)} (check the network and "
                f"the mirrors in {self.host_sources})"
            )
        _UPDATED.add(self.root)

    def call(
        self, tool: str, args: list[str], timeout: float, cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        """apt-get or apt-cache with the private configuration; the caller checks."""
        self.update()
        return _run([tool, *self.options(), *args], timeout, cwd)

    def run(self, tool: str, args: list[str], timeout: float, cwd: Path | None = None) -> str:
        done = self.call(tool, args, timeout, cwd)
        if done.returncode != 0:
            raise DebianSourceError(f"{tool} {' '.join(args)} failed: {_tail(done)}")
        return done.stdout


def offered(names: list[str], cache: Path) -> dict[str, dict[str, DebSourcePin]]:
    """Every version of each source package that the archive offers now, pinned
    from its Sources index (signed, checked by apt), which lists every file with
    its sha256 and size, the .dsc included."""
    if not names:
        return {}
    apt = PrivateApt(cache)
    with apt.locked():
        shown = apt.run("apt-cache", ["showsrc", "--only-source", *names], QUERY_TIMEOUT)
    found: dict[str, dict[str, DebSourcePin]] = {name: {} for name in names}
    for paragraph in _paragraphs(shown.splitlines(), "apt-cache showsrc"):
        package, version = _field(paragraph, "Package"), _field(paragraph, "Version")
        checksums = _field(paragraph, "Checksums-Sha256")
        if package and version and checksums and package[0] in found:
            what = f"the Sources index entry of {package[0]} {version[0]}"
            files = _checksums(checksums, what)
            # The .dsc first: the order fetch() returns and unpack() needs.
            ordered = sorted(files, key=lambda f: not f.filename.endswith(".dsc"))
            try:
                pin = DebSourcePin(package[0], version[0], tuple(ordered))
            except ValueError as err:
                raise DebianSourceError(f"{what}: {err}") from None
            found[package[0]].setdefault(version[0], pin)
    missing = [name for name, versions in found.items() if not versions]
    if missing:
        raise DebianSourceError(
            f"Debian's archive has no source package {', '.join(missing)} (check the "
            "names under [debian_sources] in etc/initrd/packages.toml)"
        )
    return found


def _apt_source(
    apt: PrivateApt, name: str, version: str, into: Path, dsc_only: bool = False
) -> None:
    """`apt-get source --download-only NAME=VERSION` into ``into`` (only the
    .dsc with ``dsc_only``); apt checks each file against the signed index."""
    options = ["--dsc-only"] if dsc_only else []
    args = ["-q", "source", "--download-only", "--only-source", *options, f"{name}={version}"]
    done = apt.call("apt-get", args, DOWNLOAD_TIMEOUT, cwd=into)
    if done.returncode == 0:
        return
    if any(words in done.stderr for words in _GONE):
        raise DebianSourceError(
            f"Debian's archive no longer offers the source package {name} {version} "
            f"(superseded versions are dropped). Refresh the lock with: {REFRESH_COMMAND} "
            "(then review and commit etc/initrd/lock.toml)"
        )
    if _NOT_SERVED in done.stderr:
        raise NotServedError(
            f"the mirror in {apt.host_sources} answers 404 Not Found for "
            f"{', '.join(_failed_files(done.stderr)) or 'files'} of {name} {version}, "
            "which its fresh index lists: the mirror is behind or partial. Try again "
            "later, or point that file at another Debian mirror."
        )
    raise DebianSourceError(f"apt-get {' '.join(args)} failed: {_tail(done)}")


def _failed_files(message: str) -> list[str]:
    # "E: Failed to fetch http://.../name_1.0%7e1.dsc  404  Not Found [IP: ...]"
    words = [line.split() for line in message.splitlines()]
    return [
        urllib.parse.unquote(w[4].rsplit("/", 1)[-1])
        for w in words
        if w[:4] == ["E:", "Failed", "to", "fetch"] and len(w) > 4 and "://" in w[4]
    ]


def _store(pin: DebSourcePin, downloaded: Path, cache: Path) -> None:
    """Check freshly downloaded files against the pin, then move them into the
    cache; a refused download leaves nothing there."""
    got = sorted(p.name for p in downloaded.iterdir())
    want = sorted(f.filename for f in pin.files)
    if got != want:
        raise DebianSourceError(
            f"apt-get source {pin.name}={pin.version} gave {', '.join(got) or 'nothing'}, "
            f"the lock lists {', '.join(want)}. If the archive really changed, refresh "
            f"the lock with: {REFRESH_COMMAND}"
        )
    for file in pin.files:
        problem = mismatch(downloaded / file.filename, file)
        if problem:
            raise _refuse(pin, file, problem, "nothing was cached")
    check_dsc(pin, (downloaded / pin.dsc.filename).read_text())
    for file in pin.files:
        target = cached_path(cache, file)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(downloaded / file.filename, target)


def fetch(pin: DebSourcePin, cache: Path, host_sources: Path = HOST_SOURCES) -> list[Path]:
    """Every file of the pinned source package, from the cache or downloaded,
    checked against the lock (size, sha256, the .dsc's Checksums-Sha256); the
    .dsc first."""
    paths = [cached_path(cache, f) for f in pin.files]
    if not all(p.is_file() for p in paths):
        apt = PrivateApt(cache, host_sources)
        with apt.locked():
            if not all(p.is_file() for p in paths):  # another process may have fetched it
                apt.update()
                with tempfile.TemporaryDirectory(dir=cache / SUBDIR, prefix="download-") as tmp:
                    _apt_source(apt, pin.name, pin.version, Path(tmp))
                    _store(pin, Path(tmp), cache)
    for file, path in zip(pin.files, paths, strict=True):
        problem = mismatch(path, file)
        if problem:
            path.unlink()
            raise _refuse(pin, file, problem, "the file was removed from the cache")
    check_dsc(pin, cached_path(cache, pin.dsc).read_text())
    return paths


def confirm_dsc(pin: DebSourcePin, cache: Path) -> bool:
    """Download the .dsc of a pin taken from the index and check it against the
    pin (its bytes, and its Checksums-Sha256 against the other files); it is
    then cached. False if the mirror does not serve it (the index is signed and
    still vouches for the pin; fetch() checks the .dsc when it comes)."""
    apt = PrivateApt(cache)
    with apt.locked(), tempfile.TemporaryDirectory(dir=cache / SUBDIR, prefix="download-") as tmp:
        apt.update()
        try:
            _apt_source(apt, pin.name, pin.version, Path(tmp), dsc_only=True)
        except NotServedError:
            return False
        path = Path(tmp) / pin.dsc.filename
        if not path.is_file():
            raise DebianSourceError(f"apt-get source --dsc-only gave no {pin.dsc.filename}")
        problem = mismatch(path, pin.dsc)
        if problem:
            raise _refuse(pin, pin.dsc, problem, "nothing was cached")
        check_dsc(pin, path.read_text())
        target = cached_path(cache, pin.dsc)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)
    return True


def unpack(pin: DebSourcePin, cache: Path, into: Path) -> Path:
    """Fetch the package and unpack it with `dpkg-source -x` (Debian's patches
    applied) into ``into``/NAME-UPSTREAMVERSION, which must not exist yet."""
    paths = fetch(pin, cache)
    target = into / f"{pin.name}-{upstream_version(pin.version)}"
    if target.exists():
        raise DebianSourceError(f"{target} already exists; remove it or unpack elsewhere")
    into.mkdir(parents=True, exist_ok=True)
    # Unpacked beside the target, then renamed: an interrupted unpack leaves no
    # half tree under the final name.
    with tempfile.TemporaryDirectory(dir=into, prefix=f".{pin.name}-unpack-") as tmp:
        links = Path(tmp) / "files"
        links.mkdir()
        for path in paths:  # dpkg-source wants the files side by side under their names
            (links / path.name).symlink_to(path)
        tree = Path(tmp) / "tree"
        # The lock's sha256 pins these exact bytes, so the maintainer's signature
        # (whose keyring the host lacks: dpkg-source only warns) adds nothing.
        # --no-copy: no copies of the tarballs beside the tree.
        done = _run(
            ["dpkg-source", "--no-copy", "-x", pin.dsc.filename, str(tree)],
            UNPACK_TIMEOUT,
            cwd=links,
        )
        if done.returncode != 0:
            raise DebianSourceError(f"dpkg-source -x {pin.dsc.filename} failed: {_tail(done)}")
        tree.replace(target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.initrd.debian_sources",
        description="Fetch (and optionally unpack) the Debian source packages the lock pins.",
    )
    parser.add_argument("names", nargs="*", help="source packages (default: every pinned one)")
    parser.add_argument("--unpack", type=Path, metavar="DIR", help="unpack each into DIR")
    parser.add_argument("--cache", type=Path, default=default_cache_dir())
    args = parser.parse_args(argv)
    try:
        lock = load_lock()
        pins = [lock.deb_source(n) for n in args.names] or list(lock.deb_sources.values())
        for pin in pins:
            if args.unpack:
                print(unpack(pin, args.cache, args.unpack))
            else:
                print(fetch(pin, args.cache)[0])
    except (LockError, FetchError) as err:
        print(f"debian-sources: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
