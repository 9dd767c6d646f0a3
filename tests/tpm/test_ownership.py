"""Reset, ownership, the lockout fallback for OVMF-like firmware, and the DA state."""

from __future__ import annotations

import pytest
from tpm2_pytss.constants import ESYS_TR

from runtime.tpm import handles, ownership, pcrs, sealing
from runtime.tpm.connection import Tpm
from runtime.tpm.errors import (
    SealedObjectMissing,
    TpmAbsent,
    TpmLockedOut,
    WrongOwnerPassphrase,
    WrongPassphrase,
)
from tests.tpm.conftest import OWNER
from tools.swtpm import Swtpm


def test_take_ownership_creates_the_storage_key(bare_tpm: Tpm) -> None:
    assert not bare_tpm.has_primary()
    ownership.take_ownership(bare_tpm, OWNER)
    assert bare_tpm.has_primary()
    name = bare_tpm.esapi.tr_get_name(bare_tpm.primary())
    assert bytes(name)[:2] == b"\x00\x0b"  # a sha256 name at 0x81000000


def test_owner_passphrase_is_enforced_after_ownership(tpm: Tpm) -> None:
    with pytest.raises(WrongOwnerPassphrase):
        ownership.create_storage_key(tpm, b"not it")


def _simulate_ovmf(tpm: Tpm) -> None:
    """OVMF leaves the platform hierarchy enabled with a random authorization."""
    tpm.esapi.hierarchy_change_auth(
        ESYS_TR.PLATFORM, b"random platform auth", session1=tpm.hmac_session()
    )


def test_clear_uses_platform_when_it_can(tpm: Tpm) -> None:
    assert ownership.clear_tpm(tpm) == "platform"
    assert not tpm.has_primary()


def test_clear_falls_back_to_lockout_like_on_ovmf(tpm: Tpm) -> None:
    sealed = sealing.seal(tpm, b"x" * 20, (0, 7))
    sealing.store_persistent(tpm, sealed, handles.TOTP_SECRET, OWNER)
    _simulate_ovmf(tpm)
    assert ownership.reset_tpm(tpm, b"new owner", current_lockout_auth=OWNER) == "lockout"
    with pytest.raises(SealedObjectMissing):
        sealing.unseal_persistent(tpm, handles.TOTP_SECRET, (0, 7))
    # The new lockout passphrase (the new owner one by default) clears it again.
    assert ownership.clear_tpm(tpm, b"new owner") == "lockout"


def test_wrong_lockout_passphrase_is_plain(tpm: Tpm) -> None:
    _simulate_ovmf(tpm)
    with pytest.raises(WrongPassphrase) as info:
        ownership.clear_tpm(tpm, b"guess")
    assert "lockout passphrase" in info.value.message


def test_da_state_counts_failures_and_locks_out(tpm: Tpm) -> None:
    state = ownership.da_state(tpm)
    assert (state.failures, state.max_tries, state.in_lockout) == (0, 10, False)
    assert state.recovery_seconds == ownership.DA_RECOVERY_SECONDS
    sealed = sealing.seal(tpm, b"k" * 32, range(8), passphrase=b"right")
    for _ in range(ownership.DA_MAX_TRIES):
        with pytest.raises(WrongPassphrase):
            sealing.unseal(tpm, sealed, b"wrong")
    state = ownership.da_state(tpm)
    assert state.in_lockout and "LOCKED OUT" in state.describe()
    with pytest.raises(TpmLockedOut):
        sealing.unseal(tpm, sealed, b"right")
    # The owner clears the TPM through the lockout hierarchy (still usable).
    ownership.reset_tpm(tpm, OWNER, current_lockout_auth=OWNER)
    assert not ownership.da_state(tpm).in_lockout


def test_pcrs_survive_ownership_changes(tpm: Tpm) -> None:
    pcrs.extend_string(tpm, 4, "generic")
    before = pcrs.read_pcrs(tpm, [4])
    ownership.reset_tpm(tpm, OWNER, current_lockout_auth=OWNER)
    assert pcrs.read_pcrs(tpm, [4]) == before


def test_absent_tpm_is_reported_plainly(tmp_path) -> None:
    with pytest.raises(TpmAbsent) as info:
        Tpm.connect(f"swtpm:path={tmp_path}/nothing.sock")
    assert "does not answer" in info.value.message and info.value.hint


def test_no_device_and_no_override(monkeypatch) -> None:
    from runtime.tpm import connection

    monkeypatch.delenv(connection.TCTI_ENV, raising=False)
    monkeypatch.setattr(connection, "KERNEL_DEVICES", ("/nonexistent/tpmrm0",))
    with pytest.raises(TpmAbsent) as info:
        connection.find_tcti()
    assert "No TPM found" in info.value.message


def test_tpm_that_goes_away(tmp_path) -> None:
    with Swtpm() as sw:
        tpm = Tpm.connect(sw.tcti)
        tpm.startup()
    with pytest.raises(TpmAbsent):
        pcrs.read_pcrs(tpm, [0])


def test_whether_the_lockout_passphrase_is_needed_is_told_without_a_failed_try(tpm: Tpm) -> None:
    assert not ownership.clear_needs_lockout_passphrase(tpm)  # platform still open
    _simulate_ovmf(tpm)
    before = ownership.da_state(tpm).failures
    assert ownership.clear_needs_lockout_passphrase(tpm)  # owned: lockout has one
    with pytest.raises(WrongPassphrase):
        ownership.clear_tpm(tpm)  # refused before any try with an empty passphrase
    assert ownership.da_state(tpm).failures == before
    # the lockout hierarchy is still usable: nothing locked it
    assert ownership.reset_tpm(tpm, b"new owner", current_lockout_auth=OWNER) == "lockout"


def test_a_never_owned_tpm_on_ovmf_is_cleared_without_a_passphrase(bare_tpm: Tpm) -> None:
    _simulate_ovmf(bare_tpm)
    assert not ownership.clear_needs_lockout_passphrase(bare_tpm)
    assert ownership.clear_tpm(bare_tpm) == "lockout"


def test_over_long_passphrases_are_refused_before_anything_changes(tpm: Tpm) -> None:
    with pytest.raises(WrongOwnerPassphrase):
        ownership.check_owner_passphrase(tpm, b"x" * 65)  # tpm2-pytss fails above 64
    with pytest.raises(ValueError):
        ownership.reset_tpm(tpm, b"y" * 33)
    assert tpm.has_primary()  # not cleared for a passphrase it would refuse
    with pytest.raises(WrongPassphrase):
        ownership.reset_tpm(tpm, OWNER, current_lockout_auth=b"z" * 70)
    assert tpm.has_primary()
