"""Pinned Debian source packages against Debian's real archive
(tools/initrd/debian_sources.py): kexec-tools (about 330 kB) is fetched with
the private apt, unpacked with Debian's patches, served from the cache the
second time; a wrong sha256 in the lock is refused and nothing is cached."""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import pytest

from tools.initrd import debian_sources
from tools.initrd.debian_sources import DebianSourceError, cached_path, fetch, unpack
from tools.initrd.lock import REFRESH_COMMAND, DebSourcePin, load_lock

pytestmark = pytest.mark.build

PACKAGE = "kexec-tools"  # small, and pinned in the lock


@pytest.fixture(scope="module")
def pin() -> DebSourcePin:
    return load_lock().deb_source(PACKAGE)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # One cache for the module: its private apt lists are fetched once.
    return tmp_path_factory.mktemp("cache")


def test_fetch_unpack_and_cache_hit(
    pin: DebSourcePin, cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = fetch(pin, cache)
    assert paths == [cached_path(cache, f) for f in pin.files]
    assert [p.stat().st_size for p in paths] == [f.size for f in pin.files]

    ran: list[list[str]] = []

    def record(
        argv: list[str], timeout: float, cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        ran.append(argv)
        return subprocess.CompletedProcess(argv, 1, "", "no program may run on a cache hit")

    with monkeypatch.context() as patch:
        patch.setattr(debian_sources, "_run", record)
        assert fetch(pin, cache) == paths
    assert ran == []

    tree = unpack(pin, cache, tmp_path / "src")
    assert tree == tmp_path / "src" / "kexec-tools-2.0.25"
    assert (tree / "kexec" / "kexec.c").is_file()
    assert (tree / "debian" / "changelog").read_text().startswith(f"kexec-tools ({pin.version})")
    # dpkg-source applied Debian's patches (quilt records them in .pc).
    applied = (tree / ".pc" / "applied-patches").read_text().split()
    assert applied == (tree / "debian" / "patches" / "series").read_text().split()
    assert sorted(p.name for p in (tmp_path / "src").iterdir()) == [tree.name]  # no leftovers
    with pytest.raises(DebianSourceError, match="already exists"):
        unpack(pin, cache, tmp_path / "src")


def test_wrong_sha256_in_the_lock_is_refused(pin: DebSourcePin, cache: Path) -> None:
    tarball = pin.files[1]
    wrong = dataclasses.replace(tarball, sha256="0" * 64)
    bad_pin = dataclasses.replace(pin, files=(pin.files[0], wrong, *pin.files[2:]))
    with pytest.raises(DebianSourceError, match="sha256") as err:
        fetch(bad_pin, cache)
    message = str(err.value)
    assert tarball.filename in message and tarball.sha256 in message  # the actual hash
    assert REFRESH_COMMAND in message
    assert not cached_path(cache, wrong).exists()
    assert list((cache / "debian-sources").glob("download-*")) == []


def test_vanished_version_names_the_refresh_command(pin: DebSourcePin, cache: Path) -> None:
    # Another .dsc hash too, so that a cached copy of the real one is no answer.
    dsc = dataclasses.replace(pin.files[0], sha256="1" * 64)
    gone = dataclasses.replace(pin, version="0.0-0", files=(dsc, *pin.files[1:]))
    with pytest.raises(DebianSourceError, match="no longer offers") as err:
        fetch(gone, cache)
    assert f"{PACKAGE} 0.0-0" in str(err.value) and REFRESH_COMMAND in str(err.value)
