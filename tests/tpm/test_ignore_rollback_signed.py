"""CONFIG_IGNORE_ROLLBACK against a real swtpm counter (issue 15, item 2): an
older signed /boot put back is refused as a rollback by default; with the
setting, the device platform reads no counter, so it verifies, and the
verdict says the check is off instead of VERIFIED."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from runtime.config.settings import LoadedSettings, Settings
from runtime.integrity.gpg_signer import GpgSigner
from runtime.integrity.sign_boot import sign_boot
from runtime.integrity.tpm_counter import TpmCounter
from runtime.state import platform_boot
from runtime.state.device_platform import DevicePlatform
from runtime.state.platform import BootFacts, MeasureFacts, SignFacts, StartFacts, TotpFacts
from runtime.state.session import Session
from runtime.state.verdict import ROLLBACK_OFF, BootState
from runtime.state.view import Tone
from runtime.tpm.connection import Tpm
from tests.tpm.conftest import OWNER
from tools.owner_key import OwnerKey

pytestmark = [pytest.mark.tpm, pytest.mark.usefixtures("scratch_log")]


@pytest.fixture
def replayed(tpm: Tpm, tmp_path: Path, owner_key: OwnerKey) -> Path:
    """/boot signed twice (the counter moved on), then the first copy put back."""
    boot = tmp_path / "boot"
    (boot / "grub").mkdir(parents=True)
    (boot / "grub" / "grub.cfg").write_text(
        "menuentry 'Debian' {\n linux /vmlinuz-6.1 root=/dev/vda2 ro\n}\n"
    )
    (boot / "vmlinuz-6.1").write_bytes(os.urandom(50_000))
    counter = TpmCounter(tpm, OWNER)

    def sign() -> None:
        report = sign_boot(
            str(boot), GpgSigner(str(owner_key.home)), counter, str(owner_key.public)
        )
        assert report.ok, report.findings

    sign()
    old = tmp_path / "old-boot"
    shutil.copytree(boot, old, symlinks=True)
    (boot / "vmlinuz-6.1").write_bytes(b"the newer kernel")
    sign()
    shutil.rmtree(boot)
    shutil.copytree(old, boot, symlinks=True)
    return boot


def _device(tpm: Tpm, boot: Path, ignore: bool) -> DevicePlatform:
    platform = DevicePlatform()
    texts = {"CONFIG_IGNORE_ROLLBACK": "y" if ignore else "n"}
    platform.loaded = LoadedSettings(Settings(texts), [], {})
    platform.tpm = tpm
    platform.boot_device = str(boot.parent / "no-such-device")  # nothing to probe
    platform._side.boot_dir = str(boot)
    return platform


def _session(check: object, ignore: bool) -> Session:
    start = StartFacts("b", "brand", rollback_check_off=ignore)
    return Session(
        start=start,
        measure=MeasureFacts(),
        boot=BootFacts("/dev/vda1", "/boot"),
        totp=TotpFacts("123456", step=1),
        boot_check=check,  # type: ignore[arg-type]
    )


def test_without_the_setting_the_replay_is_refused_as_rollback(
    monkeypatch: pytest.MonkeyPatch, tpm: Tpm, replayed: Path, owner_key: OwnerKey
) -> None:
    monkeypatch.setattr(platform_boot, "OWNER_KEY_PATH", str(owner_key.public))
    platform = _device(tpm, replayed, ignore=False)
    check = platform.verify_boot(lambda _: None)
    assert not check.ok
    assert check.problems == {"an older signed /boot (rollback)"}
    assert platform_boot.ROLLBACK_OFF_NOTE not in check.notes
    session = _session(check, ignore=False)
    assert session.boot_state() is BootState.ROLLED_BACK
    assert session.verdict().word == "TAMPERED?"


def test_with_the_setting_the_replay_verifies_with_the_warning(
    monkeypatch: pytest.MonkeyPatch, tpm: Tpm, replayed: Path, owner_key: OwnerKey
) -> None:
    monkeypatch.setattr(platform_boot, "OWNER_KEY_PATH", str(owner_key.public))
    platform = _device(tpm, replayed, ignore=True)
    assert platform.rollback_preflight() == ""
    check = platform.verify_boot(lambda _: None)
    assert check.ok, check.findings
    assert check.counter is None  # never read
    assert platform_boot.ROLLBACK_OFF_NOTE in check.notes
    found = _session(check, ignore=True).verdict()
    assert (found.word, found.tone) == (ROLLBACK_OFF, Tone.WARNING)
    assert "/boot's rollback counter not checked" in found.reasons


def test_signing_with_the_setting_leaves_the_counter_where_it_is(
    tpm: Tpm, tmp_path: Path, owner_key: OwnerKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As Heads signs without -r under CONFIG_IGNORE_ROLLBACK: the device
    platform asks for no bump, and sign_boot then moves no counter."""
    asked: list[bool] = []

    def sign(*args: object, bump: bool = True, **_: object) -> object:
        asked.append(bump)
        return SignFacts(problem="stopped by the test")

    monkeypatch.setattr(platform_boot, "sign", sign)
    for ignore in (True, False):
        platform = _device(tpm, tmp_path, ignore)
        platform.sign_boot(lambda *_: None, lambda *_: None, None, lambda _: None)
    assert asked == [False, True]

    boot = tmp_path / "boot"
    (boot / "grub").mkdir(parents=True)
    (boot / "grub" / "grub.cfg").write_text("menuentry 'Debian' {\n linux /vmlinuz\n}\n")
    (boot / "vmlinuz").write_bytes(b"kernel")
    counter = TpmCounter(tpm, OWNER)
    first = sign_boot(str(boot), GpgSigner(str(owner_key.home)), counter, str(owner_key.public))
    assert first.ok and first.signed_counter is not None
    (boot / "vmlinuz").write_bytes(b"an updated kernel")
    again = sign_boot(
        str(boot), GpgSigner(str(owner_key.home)), counter, str(owner_key.public), bump=False
    )
    assert again.ok, again.findings
    assert again.signed_counter == first.signed_counter  # the counter did not move
