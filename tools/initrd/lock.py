"""The lock: exact Debian package versions and Python sources with sha256.

`python -m tools.initrd.lock refresh` resolves etc/initrd/packages.toml to the
versions Debian's archive offers today and writes etc/initrd/lock.toml; the
build reads only the lock, so a given lock always gives the same image.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Lock:
    debs: dict[str, DebPin]
    sources: dict[str, SourcePin]

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


def load_lock(path: Path = LOCK_FILE) -> Lock:
    try:
        data = tomllib.loads(path.read_text())
        debs = {d["name"]: DebPin(**d) for d in data.get("deb", [])}
        sources = {s["name"]: SourcePin(**s) for s in data.get("source", [])}
    except FileNotFoundError:
        raise LockError(f"{path} is missing; create it with: {REFRESH_COMMAND}") from None
    except (tomllib.TOMLDecodeError, TypeError, KeyError) as err:
        raise LockError(
            f"{path} is malformed ({err}); recreate it with: {REFRESH_COMMAND}"
        ) from None
    return Lock(debs=debs, sources=sources)


def wanted_packages(path: Path = PACKAGES_FILE) -> tuple[list[str], list[tuple[str, str]]]:
    data = tomllib.loads(path.read_text())
    debs = sorted({name for group in data["debian"].values() for name in group})
    sources = [(s["name"], s["version"]) for s in data["python"]["sources"]]
    return debs, sources


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


def render_lock(debs: list[DebPin], sources: list[SourcePin]) -> str:
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
    return "\n".join(lines)


def refresh(cache: Path) -> None:
    debs, sources = wanted_packages()
    cache.mkdir(parents=True, exist_ok=True)
    pins = _candidates(debs)
    source_pins = [_source_pin(n, v, cache) for n, v in sources]
    tmp = LOCK_FILE.with_suffix(".tmp")
    tmp.write_text(render_lock(pins, source_pins))
    tmp.replace(LOCK_FILE)
    print(f"wrote {LOCK_FILE} ({len(pins)} Debian packages, {len(source_pins)} sources)")


def main(argv: list[str] | None = None) -> int:
    from tools.initrd.cache import default_cache_dir

    parser = argparse.ArgumentParser(prog="python -m tools.initrd.lock")
    parser.add_argument("command", choices=["refresh"])
    parser.add_argument("--cache", type=Path, default=default_cache_dir())
    args = parser.parse_args(argv)
    try:
        refresh(args.cache / "python")
    except LockError as err:
        print(f"lock: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
