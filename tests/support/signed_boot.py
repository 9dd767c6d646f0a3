"""/boot signed and verified with the real gpg as the owner does it, and the
checks Heads itself runs on a signed /boot (sha256sum and gpg on the command
line, independent of the runtime's own reading): shared by the TPM tests of
the verified boot."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

from runtime.integrity.gpg_signer import GpgSigner
from runtime.integrity.sign_boot import sign_boot
from runtime.integrity.tpm_counter import TpmCounter
from runtime.integrity.verify_boot import BootReport, Problem, verify_boot
from tools.owner_key import OwnerKey

#: the environment Heads' shell commands run in here: C locale, the host's PATH
C_LOCALE = {"LC_ALL": "C", "PATH": os.environ.get("PATH", "/usr/bin:/bin")}


def owner_signs(
    boot: Path | str, owner_key: OwnerKey, counter: TpmCounter, **options: Any
) -> BootReport:
    """sign_boot with the owner's own key (``options`` are sign_boot's)."""
    signer = GpgSigner(str(owner_key.home))
    return sign_boot(str(boot), signer, counter, str(owner_key.public), **options)


def owner_verifies(boot: Path | str, owner_key: OwnerKey, counter: TpmCounter) -> BootReport:
    """verify_boot against the owner's public key and the TPM's counters."""
    return verify_boot(str(boot), str(owner_key.public), counter.value)


def problems(report: BootReport) -> set[Problem]:
    return {finding.problem for finding in report.findings}


def heads_shell(boot: Path, command: str) -> bytes:
    """The output of a shell ``command`` run as Heads runs it, in /boot."""
    return subprocess.run(
        ["sh", "-c", command],
        cwd=boot,
        env=C_LOCALE,
        check=True,
        capture_output=True,
        timeout=60,
    ).stdout


def heads_hash_check(boot: Path, hashes_file: str) -> None:
    """Heads' own check of a hash list: ``sha256sum -c`` in /boot; raises if it fails."""
    heads_shell(boot, f"sha256sum -c --quiet {hashes_file}")


def heads_listing(boot: Path) -> bytes:
    """What Heads' kexec.sig signs: ``sha256sum kexec*.txt`` in /boot."""
    return heads_shell(boot, "sha256sum kexec*.txt")


def gpg_signature(key: OwnerKey, data: bytes) -> bytes:
    """An armored detached signature over ``data`` by ``key``, made by the gpg command."""
    return subprocess.run(
        ["gpg", "--homedir", str(key.home), "--batch", "--detach-sign", "-a"],
        input=data,
        check=True,
        capture_output=True,
        timeout=60,
    ).stdout
