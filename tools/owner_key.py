"""A throw-away owner key for tests and benchmarks: an ed25519 signing key
made by the host's gpg in its own home (the owner's "other computer"), its
armored public key for `build_initrd.py --owner-key`, and clearsigning (the
answer to the recovery shell's challenge)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from runtime.integrity.gpg_limits import KEY_MAKING_TIMEOUT_S
from runtime.integrity.gpg_signer import stop_gpg_daemons

KEY_SPEC = (
    "%no-protection\nKey-Type: eddsa\nKey-Curve: ed25519\nKey-Usage: sign\n"
    "Name-Real: Test Owner\nName-Email: owner@example.org\nExpire-Date: 0\n%commit\n"
)


@dataclass(frozen=True)
class OwnerKey:
    home: Path  # a GnuPG home holding the secret key
    public: Path  # the armored public key

    def clearsign(self, text: str) -> str:
        done = subprocess.run(
            ["gpg", "--homedir", str(self.home), "--batch", "--yes", "--clearsign"],
            input=text,
            capture_output=True,
            text=True,
            check=True,
            timeout=KEY_MAKING_TIMEOUT_S,
        )
        return done.stdout

    def export_secret(self, path: Path) -> Path:
        """The secret key, armored, for a test image (build_initrd --owner-secret-key)."""
        done = subprocess.run(
            ["gpg", "--homedir", str(self.home), "--batch", "--armor", "--export-secret-keys"],
            capture_output=True,
            check=True,
            timeout=KEY_MAKING_TIMEOUT_S,
        )
        path.write_bytes(done.stdout)
        return path

    def remove(self) -> None:
        stop_gpg_daemons(str(self.home))
        shutil.rmtree(self.home, ignore_errors=True)


def make_owner_key(public_dir: Path) -> OwnerKey:
    # gpg-agent's socket path must stay short: the home goes under /tmp.
    home = Path(tempfile.mkdtemp(prefix="gpg-", dir="/tmp"))
    home.chmod(0o700)
    subprocess.run(
        ["gpg", "--homedir", str(home), "--batch", "--gen-key"],
        input=KEY_SPEC,
        text=True,
        check=True,
        timeout=KEY_MAKING_TIMEOUT_S,
        capture_output=True,
    )
    public_dir.mkdir(parents=True, exist_ok=True)
    public = public_dir / "owner.asc"
    exported = subprocess.run(
        ["gpg", "--homedir", str(home), "--armor", "--export"],
        capture_output=True,
        check=True,
        timeout=KEY_MAKING_TIMEOUT_S,
    )
    public.write_bytes(exported.stdout)
    return OwnerKey(home, public)
