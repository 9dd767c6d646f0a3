"""The platform hierarchy is locked before the hand-over and before a recovery
shell, on a real swtpm. Locked is: this runtime set a random authorization,
or the TPM refused the empty one (the firmware set its own), or the hierarchy
is disabled. Any other failure is fatal: nothing boots, no shell opens.

Open, the platform hierarchy lets the next program define NV indexes that
survive "Reset the TPM" (TPM2_Clear), such as one at the TOTP secret's place.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tpm2_pytss.constants import ESYS_TR, TPMA_OBJECT
from tpm2_pytss.types import TPM2B_PUBLIC, TPM2B_SENSITIVE_CREATE

from runtime.kexec import finalize
from runtime.kexec.errors import KexecError
from runtime.kexec.finalize import PlatformLock, lock_platform
from runtime.recovery import __main__ as entry
from runtime.secrets.ram import SecretDir
from runtime.tpm import handles, pcrs
from runtime.tpm.connection import TCTI_ENV, Tpm
from runtime.tpm.errors import PlatformNotLocked, WrongPassphrase, translated
from tests.tpm.conftest import OWNER
from tools.swtpm import Swtpm

GENERIC = "6aaa5fbc"  # PCR 4 after "generic" from zero (test_kexec_finalize)


def platform_open(tpm: Tpm, auth: bytes = b"") -> bool:
    """Whether a platform-authorized command (ClearControl) takes ``auth``; a
    password session, so that it works without a salt key too (test only)."""
    tpm.esapi.tr_set_auth(ESYS_TR.PLATFORM, auth)
    try:
        with translated("Test: platform command"):
            tpm.esapi.clear_control(ESYS_TR.PLATFORM, False)
    except WrongPassphrase:
        return False
    finally:
        tpm.esapi.tr_set_auth(ESYS_TR.PLATFORM, b"")
    return True


def _evict_storage_handle(tpm: Tpm) -> None:
    tpm.esapi.tr_set_auth(ESYS_TR.OWNER, OWNER)
    held = tpm.esapi.tr_from_tpmpublic(handles.PRIMARY_KEY)
    tpm.esapi.evict_control(ESYS_TR.OWNER, held, handles.PRIMARY_KEY)
    tpm.forget_primary()


@pytest.fixture
def no_salt_key(tpm: Tpm) -> Iterator[Tpm]:
    """A signing key where the storage key belongs: the TPM then refuses every
    salted session, so the lock's own command cannot be sent (PCR extends,
    which take no session, still work). Removed afterwards: the next test's
    TPM reset needs a session too."""
    tpm.flush_sessions()
    _evict_storage_handle(tpm)
    template = TPM2B_PUBLIC.parse(
        "ecc256:ecdsa-sha256",
        objectAttributes=(
            TPMA_OBJECT.SIGN_ENCRYPT
            | TPMA_OBJECT.FIXEDTPM
            | TPMA_OBJECT.FIXEDPARENT
            | TPMA_OBJECT.SENSITIVEDATAORIGIN
            | TPMA_OBJECT.USERWITHAUTH
        ),
    )
    signing, _, _, _, _ = tpm.esapi.create_primary(
        TPM2B_SENSITIVE_CREATE(), template, ESYS_TR.OWNER
    )
    tpm.esapi.evict_control(ESYS_TR.OWNER, signing, handles.PRIMARY_KEY)
    tpm.esapi.flush_context(signing)
    tpm.forget_primary()
    try:
        yield tpm
    finally:
        _evict_storage_handle(tpm)


# -- lock_platform --------------------------------------------------------------------


def test_an_open_platform_is_locked_and_a_second_call_says_already_locked(tpm: Tpm) -> None:
    assert platform_open(tpm)  # empty, as coreboot leaves it
    assert lock_platform(tpm) is PlatformLock.LOCKED
    assert not platform_open(tpm)
    assert lock_platform(tpm) is PlatformLock.AUTH_SET
    assert finalize.describe_lock(PlatformLock.AUTH_SET).startswith(
        "TPM platform hierarchy already locked"
    )


def test_a_disabled_platform_hierarchy_counts_as_locked(tpm: Tpm) -> None:
    tpm.esapi.tr_set_auth(ESYS_TR.PLATFORM, b"")
    tpm.esapi.hierarchy_control(
        ESYS_TR.PLATFORM, ESYS_TR.PLATFORM, False, session1=tpm.hmac_session()
    )
    assert lock_platform(tpm) is PlatformLock.DISABLED


def test_any_other_refusal_of_the_change_is_fatal(tpm: Tpm, swtpm: Swtpm) -> None:
    # The TPM is reset under the runtime: the session it holds is gone, so the
    # TPM refuses the change itself for a reason that says nothing of the lock.
    tpm.hmac_session()
    swtpm.power_cycle()
    tpm.startup()
    with pytest.raises(PlatformNotLocked) as refused:
        lock_platform(tpm)
    assert refused.value.rc is not None and refused.value.rc & 0xFFF == 0x918
    assert platform_open(tpm)  # indeed still open


def test_a_closed_tpm_connection_is_fatal() -> None:
    with Swtpm() as own:
        tpm = Tpm.connect(own.tcti)
        tpm.startup()
        own.stop()  # the TPM goes away under the runtime
        try:
            with pytest.raises(PlatformNotLocked):
                lock_platform(tpm)
        finally:
            tpm.esapi.close()


# -- the hand-over --------------------------------------------------------------------


def test_the_handover_stops_when_the_platform_cannot_be_locked(
    no_salt_key: Tpm, secrets: SecretDir
) -> None:
    tpm = no_salt_key
    with pytest.raises(
        KexecError, match="platform authority could not be locked, so nothing was booted"
    ) as stopped:
        finalize.prepare_handover(tpm, secrets)
    assert isinstance(stopped.value.__cause__, PlatformNotLocked)
    assert pcrs.read_pcrs(tpm, [4])[4].hex().startswith(GENERIC)  # PCR 4 came first
    assert (Path(secrets.path) / "luks_key").exists()  # nothing after it ran
    assert platform_open(tpm)


def test_the_handover_locks_an_open_platform(tpm: Tpm, secrets: SecretDir) -> None:
    done = finalize.prepare_handover(tpm, secrets)
    assert done[2] == "Locked the TPM platform hierarchy with a random authorization"
    assert not platform_open(tpm)


# -- the recovery gate ----------------------------------------------------------------


def gate_paths(tmp_path: Path) -> entry.Paths:
    secret = tmp_path / "gate-secret"
    secret.mkdir(mode=0o700, exist_ok=True)
    (secret / "pin").write_bytes(b"1234")
    return entry.Paths(
        secret_dir=str(secret),
        owner_key=str(tmp_path / "owner.asc"),
        restricted_flag=str(tmp_path / "restricted"),
    )


def test_the_gate_locks_an_open_platform_before_the_shell(
    tpm: Tpm, swtpm: Swtpm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TCTI_ENV, swtpm.tcti)
    assert platform_open(tpm)
    assert entry.main(["--reason", "test"], gate_paths(tmp_path)) == 0
    assert not platform_open(tpm)


def test_the_gate_opens_when_the_firmware_set_the_platform_auth(
    tpm: Tpm, swtpm: Swtpm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tpm.esapi.tr_set_auth(ESYS_TR.PLATFORM, b"")
    tpm.esapi.hierarchy_change_auth(ESYS_TR.PLATFORM, b"firmware's", session1=tpm.hmac_session())
    monkeypatch.setenv(TCTI_ENV, swtpm.tcti)
    assert entry.main(["--reason", "test"], gate_paths(tmp_path)) == 0
    assert platform_open(tpm, b"firmware's")  # untouched


def test_the_gate_refuses_the_shell_when_the_platform_cannot_be_locked(
    no_salt_key: Tpm,
    swtpm: Swtpm,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    tpm = no_salt_key
    monkeypatch.setenv(TCTI_ENV, swtpm.tcti)
    paths = gate_paths(tmp_path)
    assert entry.main(["--reason", "test"], paths) == 1  # /init opens no shell
    out = " ".join(capsys.readouterr().out.split())
    assert "The TPM's platform authority could not be locked" in out
    assert "No shell is opened" in out
    assert "0x" not in out  # plain words, no code
    assert (Path(paths.secret_dir) / "pin").exists()  # stopped before the wipe
    assert platform_open(tpm)


def test_a_tpm_that_is_not_the_pinned_one_is_still_locked_in_clear(tpm: Tpm) -> None:
    # The user went on without the (unpinned) TPM: the hand-over still locks
    # its platform hierarchy, with no salted session to send the value in,
    # rather than leave it open or refuse every boot.
    tpm.pin_primary_name(b"\x00\x0b" + bytes(32))
    assert platform_open(tpm)
    assert lock_platform(tpm) is PlatformLock.LOCKED_IN_CLEAR
    assert not platform_open(tpm)
    assert lock_platform(tpm) is PlatformLock.AUTH_SET
