"""The checks before an entry of a verified /boot boots, on a /boot signed
with the real gpg against a real swtpm counter: the entry's files signed and
verified, the saved default's hash list, and the TPM storage key the default
was saved with."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runtime.integrity.boot_entry_checks import (
    default_hashes_problem,
    entry_files,
    primary_problem,
    saved_default_problem,
    verified_files_problem,
)
from runtime.integrity.boot_lists import (
    DEFAULT_HASHES_FILE,
    PRIMARY_HANDLE_HASH_FILE,
    format_sum_line,
)
from runtime.integrity.boot_report import BootReport
from runtime.integrity.boot_view import BootView
from runtime.integrity.primary_handle import format_primary_hash, primary_handle_bytes
from runtime.integrity.sign_boot import DefaultChoice
from runtime.integrity.tpm_counter import TpmCounter
from runtime.state.boot_side import BootSide
from runtime.state.platform_boot import options, saved_default
from runtime.tpm.connection import Tpm
from tests.support.signed_boot import owner_signs, owner_verifies
from tests.tpm.conftest import OWNER
from tools.owner_key import OwnerKey

LINE = "Debian|elf|kernel /vmlinuz|initrd /initrd.img-6.1|append root=/dev/vda2 ro"


@pytest.fixture
def boot(tmp_path: Path) -> Path:
    root = tmp_path / "boot"
    (root / "grub").mkdir(parents=True)
    (root / "grub" / "grub.cfg").write_text(
        "menuentry 'Debian' {\n linux /vmlinuz root=/dev/vda2 ro\n initrd /initrd.img-6.1\n}\n"
    )
    (root / "vmlinuz-6.1").write_bytes(os.urandom(50_000))
    (root / "initrd.img-6.1").write_bytes(os.urandom(80_000))
    os.symlink("vmlinuz-6.1", root / "vmlinuz")
    return root


def _signed(tpm: Tpm, boot: Path, owner_key: OwnerKey, line: str = LINE) -> BootReport:
    """/boot signed with ``line`` as the default, bound to the TPM's storage key."""
    counter = TpmCounter(tpm, OWNER)
    primary = format_primary_hash(primary_handle_bytes(tpm)) if tpm.has_primary() else None
    choice = DefaultChoice(1, line, tuple(entry_files(line)), primary)
    assert owner_signs(boot, owner_key, counter, default=choice).ok
    report = owner_verifies(boot, owner_key, counter)
    assert report.ok, report.findings
    return report


def _view(boot: Path, report: BootReport) -> BootView:
    return BootView(str(boot), report.signed())


def test_the_files_of_an_entry_are_its_kernel_initrds_and_modules() -> None:
    assert entry_files(LINE) == ["/vmlinuz", "/initrd.img-6.1"]


def test_a_signed_default_passes_every_check(tpm: Tpm, boot: Path, owner_key: OwnerKey) -> None:
    report = _signed(tpm, boot, owner_key)
    view, trusted = _view(boot, report), report.trusted_state
    assert verified_files_problem(view, LINE) == ""
    assert default_hashes_problem(view, trusted) == ""
    assert primary_problem(trusted, tpm) == ""
    assert saved_default_problem(view, trusted, LINE, tpm) == ""


def test_only_signed_and_verified_files_may_boot(tpm: Tpm, boot: Path, owner_key: OwnerKey) -> None:
    report = _signed(tpm, boot, owner_key)
    (boot / "vmlinuz-evil").write_bytes(b"added after the signing")
    view = _view(boot, report)
    evil = "Evil|elf|kernel /vmlinuz-evil|append root=/dev/vda2"
    assert "/vmlinuz-evil is not one of the signed files" in verified_files_problem(view, evil)
    assert "cannot be read" in verified_files_problem(view, "no kernel here")
    unverified = BootView(str(boot), None)
    assert verified_files_problem(unverified, LINE) == "/boot was not verified."


def test_a_stale_missing_or_damaged_hash_list_is_refused(
    tpm: Tpm, boot: Path, owner_key: OwnerKey
) -> None:
    report = _signed(tpm, boot, owner_key)
    view = _view(boot, report)
    trusted = dict(report.trusted_state)
    stale = {**trusted, DEFAULT_HASHES_FILE: format_sum_line("0" * 64, "./vmlinuz").encode()}
    assert "its files changed since it was saved (./vmlinuz)" in default_hashes_problem(view, stale)
    missing = {k: v for k, v in trusted.items() if k != DEFAULT_HASHES_FILE}
    assert "is missing" in default_hashes_problem(view, missing)
    damaged = {**trusted, DEFAULT_HASHES_FILE: b"not a sum line\n"}
    assert "cannot be read" in default_hashes_problem(view, damaged)
    # the first failing check is the one reported
    assert saved_default_problem(view, stale, LINE, tpm).startswith("its files changed")


def test_another_tpm_storage_key_refuses_the_default(
    tpm: Tpm, boot: Path, owner_key: OwnerKey
) -> None:
    trusted = dict(_signed(tpm, boot, owner_key).trusted_state)
    other = {**trusted, PRIMARY_HANDLE_HASH_FILE: format_primary_hash(b"another key")}
    assert "not the one the default was saved with" in primary_problem(other, tpm)
    damaged = {**trusted, PRIMARY_HANDLE_HASH_FILE: b"garbage\n"}
    assert "kexec_primhdl_hash.txt cannot be read" in primary_problem(damaged, tpm)
    assert primary_problem(trusted, None).startswith("No TPM")
    unbound = {k: v for k, v in trusted.items() if k != PRIMARY_HANDLE_HASH_FILE}
    assert "kexec_primhdl_hash.txt is missing" in primary_problem(unbound, tpm)


def test_a_default_saved_without_a_storage_key_stays_valid_while_there_is_none(
    bare_tpm: Tpm, boot: Path, owner_key: OwnerKey
) -> None:
    """A TPM without a storage key (never owned) binds the default to nothing;
    it passes while the TPM still has none."""
    counter = TpmCounter(bare_tpm, b"")
    choice = DefaultChoice(1, LINE, tuple(entry_files(LINE)))
    assert not bare_tpm.has_primary()
    assert owner_signs(boot, owner_key, counter, default=choice).ok
    report = owner_verifies(boot, owner_key, counter)
    assert PRIMARY_HANDLE_HASH_FILE not in report.trusted_state
    assert saved_default_problem(_view(boot, report), report.trusted_state, LINE, bare_tpm) == ""


def test_the_platform_boots_the_default_it_finds_signed(
    tpm: Tpm, boot: Path, owner_key: OwnerKey
) -> None:
    """The glue (runtime.state.platform_boot) reads the default through these checks."""
    unsigned = BootSide(boot_dir=str(boot), device="/dev/test")
    listed = options(unsigned).options[0]
    report = _signed(tpm, boot, owner_key, listed.line)
    side = BootSide(boot_dir=str(boot), device="/dev/test", last_report=report)
    facts = saved_default(side, tpm)
    assert facts.problem == "" and facts.option is not None
    assert facts.option.line == listed.line
    (boot / "vmlinuz-6.1").write_bytes(b"changed after the check")
    changed = owner_verifies(boot, owner_key, TpmCounter(tpm, OWNER))
    side = BootSide(boot_dir=str(boot), device="/dev/test", last_report=changed)
    assert saved_default(side, tpm).option is None
