"""The download cache against Debian's real archive (tools/initrd/cache.py): a
wrong hash or a vanished version fails clearly and leaves nothing behind."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from tools.initrd.cache import FetchError, fetch_deb, sha256_file
from tools.initrd.lock import REFRESH_COMMAND, DebPin, load_lock

pytestmark = pytest.mark.build

PACKAGE = "libpopt0"  # small (about 40 KiB) and in the lock


@pytest.fixture(scope="module")
def pin() -> DebPin:
    return load_lock().deb(PACKAGE)


def _files(cache: Path) -> list[Path]:
    return sorted(p for p in cache.rglob("*") if not p.is_dir())


def test_good_pin_is_fetched_and_then_served_from_the_cache(pin: DebPin, tmp_path: Path) -> None:
    path = fetch_deb(pin, tmp_path)
    assert path == tmp_path / "debs" / pin.filename
    assert sha256_file(path) == pin.sha256
    assert path.stat().st_size == pin.size
    assert _files(tmp_path) == [path]
    # Second call: the cached file, checked again, no second download.
    assert fetch_deb(pin, tmp_path) == path


def test_wrong_sha256_fails_and_leaves_nothing(pin: DebPin, tmp_path: Path) -> None:
    wrong = dataclasses.replace(pin, sha256="0" * 64)
    with pytest.raises(FetchError, match="sha256") as err:
        fetch_deb(wrong, tmp_path)
    assert pin.sha256 in str(err.value)  # the actual hash is named
    assert REFRESH_COMMAND in str(err.value)
    assert _files(tmp_path) == []
    assert list((tmp_path / "debs").iterdir()) == []  # no leftover temporary folder


def test_corrupted_cached_file_is_removed(pin: DebPin, tmp_path: Path) -> None:
    cached = tmp_path / "debs" / pin.filename
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"not the package")
    with pytest.raises(FetchError, match="sha256"):
        fetch_deb(pin, tmp_path)
    assert not cached.exists()


def test_vanished_version_names_the_refresh_command(pin: DebPin, tmp_path: Path) -> None:
    gone = dataclasses.replace(pin, version="0.0.0-0")
    with pytest.raises(FetchError, match="no longer offers") as err:
        fetch_deb(gone, tmp_path)
    message = str(err.value)
    assert f"{PACKAGE} 0.0.0-0" in message
    assert REFRESH_COMMAND in message
    assert _files(tmp_path) == []
