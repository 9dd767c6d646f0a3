"""Verified boot against a real swtpm counter and the real gpg: signing /boot,
the tamper matrix (each refused with its reason), and compatibility with a
/boot prepared by the commands Heads runs."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from runtime.integrity.boot_lists import ROLLBACK_FILE, SIGNATURE_FILE, parse_rollback
from runtime.integrity.gpg_signer import GpgSigner
from runtime.integrity.sign_boot import DefaultChoice, SigningError, sign_boot
from runtime.integrity.tpm_counter import TpmCounter
from runtime.integrity.verify_boot import Problem, verify_boot
from runtime.tpm import nv
from runtime.tpm.connection import Tpm
from tests.support.signed_boot import (
    C_LOCALE,
    gpg_signature,
    heads_hash_check,
    heads_listing,
    heads_shell,
    owner_signs,
    owner_verifies,
    problems,
)
from tests.tpm.conftest import OWNER
from tools.owner_key import OwnerKey


@pytest.fixture
def boot(tmp_path: Path) -> Path:
    root = tmp_path / "boot"
    (root / "grub").mkdir(parents=True)
    (root / "grub" / "grub.cfg").write_text(
        "menuentry 'Debian' {\n linux /vmlinuz-6.1 root=/dev/vda2 ro\n initrd /initrd.img-6.1\n}\n"
    )
    (root / "vmlinuz-6.1").write_bytes(os.urandom(200_000))
    (root / "initrd.img-6.1").write_bytes(os.urandom(300_000))
    (root / "config-6.1").write_text("CONFIG_X=y\n")
    return root


def test_signed_boot_verifies_here_and_as_heads_checks_it(
    tpm: Tpm, boot: Path, owner_key: OwnerKey
) -> None:
    counter = TpmCounter(tpm, OWNER)
    report = owner_signs(boot, owner_key, counter)
    assert report.ok, report.findings
    assert report.counter is not None and report.signer
    first = report.counter
    # Heads' own checks: sha256sum -c, the listing through gpg --verify, the tree
    heads_hash_check(boot, "kexec_hashes.txt")
    subprocess.run(
        ["gpg", "--homedir", str(owner_key.home), "--verify", "kexec.sig", "-"],
        input=heads_listing(boot),
        cwd=boot,
        check=True,
        timeout=60,
        capture_output=True,
    )
    tree = heads_shell(boot, "find ./ ! -path './kexec*' -print0 | sort -z")
    assert (boot / "kexec_tree.txt").read_bytes() == tree
    # a second signing moves the counter on
    assert owner_signs(boot, owner_key, counter).counter == first + 1


def test_default_entry_is_signed_with_its_hashes(tpm: Tpm, boot: Path, owner_key: OwnerKey) -> None:
    counter = TpmCounter(tpm, OWNER)
    line = "Debian|elf|kernel /vmlinuz-6.1|initrd /initrd.img-6.1|append root=/dev/vda2 ro"
    choice = DefaultChoice(1, line, ("/vmlinuz-6.1", "/initrd.img-6.1"))
    assert owner_signs(boot, owner_key, counter, default=choice).ok
    assert (boot / "kexec_default.1.txt").read_text() == line + "\n"
    heads_hash_check(boot, "kexec_default_hashes.txt")
    other = DefaultChoice(2, line, ("/vmlinuz-6.1",))
    assert owner_signs(boot, owner_key, counter, default=other).ok
    assert not (boot / "kexec_default.1.txt").exists()
    assert (boot / "kexec_default.2.txt").exists()


# --- the tamper matrix --------------------------------------------------------


def _signed(tpm: Tpm, boot: Path, owner_key: OwnerKey) -> TpmCounter:
    counter = TpmCounter(tpm, OWNER)
    report = owner_signs(boot, owner_key, counter)
    assert report.ok
    counter.first = report.counter  # type: ignore[attr-defined]
    return counter


def test_modified_kernel(tpm: Tpm, boot: Path, owner_key: OwnerKey) -> None:
    counter = _signed(tpm, boot, owner_key)
    with (boot / "vmlinuz-6.1").open("r+b") as f:
        f.seek(1000)
        f.write(b"\xcc")
    report = owner_verifies(boot, owner_key, counter)
    assert problems(report) == {Problem.FILES_MODIFIED}
    assert report.modified == ["./vmlinuz-6.1"]
    assert "vmlinuz-6.1" in str(report.findings[0])


def test_modified_initrd_and_config(tpm: Tpm, boot: Path, owner_key: OwnerKey) -> None:
    counter = _signed(tpm, boot, owner_key)
    (boot / "initrd.img-6.1").write_bytes(b"evil")
    (boot / "grub" / "grub.cfg").write_text(
        "menuentry 'Debian' { linux /vmlinuz-6.1 init=/bin/sh }\n"
    )
    report = owner_verifies(boot, owner_key, counter)
    assert report.modified == ["./grub/grub.cfg", "./initrd.img-6.1"]


def test_added_and_removed_files(tpm: Tpm, boot: Path, owner_key: OwnerKey) -> None:
    counter = _signed(tpm, boot, owner_key)
    (boot / "grub" / "custom.cfg").write_text("set superusers=\n")
    (boot / "config-6.1").unlink()
    report = owner_verifies(boot, owner_key, counter)
    assert problems(report) == {Problem.FILES_ADDED, Problem.FILES_REMOVED}
    assert report.added == ["./grub/custom.cfg"] and report.removed == ["./config-6.1"]


def test_replayed_older_signed_boot(
    tpm: Tpm, boot: Path, owner_key: OwnerKey, tmp_path: Path
) -> None:
    counter = _signed(tpm, boot, owner_key)
    old = tmp_path / "old-boot"
    shutil.copytree(boot, old, symlinks=True)
    (boot / "vmlinuz-6.1").write_bytes(b"new kernel")
    assert owner_signs(boot, owner_key, counter).ok
    shutil.rmtree(boot)
    shutil.copytree(old, boot, symlinks=True)  # the attacker puts the old, signed /boot back
    report = owner_verifies(boot, owner_key, counter)
    assert problems(report) == {Problem.ROLLED_BACK}
    first = counter.first  # type: ignore[attr-defined]
    assert report.signed_counter == first and report.counter == first + 1
    assert f"counter was {first}" in str(report.findings[0])


def test_signature_by_another_valid_key(
    tpm: Tpm, boot: Path, owner_key: OwnerKey, stranger: OwnerKey
) -> None:
    counter = _signed(tpm, boot, owner_key)
    (boot / SIGNATURE_FILE).write_bytes(gpg_signature(stranger, heads_listing(boot)))
    # the stranger's key is in the keyring offered to gpg too: still refused
    both = boot.parent / "both.asc"
    both.write_bytes(owner_key.public.read_bytes() + stranger.public.read_bytes())
    pinned = verify_boot(str(boot), str(both), counter.value, pinned_fingerprints=[_fpr(owner_key)])
    assert problems(pinned) == {Problem.SIGNATURE_NOT_OWNER}
    assert problems(owner_verifies(boot, owner_key, counter)) == {Problem.SIGNATURE_NOT_OWNER}


def _fpr(key: OwnerKey) -> str:
    out = subprocess.run(
        ["gpg", "--homedir", str(key.home), "--with-colons", "--list-keys"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    return next(line.split(":")[9] for line in out.splitlines() if line.startswith("fpr:"))


def test_missing_and_corrupted_signature(tpm: Tpm, boot: Path, owner_key: OwnerKey) -> None:
    counter = _signed(tpm, boot, owner_key)
    sig = (boot / SIGNATURE_FILE).read_bytes()
    (boot / SIGNATURE_FILE).write_bytes(sig[:60] + b"AAAA" + sig[64:])
    assert problems(owner_verifies(boot, owner_key, counter)) & {
        Problem.SIGNATURE_BAD,
        Problem.SIGNATURE_UNCHECKED,
    }
    (boot / SIGNATURE_FILE).unlink()
    assert problems(owner_verifies(boot, owner_key, counter)) == {Problem.SIGNATURE_MISSING}
    (boot / SIGNATURE_FILE).write_bytes(sig)
    (boot / "kexec_hashes.txt").write_bytes(b"")  # a signed list changed: the signature fails
    assert Problem.SIGNATURE_BAD in problems(owner_verifies(boot, owner_key, counter))


def test_counter_index_deleted(tpm: Tpm, boot: Path, owner_key: OwnerKey) -> None:
    counter = _signed(tpm, boot, owner_key)
    index = parse_rollback((boot / ROLLBACK_FILE).read_bytes()).nv_index
    nv.undefine(tpm, index, OWNER)
    report = owner_verifies(boot, owner_key, counter)
    assert problems(report) == {Problem.COUNTER_MISSING}
    assert "reset or replaced" in str(report.findings[0])
    # the way forward: signing again binds /boot to a new counter
    again = owner_signs(boot, owner_key, counter)
    assert again.ok
    assert parse_rollback((boot / ROLLBACK_FILE).read_bytes()).nv_index != index


def test_wrong_signing_key_writes_nothing(
    tpm: Tpm, boot: Path, owner_key: OwnerKey, stranger: OwnerKey
) -> None:
    counter = TpmCounter(tpm, OWNER)
    with pytest.raises(SigningError, match="not the owner's"):
        sign_boot(str(boot), GpgSigner(str(stranger.home)), counter, str(owner_key.public))
    assert not [p for p in os.listdir(boot) if p.startswith("kexec")]


# --- compatibility: a /boot made the way Heads makes it ----------------------


def test_boot_prepared_by_heads_commands_verifies(
    tpm: Tpm, boot: Path, owner_key: OwnerKey
) -> None:
    from runtime.tpm.counters import create_counter, increment_counter

    index = create_counter(tpm, OWNER)
    value = increment_counter(tpm, index)
    cid = f"{index:x}"
    counter_file = Path(f"/tmp/counter-{cid}")
    script = (
        "set -e\n"
        "find ./ -type f ! -path './kexec*' -print0 | xargs -0 sha256sum > kexec_hashes.txt\n"
        "find ./ ! -path './kexec*' -print0 | sort -z > kexec_tree.txt\n"
        f"printf '%s: %016x\\n' {cid} {value} > {counter_file}\n"
        f"sha256sum {counter_file} > kexec_rollback.txt\n"
        f"sha256sum kexec*.txt | gpg --homedir {owner_key.home} --batch --digest-algo SHA256 "
        "--detach-sign -a > kexec.sig\n"
    )
    try:
        subprocess.run(
            ["sh", "-c", script],
            cwd=boot,
            env=C_LOCALE,
            check=True,
            timeout=120,
            capture_output=True,
        )
    finally:
        counter_file.unlink(missing_ok=True)
    report = owner_verifies(boot, owner_key, TpmCounter(tpm, OWNER))
    assert report.ok, report.findings
