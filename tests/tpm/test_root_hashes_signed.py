"""The root hash list signed with /boot, against a real swtpm counter and gpg:
the signing writes it with the rest of the signed state, a later signing
keeps it, and the check compares the root file system with the signed copy
only (an unsigned list on /boot is not believed)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from runtime.integrity.gpg_signer import GpgSigner
from runtime.integrity.root_hashes import ROOT_HASHES_FILE, format_root_hashes, hash_root
from runtime.integrity.sign_boot import sign_boot
from runtime.integrity.tpm_counter import TpmCounter
from runtime.integrity.verify_boot import verify_boot
from runtime.state import platform_root
from runtime.state.boot_side import BootSide
from runtime.tpm.connection import Tpm
from tests.tpm.conftest import OWNER
from tools.owner_key import OwnerKey

pytestmark = [pytest.mark.tpm, pytest.mark.usefixtures("scratch_log")]


@pytest.fixture
def os_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "root"
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "usr" / "bin" / "ls").write_bytes(b"ls")
    (root / "usr" / "bin" / "sh").write_bytes(b"sh")

    @contextlib.contextmanager
    def mounted(device: str, target: str = "") -> Iterator[str]:
        yield str(root)  # the mount itself is the QEMU tier's

    monkeypatch.setattr(platform_root, "mounted_root", mounted)
    return root


def boot_tree(tmp_path: Path) -> Path:
    """A /boot with one entry, not signed yet."""
    boot = tmp_path / "boot"
    (boot / "grub").mkdir(parents=True)
    (boot / "grub" / "grub.cfg").write_text("menuentry 'Debian' {\n linux /vmlinuz\n}\n")
    (boot / "vmlinuz").write_bytes(b"kernel")
    return boot


def test_the_list_is_signed_kept_and_checked(
    tpm: Tpm, tmp_path: Path, owner_key: OwnerKey, os_root: Path
) -> None:
    boot = boot_tree(tmp_path)
    settings = SimpleNamespace(root_dev="/dev/vda2", root_dirlist=("usr",))
    counter = TpmCounter(tpm, OWNER)

    def sign(extra: dict[str, bytes] | None = None) -> object:
        report = sign_boot(
            str(boot), GpgSigner(str(owner_key.home)), counter, str(owner_key.public), extra=extra
        )
        assert report.ok, report.findings
        return report

    side = BootSide(boot_dir=str(boot), device="/dev/vda1", last_report=sign())
    facts, made = platform_root.create(side, settings, lambda _: None)
    assert facts.problem == "" and facts.checked == 2 and made is not None
    report = sign({ROOT_HASHES_FILE: made})
    assert (boot / ROOT_HASHES_FILE).read_bytes() == made
    side.last_report = report
    assert platform_root.check(side, settings, lambda _: None).ok

    # an OS update later: /boot re-signed, the list kept as signed
    (boot / "vmlinuz").write_bytes(b"new kernel")
    report = sign()
    assert (boot / ROOT_HASHES_FILE).read_bytes() == made
    side.last_report = report
    (os_root / "usr" / "bin" / "ls").write_bytes(b"trojan")
    changed = platform_root.check(side, settings, lambda _: None)
    assert changed.changed == ("usr/bin/ls",) and not changed.ok
    # making a new list names what differs from the signed one, for the review
    again, _ = platform_root.create(side, settings, lambda _: None)
    assert again.changed == ("usr/bin/ls",)
    # a /boot that does not verify: its list is not used
    side.last_report = verify_boot(str(boot), str(owner_key.public), None)
    (boot / "vmlinuz").write_bytes(b"tampered kernel")
    side.last_report = verify_boot(str(boot), str(owner_key.public), None)
    assert "does not verify" in platform_root.check(side, settings, lambda _: None).problem


def test_an_unsigned_list_on_boot_is_not_believed(
    tpm: Tpm, tmp_path: Path, owner_key: OwnerKey, os_root: Path
) -> None:
    boot = boot_tree(tmp_path)
    report = sign_boot(
        str(boot), GpgSigner(str(owner_key.home)), TpmCounter(tpm, OWNER), str(owner_key.public)
    )
    (os_root / "usr" / "bin" / "ls").write_bytes(b"trojan")
    # an attacker writes a list matching the changed root next to the signed state
    (boot / ROOT_HASHES_FILE).write_bytes(format_root_hashes(hash_root(str(os_root), ["usr"])))
    settings = SimpleNamespace(root_dev="/dev/vda2", root_dirlist=("usr",))
    side = BootSide(
        boot_dir=str(boot),
        device="/dev/vda1",
        last_report=verify_boot(str(boot), str(owner_key.public), None),
    )
    facts = platform_root.check(side, settings, lambda _: None)
    # an unexpected file in the signed-state area fails /boot's check itself
    assert "does not verify" in facts.problem and not facts.ok
    assert report.ok
