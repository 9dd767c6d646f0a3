"""Shared test helpers: where the vendored test data lives, and a
throw-away owner key.

The test data is vendored in ``tests/data`` (data only, with their
licences and sources in tests/data/SOURCES.txt), so a plain clone runs
every test.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tools.owner_key import OwnerKey, make_owner_key

# abspath, not resolve(): a symlinked checkout should still look beside itself.
REPO_ROOT = Path(os.path.abspath(__file__)).parent.parent

#: tpm2-tools' event log fixtures inside the vendored data.
TPM2_FIXTURES_SUBDIR = Path("tpm2-tools/test/integration/fixtures")


def data_dir() -> Path:
    """The test data (third-party corpora and recordings), vendored in the repository."""
    return REPO_ROOT / "tests" / "data"


def data_file(*parts: str | Path) -> Path:
    """A file or folder of the vendored test data; missing, it fails the test loudly (the
    data is part of the repository: ``git checkout -- tests/data`` restores it)."""
    path = data_dir().joinpath(*parts)
    if not path.exists():
        raise FileNotFoundError(
            f"test data missing: {path} (restore it: git checkout -- tests/data)"
        )
    return path


def known_answers() -> dict[str, Any]:
    """The published test vectors (RFC 4226/6238, PCR extends, policy digests)."""
    table: dict[str, Any] = json.loads(data_file("kat", "known_answers.json").read_text())
    return table


def tpm2_fixtures_dir() -> Path:
    """tpm2-tools' event log fixtures (binary logs and expected YAML)."""
    return data_file(TPM2_FIXTURES_SUBDIR)


@pytest.fixture(scope="session")
def tpm2_fixtures() -> Path:
    """tpm2-tools' fixtures folder."""
    return tpm2_fixtures_dir()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run tests taking ``tpm2_eventlog_bin`` once per event log in the tpm2-tools corpus."""
    if "tpm2_eventlog_bin" not in metafunc.fixturenames:
        return
    # event.bin plus every event-*.bin, found by globbing so new fixtures are covered.
    logs = sorted(tpm2_fixtures_dir().glob("event*.bin"))
    metafunc.parametrize("tpm2_eventlog_bin", logs, ids=[path.name for path in logs])


@pytest.fixture(scope="session")
def owner_key(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnerKey]:
    """A throw-away owner key (gpg ed25519, no passphrase), one per test process."""
    key = make_owner_key(tmp_path_factory.mktemp("owner"))
    yield key
    key.remove()


@pytest.fixture(scope="session")
def stranger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnerKey]:
    """Another valid key, not the owner's: its signatures must be refused."""
    key = make_owner_key(tmp_path_factory.mktemp("stranger"))
    yield key
    key.remove()


@pytest.fixture
def scratch_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The runtime's log (runtime.bootlog) in a scratch file, and no details
    (runtime.error_detail) kept from another test; yields the log's path."""
    from runtime import bootlog, error_detail

    log = tmp_path / "runtime.log"
    monkeypatch.setattr(bootlog, "LOG_PATH", str(log))
    error_detail.forget()
    yield log
    error_detail.forget()


@pytest.fixture(autouse=True)
def host_clock_untouchable(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests run as root: a test whose stand-in for the runtime's clock setting missed
    would set this machine's clock (and break every time-based test after it). A test that
    means to set the clock replaces time.clock_settime itself."""

    def refuse(clock: int, seconds: float) -> None:
        raise AssertionError(f"a test tried to set the host's clock (to {seconds})")

    monkeypatch.setattr(time, "clock_settime", refuse)
