"""The handover before kexec -e on a real swtpm: PCR 4, flushed contexts, locked platform."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from tpm2_pytss.constants import ESYS_TR, TPM2_ALG, TPM2_CAP, TPM2_HC, TPM2_SE
from tpm2_pytss.types import TPM2B_SENSITIVE_CREATE, TPMT_SYM_DEF

from runtime.kexec import finalize
from runtime.kexec.errors import KexecError
from runtime.secrets.ram import SecretDir
from runtime.tpm import pcrs
from runtime.tpm.connection import Tpm
from runtime.tpm.errors import TpmCommandError, WrongPassphrase, translated
from runtime.tpm.templates import primary_template


def chain(*markers: str) -> bytes:
    value = bytes(32)
    for marker in markers:
        value = hashlib.sha256(value + hashlib.sha256(marker.encode()).digest()).digest()
    return value


def fake_umount(tmp_path: Path, fail: str = "") -> str:
    """A umount that records its argument and fails for mount point ``fail``."""
    path = tmp_path / "umount"
    path.write_text(
        "#!/bin/sh\n"
        f'echo "$1" >> "{tmp_path}/umounts"\n'
        f'if [ "$1" = "{fail}" ]; then echo "umount: $1: target is busy." >&2; exit 32; fi\n'
    )
    path.chmod(0o755)
    return str(path)


def context_handles(tpm: Tpm) -> list[int]:
    found = []
    for first in (
        TPM2_HC.TRANSIENT_FIRST,
        TPM2_HC.LOADED_SESSION_FIRST,
        TPM2_HC.ACTIVE_SESSION_FIRST,
    ):
        _, data = tpm.esapi.get_capability(TPM2_CAP.HANDLES, first, 64)
        found += [int(h) for h in data.data.handles]
    return found


def platform_usable(tpm: Tpm, auth: bytes = b"") -> bool:
    """Try a platform-authorized command (ClearControl, allowing Clear) with ``auth``."""
    tpm.esapi.tr_set_auth(ESYS_TR.PLATFORM, auth)
    try:
        with translated("Test: platform command"):
            tpm.esapi.clear_control(ESYS_TR.PLATFORM, False, session1=tpm.hmac_session())
    except WrongPassphrase:
        tpm.flush_sessions()
        return False
    return True


def test_reference_chain_matches_heads_value() -> None:
    assert chain("generic").hex().startswith("6aaa5fbc")
    assert chain("generic").hex().endswith("9a448e")


def test_verified_boot_extends_generic(tpm: Tpm, secrets: SecretDir, tmp_path: Path) -> None:
    assert pcrs.read_pcrs(tpm, [4])[4] == bytes(32)
    done = finalize.prepare_handover(
        tpm, secrets, mount_points=["/boot"], umount_binary=fake_umount(tmp_path)
    )
    assert pcrs.read_pcrs(tpm, [4])[4] == chain("generic")
    assert [m.description for m in tpm.log.for_pcr(4)] == ["generic"]
    assert done[0] == 'Extended PCR 4 with "generic"'
    assert done[-1] == "Unmounted /boot"
    assert len(done) == 6


def test_unsafe_boot_differs_from_verified(tpm: Tpm, secrets: SecretDir) -> None:
    done = finalize.prepare_handover(tpm, secrets, unsafe=True)
    value = pcrs.read_pcrs(tpm, [4])[4]
    assert value == chain("unsafe", "generic")
    assert value != chain("generic")
    assert done[0] == 'Extended PCR 4 with "unsafe", then "generic"'


def stray_session(tpm: Tpm) -> ESYS_TR:
    return tpm.esapi.start_auth_session(
        tpm_key=ESYS_TR.NONE,
        bind=ESYS_TR.NONE,
        session_type=TPM2_SE.HMAC,
        symmetric=TPMT_SYM_DEF(algorithm=TPM2_ALG.NULL),
        auth_hash=TPM2_ALG.SHA256,
    )


def test_contexts_are_flushed(tpm: Tpm, secrets: SecretDir) -> None:
    # A transient key, the runtime's own sessions, a stray session and a saved one.
    tpm.esapi.create_primary(TPM2B_SENSITIVE_CREATE(), primary_template(), ESYS_TR.NULL)
    tpm.esapi.context_save(stray_session(tpm))  # first: swtpm loads only 3 sessions
    tpm.hmac_session()
    tpm.policy_session()
    stray_session(tpm)
    _, data = tpm.esapi.get_capability(TPM2_CAP.HANDLES, TPM2_HC.ACTIVE_SESSION_FIRST, 64)
    assert len(data.data.handles) == 1  # the saved session
    assert len(context_handles(tpm)) == 5
    assert finalize.flush_contexts(tpm) == (
        "Flushed 3 more TPM contexts (transient objects and sessions)"
    )
    assert context_handles(tpm) == []
    # the Tpm object forgot its flushed sessions and makes new ones when asked
    pcrs.read_pcrs(tpm, [4])
    assert tpm.hmac_session() is not None
    finalize.prepare_handover(tpm, secrets)
    assert context_handles(tpm) == []


def test_platform_auth_is_changed(tpm: Tpm, secrets: SecretDir) -> None:
    assert platform_usable(tpm)  # the fixture leaves it empty, as coreboot does
    done = finalize.prepare_handover(tpm, secrets)
    assert "Locked the TPM platform hierarchy with a random authorization" in done
    assert not platform_usable(tpm)  # the old empty authorization no longer works


def test_a_platform_auth_set_by_the_firmware_counts_as_locked(tpm: Tpm, secrets: SecretDir) -> None:
    # Firmware like OVMF leaves its own random platform authorization behind.
    tpm.esapi.hierarchy_change_auth(ESYS_TR.PLATFORM, b"firmware's", session1=tpm.hmac_session())
    done = finalize.prepare_handover(tpm, secrets)
    assert done[2] == "TPM platform hierarchy already locked: its authorization is set"
    assert platform_usable(tpm, b"firmware's")  # untouched
    assert list(Path(secrets.path).iterdir()) == []  # later steps still ran
    assert pcrs.read_pcrs(tpm, [4])[4] == chain("generic")


def test_secrets_are_wiped(tpm: Tpm, secrets: SecretDir) -> None:
    (Path(secrets.path) / "sub").mkdir()
    (Path(secrets.path) / "sub" / "x").write_bytes(b"y")
    done = finalize.prepare_handover(tpm, secrets)
    assert f"Wiped 2 secret files in {secrets.path}" in done
    assert list(Path(secrets.path).iterdir()) == []


def test_pcr4_failure_stops_the_handover(
    tpm: Tpm, secrets: SecretDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: object, **__: object) -> None:
        raise TpmCommandError("Extending PCR 4 failed: TPM error")

    monkeypatch.setattr(pcrs, "extend_string", broken)
    with pytest.raises(TpmCommandError):
        finalize.prepare_handover(tpm, secrets)
    assert platform_usable(tpm)  # nothing after the extend ran
    assert (Path(secrets.path) / "luks_key").exists()


def test_unmount_failure_is_reported_not_fatal(secrets: SecretDir, tmp_path: Path) -> None:
    umount = fake_umount(tmp_path, fail="/media")
    done = finalize.prepare_handover(
        None, secrets, mount_points=["/media", "/boot"], umount_binary=umount
    )
    assert done == [
        "No TPM: PCR 4 not extended, no TPM state to lock",
        f"Wiped 1 secret files in {secrets.path}",
        "Flushed file system buffers to disk",
        "Could not unmount /media: a program may still use it, or the file system has an error.",
        "Unmounted /boot",
    ]
    assert (tmp_path / "umounts").read_text() == "/media\n/boot\n"


def test_unmount_timeout_and_missing_binary(tmp_path: Path) -> None:
    slow = tmp_path / "slow-umount"
    slow.write_text("#!/bin/sh\nexec sleep 30\n")
    slow.chmod(0o755)
    with pytest.raises(KexecError, match=r"took over 0\.3 s"):
        finalize.unmount("/boot", umount_binary=str(slow), timeout=0.3)
    with pytest.raises(KexecError, match="cannot run"):
        finalize.unmount("/boot", umount_binary=str(tmp_path / "none"))
