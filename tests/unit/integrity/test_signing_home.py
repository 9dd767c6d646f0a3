"""The GnuPG home a signing uses, made with the real gpg: the test image's
secret key when the firmware holds one, else the public key (the card holds
the secret); a damaged key file is refused in plain words, leaving nothing."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime.integrity.gpg_signer import GpgSigner, remove_signing_home, signing_home
from runtime.integrity.sign_boot import SigningError
from tools.owner_key import OwnerKey


@pytest.fixture
def work_dir() -> Iterator[Path]:
    # gpg-agent's socket path must stay short: the homes go under /tmp
    path = Path(tempfile.mkdtemp(prefix="sh-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _secret_keys(home: str, gpg: str) -> str:
    done = subprocess.run(
        [gpg, "--homedir", home, "--batch", "--with-colons", "--list-secret-keys"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    return done.stdout


def test_a_test_image_signs_with_its_secret_key(
    owner_key: OwnerKey, work_dir: Path, tmp_path: Path
) -> None:
    secret = owner_key.export_secret(tmp_path / "owner-secret.asc")
    home, gpg = signing_home(str(owner_key.public), str(secret), str(work_dir))
    try:
        assert Path(home).parent == work_dir and Path(home).stat().st_mode & 0o777 == 0o700
        assert "sec:" in _secret_keys(home, gpg)
        signature = GpgSigner(home, gpg_binary=gpg).sign(b"kexec lists\n")
        assert signature.startswith(b"-----BEGIN PGP SIGNATURE-----")
    finally:
        remove_signing_home(home)
    assert not Path(home).exists()


def test_without_a_secret_key_file_only_the_public_key_is_loaded(
    owner_key: OwnerKey, work_dir: Path, tmp_path: Path
) -> None:
    home, gpg = signing_home(str(owner_key.public), str(tmp_path / "none.asc"), str(work_dir))
    try:
        assert "sec:" not in _secret_keys(home, gpg)  # no card here: nothing to sign with
        with pytest.raises(SigningError, match="secret key is not here"):
            GpgSigner(home, gpg_binary=gpg).sign(b"kexec lists\n")
    finally:
        remove_signing_home(home)


def test_a_damaged_key_file_is_refused_and_leaves_no_home(work_dir: Path, tmp_path: Path) -> None:
    damaged = tmp_path / "owner.asc"
    damaged.write_text(
        "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nnot a key\n-----END PGP PUBLIC KEY BLOCK-----\n"
    )
    with pytest.raises(SigningError, match="could not load the owner's key") as err:
        signing_home(str(damaged), str(tmp_path / "none.asc"), str(work_dir))
    assert isinstance(err.value.__cause__, subprocess.CalledProcessError)
    assert list(work_dir.iterdir()) == []
