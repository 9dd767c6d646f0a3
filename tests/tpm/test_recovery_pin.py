"""The recovery gate connects with the owner's pinned storage-key Name (issue 27,
finding 3) on a real swtpm: locking the platform hierarchy sends its new value
in a session salted with the storage key, so a TPM whose key is not the pinned
one (CONFIG_TPM_PRIMARY_NAME) gets no session and the shell stays closed, with
words that say the TPM's identity changed, not a generic lock failure."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from tpm2_pytss import TSS2_Exception
from tpm2_pytss.constants import ESYS_TR

import runtime.config
from runtime import error_detail
from runtime.config import LoadedSettings, Settings
from runtime.recovery import __main__ as entry
from runtime.recovery.__main__ import Paths
from runtime.tpm.connection import Tpm
from runtime.tpm.errors import TpmIdentityChanged
from runtime.tpm.pcrs import read_pcrs
from tests.support.plain_words import assert_plain
from tests.tpm.test_salt_key_pin import STRANGER, real_name, substitute_primary
from tools.swtpm import Swtpm

pytestmark = [pytest.mark.tpm, pytest.mark.usefixtures("scratch_log")]

RECOVERY_FROM_ZERO = hashlib.sha256(bytes(32) + hashlib.sha256(b"recovery").digest()).digest()


def pin_in_settings(monkeypatch: pytest.MonkeyPatch, name: bytes | None) -> None:
    """The owner's settings, as the image holds them, pin ``name`` (None: no pin)."""
    text = "" if name is None else name.hex()
    loaded = LoadedSettings(Settings({"CONFIG_TPM_PRIMARY_NAME": text}), [], {})
    monkeypatch.setattr(runtime.config, "load_settings", lambda: loaded)


def paths(tmp_path: Path, swtpm: Swtpm) -> Paths:
    """No owner key, not restricted, the test's own secret directory, the swtpm."""
    return Paths(
        secret_dir=str(tmp_path / "secret"),
        owner_key=str(tmp_path / "owner.asc"),
        restricted_flag=str(tmp_path / "restricted"),
        tcti=swtpm.tcti,
    )


def platform_locked(tpm: Tpm) -> bool:
    """Whether the platform authorization is no longer empty (the lock's doing)."""
    tpm.esapi.tr_set_auth(ESYS_TR.PLATFORM, b"")
    try:
        tpm.esapi.hierarchy_change_auth(ESYS_TR.PLATFORM, b"", session1=ESYS_TR.PASSWORD)
    except TSS2_Exception:
        return True
    return False


def test_a_substituted_storage_key_gives_no_shell_and_says_why(
    tpm: Tpm,
    swtpm: Swtpm,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    pin = real_name(tpm)
    substitute_primary(tpm)
    tpm.flush_sessions()
    pin_in_settings(monkeypatch, pin)
    assert entry.main(["--reason", "asked from the menu"], paths(tmp_path, swtpm)) == 1
    out = " ".join(capsys.readouterr().out.split())  # unwrapped
    assert "TPM identity changed:" in out and "no shell" in out
    assert "CONFIG_TPM_PRIMARY_NAME" in out  # what the owner does if it was them
    assert "could not be locked" not in out  # not said as a lock failure
    assert_plain(out)
    assert read_pcrs(tpm, [4])[4] == RECOVERY_FROM_ZERO  # the gate's first guard ran
    assert not platform_locked(tpm)  # no session was salted with the other key
    assert any(pin.hex() in line for line in error_detail.recent_details())  # for the log


def test_a_pin_with_no_storage_key_gives_no_shell(
    bare_tpm: Tpm,
    swtpm: Swtpm,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bare_tpm.flush_sessions()
    with pytest.raises(TpmIdentityChanged) as info:
        entry.lock_platform(swtpm.tcti, pinned_name=lambda: STRANGER)
    said = info.value.plain()
    assert said.startswith("TPM identity changed:") and "no shell" in said
    assert not platform_locked(bare_tpm)  # not even with a throw-away key


def test_the_pinned_key_locks_and_opens_the_shell(
    tpm: Tpm,
    swtpm: Swtpm,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    pin_in_settings(monkeypatch, real_name(tpm))
    tpm.flush_sessions()
    assert entry.main(["--reason", "test"], paths(tmp_path, swtpm)) == 0
    assert "identity" not in capsys.readouterr().out
    assert platform_locked(tpm)


def test_the_pin_is_read_from_the_settings(
    tpm: Tpm,
    swtpm: Swtpm,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tpm.flush_sessions()
    pin_in_settings(monkeypatch, STRANGER)  # a key this TPM does not hold
    with pytest.raises(TpmIdentityChanged):
        entry.lock_platform(swtpm.tcti)
    assert not platform_locked(tpm)
    pin_in_settings(monkeypatch, None)  # unpinned: any storage key salts, as before
    entry.lock_platform(swtpm.tcti)
    assert platform_locked(tpm)
