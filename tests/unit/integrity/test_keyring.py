"""The ROM keyring read with the real gpg: a key gives its fingerprint; a
missing, empty or foreign file gives a plain reason."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime.integrity.keyring import read_keyring
from tools.owner_key import OwnerKey, make_owner_key


@pytest.fixture(scope="module")
def owner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnerKey]:
    key = make_owner_key(tmp_path_factory.mktemp("owner"))
    yield key
    key.remove()


def test_a_key_file_gives_its_fingerprint(owner: OwnerKey) -> None:
    facts = read_keyring(str(owner.public))
    assert len(facts.fingerprints) == 1 and len(facts.fingerprints[0]) == 40
    assert facts.problem == ""


def test_missing_empty_and_foreign_files_say_why(tmp_path: Path) -> None:
    assert "No owner key file" in read_keyring(str(tmp_path / "none.asc")).problem
    empty = tmp_path / "empty.asc"
    empty.write_bytes(b"")
    assert "empty" in read_keyring(str(empty)).problem
    garbage = tmp_path / "garbage.asc"
    garbage.write_text("not a key\n")
    facts = read_keyring(str(garbage))
    assert facts.fingerprints == () and "no OpenPGP public key" in facts.problem
