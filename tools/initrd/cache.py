"""The download cache: pinned .deb files and Python sources, checked by sha256.

Downloads go through the ordinary clients (apt-get, and pip run by Debian's
python3.11), so no archive address is written here. A file whose hash does not
match the lock is never used.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from tools.initrd.lock import REFRESH_COMMAND, DebPin, SourcePin, pip_download_argv


@contextlib.contextmanager
def exclusive(lock_file: Path) -> Iterator[None]:
    """One process at a time; the others wait. Builds run side by side (the
    test workers each build an image), and apt's lists or a compile must not be
    shared half-done. The lock goes with the process, so a killed holder leaves
    none behind. Not re-entrant: never nest two on the same file."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_file, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class FetchError(Exception):
    """A pinned file could not be had, or its hash is wrong."""


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "heads-runtime"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _checked(path: Path, sha256: str, what: str) -> Path:
    actual = sha256_file(path)
    if actual != sha256:
        path.unlink()
        raise FetchError(
            f"{what}: sha256 {actual} does not match the lock's {sha256}; the file was "
            "removed from the cache. If the archive really changed, refresh the lock with: "
            f"{REFRESH_COMMAND}"
        )
    return path


def _download(
    directory: Path,
    filename: str,
    sha256: str,
    argv: list[str],
    failure: Callable[[str], FetchError],
) -> Path:
    """The cached file, or run ``argv`` in a private directory to fetch it; checked."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / filename
    if target.exists():
        return _checked(target, sha256, filename)
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        done = subprocess.run(
            argv,
            cwd=tmp,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
            env={**os.environ, "LC_ALL": "C"},  # failure messages are matched in English
        )
        got = list(Path(tmp).iterdir())
        if done.returncode != 0 or len(got) != 1:
            raise failure(done.stderr.strip())
        _checked(got[0], sha256, filename)
        got[0].replace(target)
    return target


def fetch_deb(pin: DebPin, cache: Path) -> Path:
    def failure(message: str) -> FetchError:
        if any(
            s in message for s in ("not found", "Can't find a source", "Unable to locate package")
        ):
            return FetchError(
                f"Debian's archive no longer offers {pin.name} {pin.version} (superseded "
                f"versions are dropped, kernels especially). Refresh the lock with: "
                f"{REFRESH_COMMAND} (then review and commit etc/initrd/lock.toml; a "
                "kernel whose package name changed is renamed in the board file too)"
            )
        return FetchError(
            f"apt-get download {pin.name}={pin.version} failed: "
            f"{message[-600:] or 'no .deb'} (try: apt-get update)"
        )

    return _download(
        cache / "debs",
        pin.filename,
        pin.sha256,
        ["apt-get", "download", "-q", f"{pin.name}={pin.version}"],
        failure,
    )


def fetch_source(pin: SourcePin, cache: Path) -> Path:
    def failure(message: str) -> FetchError:
        return FetchError(f"pip download {pin.name}=={pin.version} failed: {message[-600:]}")

    return _download(
        cache / "python",
        pin.filename,
        pin.sha256,
        pip_download_argv(pin.name, pin.version, "."),
        failure,
    )
