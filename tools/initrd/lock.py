"""The lock: exact Debian package versions, Debian source packages and Python
sources, with sha256.

`python -m tools.initrd.lock refresh` resolves etc/initrd/packages.toml to the
versions Debian's archive offers today and writes etc/initrd/lock.toml; the
build reads only the lock, so a given lock always gives the same image.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import re
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES_FILE = ROOT / "etc" / "initrd" / "packages.toml"
LOCK_FILE = ROOT / "etc" / "initrd" / "lock.toml"
REFRESH_COMMAND = ".venv/bin/python -m tools.initrd.lock refresh"
# Debian's own interpreter: tpm2-pytss is built with it, and pip run by it
# fetches the pinned sources.
DEBIAN_PYTHON = "/usr/bin/python3.11"


class LockError(Exception):
    """The lock file is missing, malformed, or does not cover a request."""


@dataclass(frozen=True)
class DebPin:
    name: str
    version: str
    arch: str
    sha256: str
    size: int

    @property
    def filename(self) -> str:
        # apt-get download's naming: the epoch's colon is %-escaped.
        return f"{self.name}_{self.version.replace(':', '%3a')}_{self.arch}.deb"


@dataclass(frozen=True)
class SourcePin:
    name: str
    version: str
    filename: str
    sha256: str


_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class DebSourceFile:
    """One file of a Debian source package (.dsc, orig tarball, debian tarball)."""

    filename: str
    sha256: str
    size: int

    def __post_init__(self) -> None:
        # Both become path components in the cache: a hostile or mistyped lock
        # must not name a file outside it.
        if not _SHA256.fullmatch(self.sha256):
            raise ValueError(f"{self.filename}: sha256 {self.sha256!r} is not 64 hex digits")
        if "/" in self.filename or self.filename.startswith(".") or not self.filename:
            raise ValueError(f"source file name {self.filename!r} is not a plain file name")
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 0:
            raise ValueError(f"{self.filename}: size {self.size!r} is not a byte count")


@dataclass(frozen=True)
class DebSourcePin:
    """A Debian source package at one exact version, every file of it pinned."""

    name: str
    version: str
    files: tuple[DebSourceFile, ...]

    def __post_init__(self) -> None:
        # Both end up in paths and in apt's NAME=VERSION argument: a "../" or
        # a leading "-" must never get that far.
        if not re.fullmatch(r"[a-z0-9][a-z0-9+.-]+", self.name):
            raise ValueError(f"{self.name!r} is not a Debian source package name")
        if not re.fullmatch(r"[0-9][A-Za-z0-9.+~:-]*", self.version):
            raise ValueError(f"{self.name}: {self.version!r} is not a Debian version")
        if len([f for f in self.files if f.filename.endswith(".dsc")]) != 1:
            raise ValueError(f"source package {self.name} must list exactly one .dsc file")

    @property
    def dsc(self) -> DebSourceFile:
        return next(f for f in self.files if f.filename.endswith(".dsc"))

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)


@dataclass(frozen=True)
class Lock:
    debs: dict[str, DebPin]
    sources: dict[str, SourcePin]
    deb_sources: dict[str, DebSourcePin] = field(default_factory=dict)

    def deb(self, name: str) -> DebPin:
        try:
            return self.debs[name]
        except KeyError:
            raise LockError(
                f"package {name} is not in {LOCK_FILE.name}; add it to "
                f"{PACKAGES_FILE.name} and run: {REFRESH_COMMAND}"
            ) from None

    def source(self, name: str) -> SourcePin:
        try:
            return self.sources[name]
        except KeyError:
            raise LockError(f"Python source {name} is not in {LOCK_FILE.name}") from None

    def deb_source(self, name: str) -> DebSourcePin:
        try:
            return self.deb_sources[name]
        except KeyError:
            raise LockError(
                f"Debian source package {name} is not in {LOCK_FILE.name}; add it to "
                f"[debian_sources] in {PACKAGES_FILE.name} and run: {REFRESH_COMMAND}"
            ) from None


def _deb_source_pin(entry: dict[str, object]) -> DebSourcePin:
    unknown = sorted(set(entry) - {"name", "version", "files"})
    if unknown:
        raise TypeError(f"[[deb_source]] has unknown keys {unknown}")
    name, version, files = entry["name"], entry["version"], entry["files"]
    if not (isinstance(name, str) and isinstance(version, str) and isinstance(files, list)):
        raise TypeError("[[deb_source]] needs name and version strings and a files list")
    return DebSourcePin(name, version, tuple(DebSourceFile(**f) for f in files))


def load_lock(path: Path = LOCK_FILE) -> Lock:
    try:
        data = tomllib.loads(path.read_text())
        debs = {d["name"]: DebPin(**d) for d in data.get("deb", [])}
        sources = {s["name"]: SourcePin(**s) for s in data.get("source", [])}
        deb_sources = {d["name"]: _deb_source_pin(d) for d in data.get("deb_source", [])}
    except FileNotFoundError:
        raise LockError(f"{path} is missing; create it with: {REFRESH_COMMAND}") from None
    except (ValueError, TypeError, KeyError) as err:  # TOMLDecodeError is a ValueError
        raise LockError(
            f"{path} is malformed ({err}); recreate it with: {REFRESH_COMMAND}"
        ) from None
    return Lock(debs=debs, sources=sources, deb_sources=deb_sources)


def wanted_packages(path: Path = PACKAGES_FILE) -> tuple[list[str], list[tuple[str, str]]]:
    data = tomllib.loads(path.read_text())
    debs = sorted({name for group in data["debian"].values() for name in group})
    sources = [(s["name"], s["version"]) for s in data["python"]["sources"]]
    return debs, sources


def wanted_debian_sources(path: Path = PACKAGES_FILE) -> list[str]:
    data = tomllib.loads(path.read_text())
    return sorted(set(data.get("debian_sources", {}).get("names", [])))


def pip_download_argv(name: str, version: str, into: str) -> list[str]:
    """pip, run by Debian's interpreter, fetching one pinned source (never a
    wheel, none of its dependencies) into the directory ``into``."""
    return [
        DEBIAN_PYTHON,
        "-m",
        "pip",
        "download",
        "-q",
        "--no-deps",
        "--no-binary",
        ":all:",
        "--no-build-isolation",
        "--disable-pip-version-check",
        f"{name}=={version}",
        "-d",
        into,
    ]


def _run(argv: list[str], timeout: float, cwd: Path | None = None) -> str:
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, cwd=cwd, check=False
    )
    if done.returncode != 0:
        raise LockError(f"{' '.join(argv[:3])} ... failed: {done.stderr.strip()[-800:]}")
    return done.stdout


def _candidates(names: list[str]) -> list[DebPin]:
    """The versions apt would install now, with the sha256 from the archive's index."""
    candidates: dict[str, str] = {}
    current = ""
    for line in _run(["apt-cache", "policy", *names], 300).splitlines():
        if line and not line.startswith(" "):
            current = line.rstrip(":")
        elif line.strip().startswith("Candidate:"):
            candidates[current] = line.split(":", 1)[1].strip()
    for name in names:
        if candidates.get(name, "(none)") == "(none)":
            raise LockError(f"Debian offers no package {name} (run apt-get update?)")
    pins: dict[str, DebPin] = {}
    shown = _run(["apt-cache", "show", *(f"{n}={candidates[n]}" for n in names)], 300)
    for stanza in shown.split("\n\n"):
        fields = dict(
            line.split(": ", 1)
            for line in stanza.splitlines()
            if ": " in line and not line.startswith(" ")
        )
        name = fields.get("Package", "")
        if fields.get("Version") == candidates.get(name) and "SHA256" in fields:
            pins.setdefault(
                name,
                DebPin(
                    name=name,
                    version=candidates[name],
                    arch=fields["Architecture"],
                    sha256=fields["SHA256"],
                    size=int(fields["Size"]),
                ),
            )
    for name in names:
        if name not in pins:
            raise LockError(f"apt-cache shows no sha256 for {name} {candidates[name]}")
    return [pins[name] for name in names]


def _source_pin(name: str, version: str, cache: Path) -> SourcePin:
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        _run(pip_download_argv(name, version, tmp), 600)
        (sdist,) = Path(tmp).iterdir()
        digest = hashlib.sha256(sdist.read_bytes()).hexdigest()
        sdist.replace(cache / sdist.name)
    return SourcePin(name=name, version=version, filename=sdist.name, sha256=digest)


def _stanzas(text: str) -> list[dict[str, str]]:
    return [
        dict(
            line.split(": ", 1)
            for line in stanza.splitlines()
            if ": " in line and not line.startswith(" ")
        )
        for stanza in text.split("\n\n")
    ]


def _built_from(debs: Sequence[DebPin]) -> dict[str, set[str]]:
    """Source package -> the source versions the locked binaries were built from
    ("Source: busybox (1:1.35.0-4+deb12u1)" for a binNMU, else the binary's own)."""
    wanted = {(d.name, d.version) for d in debs}
    shown = _run(["apt-cache", "show", *sorted({d.name for d in debs})], 300)
    built: dict[str, set[str]] = {}
    for fields in _stanzas(shown):
        package, version = fields.get("Package", ""), fields.get("Version", "")
        if (package, version) in wanted:
            source, _, paren = fields.get("Source", package).partition(" (")
            built.setdefault(source, set()).add(paren.rstrip(")") or version)
    return built


def version_holds(a: str, relation: str, b: str) -> bool:
    """``a relation b`` in dpkg's own ordering (epochs, ~, +debNuM): not worth
    re-implementing. ``relation``: lt, le, eq, ge, gt."""
    try:
        done = subprocess.run(
            ["dpkg", "--compare-versions", a, relation, b],
            capture_output=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise LockError(f"dpkg could not compare versions {a} and {b}: {err}") from None
    if done.returncode not in (0, 1):
        raise LockError(f"dpkg --compare-versions {a} {relation} {b} failed")
    return done.returncode == 0


def _version_order(a: str, b: str) -> int:
    return -1 if version_holds(a, "lt", b) else 1 if version_holds(a, "gt", b) else 0


def _deb_source_pins(names: list[str], debs: Sequence[DebPin], cache: Path) -> list[DebSourcePin]:
    """Each source package at the version the locked binaries were built from,
    else the newest the archive offers; of those, the first whose .dsc the
    mirror serves (a mirror that lags behind its index cannot build the newest,
    and a pin nobody can fetch helps no build)."""
    from tools.initrd import debian_sources

    offered = debian_sources.offered(names, cache)
    built = _built_from(debs) if names else {}
    pins = []
    for name in names:
        versions = list(offered[name])
        order = sorted(versions, key=functools.cmp_to_key(_version_order), reverse=True)
        preferred = [v for v in order if v in built.get(name, set())]
        candidates = preferred + [v for v in order if v not in preferred]
        chosen = next(
            (v for v in candidates if debian_sources.confirm_dsc(offered[name][v], cache)), None
        )
        why = "as the locked binaries" if chosen in preferred else "the newest this mirror serves"
        if chosen is None:
            chosen = candidates[0]
            why = "this mirror serves no version's .dsc: pinned from the signed index alone"
        elif chosen != candidates[0]:
            why += f"; {candidates[0]} is in the index, but its .dsc is not served"
        pin = offered[name][chosen]
        print(f"  {name} {chosen} ({why}): {len(pin.files)} files, {pin.size} bytes")
        pins.append(pin)
    return pins


def render_lock(
    debs: Sequence[DebPin],
    sources: Sequence[SourcePin],
    deb_sources: Sequence[DebSourcePin] = (),
) -> str:
    lines = [
        "# Generated by: " + REFRESH_COMMAND,
        "# Exact Debian 12 packages and Python sources of the initramfs. Review",
        "# the diff and commit it: the build is reproducible for a given lock.",
        "",
    ]
    for d in debs:
        lines += [
            "[[deb]]",
            f'name = "{d.name}"',
            f'version = "{d.version}"',
            f'arch = "{d.arch}"',
            f'sha256 = "{d.sha256}"',
            f"size = {d.size}",
            "",
        ]
    for s in sources:
        lines += [
            "[[source]]",
            f'name = "{s.name}"',
            f'version = "{s.version}"',
            f'filename = "{s.filename}"',
            f'sha256 = "{s.sha256}"',
            "",
        ]
    for p in deb_sources:
        lines += ["[[deb_source]]", f'name = "{p.name}"', f'version = "{p.version}"', "files = ["]
        lines += [
            f'    {{ filename = "{f.filename}", sha256 = "{f.sha256}", size = {f.size} }},'
            for f in p.files
        ]
        lines += ["]", ""]
    return "\n".join(lines)


def refresh(cache: Path, debian_sources_only: bool = False) -> None:
    """Re-pin everything, or (``debian_sources_only``) only the Debian source
    packages, keeping every other pin of the current lock as it is."""
    cache.mkdir(parents=True, exist_ok=True)
    if debian_sources_only:
        current = load_lock()
        pins, source_pins = list(current.debs.values()), list(current.sources.values())
    else:
        debs, sources = wanted_packages()
        pins = _candidates(debs)
        (cache / "python").mkdir(exist_ok=True)
        source_pins = [_source_pin(n, v, cache / "python") for n, v in sources]
    deb_source_pins = _deb_source_pins(wanted_debian_sources(), pins, cache)
    tmp = LOCK_FILE.with_suffix(".tmp")
    tmp.write_text(render_lock(pins, source_pins, deb_source_pins))
    tmp.replace(LOCK_FILE)
    print(
        f"wrote {LOCK_FILE} ({len(pins)} Debian packages, {len(source_pins)} sources, "
        f"{len(deb_source_pins)} Debian source packages)"
    )


def prune(lock_file: Path = LOCK_FILE, packages_file: Path = PACKAGES_FILE) -> list[str]:
    """Drop the pins packages.toml no longer names; every other pin stays as it
    is (no network, no new version). Returns the names dropped."""
    current = load_lock(lock_file)
    debs, sources = wanted_packages(packages_file)
    wanted_debs, wanted_sources = set(debs), {name for name, _ in sources}
    wanted_deb_sources = set(wanted_debian_sources(packages_file))
    kept_debs = [p for p in current.debs.values() if p.name in wanted_debs]
    kept_sources = [p for p in current.sources.values() if p.name in wanted_sources]
    kept_deb_sources = [p for p in current.deb_sources.values() if p.name in wanted_deb_sources]
    missing = sorted(wanted_debs - set(current.debs)) + sorted(
        wanted_deb_sources - set(current.deb_sources)
    )
    if missing:
        raise LockError(
            f"packages.toml names {', '.join(missing)}, which the lock has no pin for: "
            "run `refresh` instead"
        )
    dropped = sorted(
        (set(current.debs) - wanted_debs)
        | (set(current.sources) - wanted_sources)
        | (set(current.deb_sources) - wanted_deb_sources)
    )
    tmp = lock_file.with_suffix(".tmp")
    tmp.write_text(render_lock(kept_debs, kept_sources, kept_deb_sources))
    tmp.replace(lock_file)
    return dropped


def main(argv: list[str] | None = None) -> int:
    from tools.initrd.cache import FetchError, default_cache_dir

    parser = argparse.ArgumentParser(prog="python -m tools.initrd.lock")
    parser.add_argument(
        "command",
        choices=["refresh", "prune"],
        help="refresh: re-pin everything at today's versions; prune: only drop the pins "
        "packages.toml no longer names",
    )
    parser.add_argument("--cache", type=Path, default=default_cache_dir())
    parser.add_argument(
        "--debian-sources-only",
        action="store_true",
        help="re-pin only [debian_sources]; keep every other pin of the lock",
    )
    args = parser.parse_args(argv)
    try:
        if args.command == "prune":
            print(f"dropped: {' '.join(prune()) or 'nothing'}")
        else:
            refresh(args.cache, args.debian_sources_only)
    except (LockError, FetchError) as err:
        print(f"lock: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
