"""A gpg that hangs while the firmware's key file is scanned is killed at the
deadline, and the keyring page says so instead of waiting for ever. The gpg
here is a stand-in script: what is tested is the deadline itself."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from runtime.integrity.keyring import read_keyring

DEADLINE_S = 1.0
#: far beyond the deadline: a scan that waits for the script's sleep has hung
HANG_S = 60
#: the deadline, and time to kill gpg and drain its pipes
WITHIN_S = 15.0


def _fake_gpg(tmp_path: Path, answers_version: bool) -> str:
    script = tmp_path / "gpg"
    version = 'case "$*" in *--version*) echo "gpg (GnuPG) 2.2.40"; exit 0;; esac\n'
    script.write_text(
        "#!/bin/sh\n" + (version if answers_version else "") + f"exec sleep {HANG_S}\n"
    )
    script.chmod(0o755)
    return str(script)


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "owner.asc"
    path.write_text("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n-----END PGP PUBLIC KEY BLOCK-----\n")
    return path


@pytest.mark.parametrize("answers_version", [True, False], ids=["scan-hangs", "version-hangs"])
def test_a_hanging_gpg_ends_with_a_plain_problem(
    tmp_path: Path, key_file: Path, answers_version: bool
) -> None:
    gpg = _fake_gpg(tmp_path, answers_version)
    started = time.monotonic()
    facts = read_keyring(str(key_file), gpg_binary=gpg, timeout=DEADLINE_S)
    assert time.monotonic() - started < WITHIN_S
    assert facts.fingerprints == ()
    assert "gpg did not run or did not answer within 1 s" in facts.problem
    assert "owner's key cannot be shown" in facts.problem


def test_a_missing_gpg_is_a_plain_problem_too(key_file: Path, tmp_path: Path) -> None:
    facts = read_keyring(str(key_file), gpg_binary=str(tmp_path / "no-gpg"))
    assert facts.fingerprints == () and "gpg did not run" in facts.problem
