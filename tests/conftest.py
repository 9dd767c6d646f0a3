"""Shared test helpers: where the third-party test corpora live, and a
throw-away owner key.

The corpora are vendored in ``tests/corpora`` (data only, with their
licences and sources in tests/corpora/SOURCES.txt), so a plain clone runs
every test.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tools.owner_key import OwnerKey, make_owner_key

# abspath, not resolve(): a symlinked checkout should still look beside itself.
REPO_ROOT = Path(os.path.abspath(__file__)).parent.parent

#: tpm2-tools' event log fixtures inside the shared corpora.
TPM2_FIXTURES_SUBDIR = Path("tpm2-tools/test/integration/fixtures")


def corpora_dir() -> Path:
    """The third-party test corpora, vendored in the repository."""
    return REPO_ROOT / "tests" / "corpora"


def tpm2_fixtures_dir() -> Path:
    """tpm2-tools' event log fixtures (binary logs and expected YAML)."""
    return corpora_dir() / TPM2_FIXTURES_SUBDIR


def _missing_corpus_reason(path: Path) -> str:
    return f"test corpus not found at {path}: it belongs in the repository ({corpora_dir()})"


@pytest.fixture(scope="session")
def tpm2_fixtures() -> Path:
    """tpm2-tools' fixtures folder; skips the test if the corpus is not checked out."""
    path = tpm2_fixtures_dir()
    if not path.is_dir():
        pytest.skip(_missing_corpus_reason(path))
    return path


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run tests taking ``tpm2_eventlog_bin`` once per event log in the tpm2-tools corpus."""
    if "tpm2_eventlog_bin" not in metafunc.fixturenames:
        return
    folder = tpm2_fixtures_dir()
    if not folder.is_dir():
        skipped = pytest.param(None, marks=pytest.mark.skip(reason=_missing_corpus_reason(folder)))
        metafunc.parametrize("tpm2_eventlog_bin", [skipped])
        return
    # event.bin plus every event-*.bin, found by globbing so new fixtures are covered.
    logs = sorted(folder.glob("event*.bin"))
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
