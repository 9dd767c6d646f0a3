"""The OS cannot deny the TOTP by locking the TPM out (issue 27, finding 4), on a
real swtpm: the lockout is caused as an OS can cause it (wrong authorizations
to a key of its own), then everything a normal boot needs without a
passphrase must still work; the lockout is cleared with the lockout
passphrase, and a wrong one is refused in plain words. Negative controls
prove the lockout is real: what is not exempted (a storage key or counter
made the old way, a secret with a passphrase) is refused in it."""

from __future__ import annotations

import pytest
from tpm2_pytss import TSS2_Exception
from tpm2_pytss.constants import ESYS_TR, TPMA_OBJECT
from tpm2_pytss.types import (
    TPM2B_PUBLIC,
    TPM2B_SENSITIVE_CREATE,
    TPMS_SENSITIVE_CREATE,
)

from runtime.integrity.tpm_counter import TpmCounter
from runtime.secrets.hotp.counter import TpmCounterStore
from runtime.secrets.totp import unseal_totp
from runtime.state.device_platform import DevicePlatform
from runtime.state.platform import LockoutOutcome
from runtime.tpm import counters, handles, nv, ownership, sealing
from runtime.tpm.connection import Tpm
from runtime.tpm.errors import (
    RC_LOCKOUT,
    LockoutPassphraseBlocked,
    TpmLockedOut,
    WrongLockoutPassphrase,
    base_code,
    translated,
)
from runtime.tpm.nv_attrs import DA_PROTECTED_COUNTER_ATTRIBUTES, NvAttr, counter_problem
from runtime.tpm.templates import (
    DA_PROTECTED_PRIMARY_ATTRIBUTES,
    PRIMARY_ATTRIBUTES,
    sealed_template,
)
from tests.tpm.conftest import OWNER
from tools.swtpm import Swtpm

#: Few tries, so the lockout comes fast; the recovery times are the runtime's
#: (a failure forgiven per hour, a wrong lockout passphrase blocks until restart).
MAX_TRIES = 3
SEAL_PCRS = (7, 9)
RUNTIME_PCR = 9


pytestmark = pytest.mark.usefixtures("da_restored")


def _few_tries(tpm: Tpm, lockout_auth: bytes = OWNER) -> None:
    tpm.esapi.tr_set_auth(ESYS_TR.LOCKOUT, lockout_auth)
    tpm.esapi.dictionary_attack_parameters(
        MAX_TRIES,
        ownership.DA_RECOVERY_SECONDS,
        ownership.DA_LOCKOUT_RECOVERY_SECONDS,
        session1=tpm.hmac_session(),
    )
    tpm.esapi.tr_set_auth(ESYS_TR.LOCKOUT, b"")


def _lock_out(tpm: Tpm, lockout_auth: bytes = OWNER) -> None:
    """Lock the TPM out as an OS can without any passphrase of the owner's: a
    key of its own (NULL hierarchy, with an authorization value), then wrong
    authorizations to it until the TPM answers TPM_RC_LOCKOUT."""
    _few_tries(tpm, lockout_auth)
    own_key, _, _, _, _ = tpm.esapi.create_primary(
        TPM2B_SENSITIVE_CREATE(sensitive=TPMS_SENSITIVE_CREATE(userAuth=b"the OS's own")),
        TPM2B_PUBLIC.parse("ecc256:aes128cfb", objectAttributes=DA_PROTECTED_PRIMARY_ATTRIBUTES),
        ESYS_TR.NULL,
    )
    tpm.esapi.tr_set_auth(own_key, b"wrong")
    child = TPM2B_SENSITIVE_CREATE(sensitive=TPMS_SENSITIVE_CREATE(data=b"x"))
    try:
        for _ in range(MAX_TRIES + 2):
            try:
                tpm.esapi.create(own_key, child, sealed_template(b""), session1=ESYS_TR.PASSWORD)
            except TSS2_Exception as exc:
                if base_code(exc.rc) == RC_LOCKOUT:
                    break
            else:
                raise AssertionError("a wrong authorization was accepted")
        else:
            raise AssertionError("the TPM never locked out")
    finally:
        tpm.esapi.flush_context(own_key)
    assert ownership.da_state(tpm).in_lockout


def _seal_totp(tpm: Tpm) -> None:
    """As enrolment stores the TOTP secret: PCR-only, a blob in NV."""
    sealed = sealing.seal(tpm, bytes(range(20)), SEAL_PCRS)
    nv.store_sealed(tpm, sealed, handles.TOTP_SEALED_NV, OWNER)


def _object_attributes(tpm: Tpm, handle: ESYS_TR) -> int:
    public, _, _ = tpm.esapi.read_public(handle)
    return int(public.publicArea.objectAttributes)


def _replace_primary_with_one_made_the_old_way(tpm: Tpm) -> None:
    """A TPM owned before the storage key was exempted from the lockout."""
    tpm.esapi.tr_set_auth(ESYS_TR.OWNER, OWNER)
    tpm.esapi.evict_control(
        ESYS_TR.OWNER, tpm.primary(), handles.PRIMARY_KEY, session1=tpm.hmac_session()
    )
    tpm.forget_primary()
    old_template = TPM2B_PUBLIC.parse(
        "ecc256:aes128cfb", objectAttributes=DA_PROTECTED_PRIMARY_ATTRIBUTES
    )
    old, _, _, _, _ = tpm.esapi.create_primary(
        TPM2B_SENSITIVE_CREATE(), old_template, ESYS_TR.OWNER, session1=tpm.hmac_session()
    )
    persistent = tpm.esapi.evict_control(
        ESYS_TR.OWNER, old, handles.PRIMARY_KEY, session1=tpm.hmac_session()
    )
    tpm.esapi.tr_close(persistent)
    tpm.esapi.flush_context(old)
    tpm.forget_primary()
    assert not _object_attributes(tpm, tpm.primary()) & TPMA_OBJECT.NODA


# -- what a normal boot needs keeps working --------------------------------------


def test_the_totp_secret_sealed_after_a_fresh_ownership_unseals_in_lockout(tpm: Tpm) -> None:
    assert PRIMARY_ATTRIBUTES & TPMA_OBJECT.NODA
    assert _object_attributes(tpm, tpm.primary()) & TPMA_OBJECT.NODA
    _seal_totp(tpm)
    _lock_out(tpm)
    result = unseal_totp(tpm, RUNTIME_PCR)
    assert result.code is not None, result.message
    assert ownership.da_state(tpm).in_lockout  # the unseal did not need it cleared


def test_the_sealed_object_is_exempted_only_without_a_passphrase(tpm: Tpm) -> None:
    plain = sealing.seal(tpm, b"p" * 20, SEAL_PCRS)
    guarded = sealing.seal(tpm, b"g" * 20, SEAL_PCRS, passphrase=b"right")
    for sealed, exempt in ((plain, True), (guarded, False)):
        public, _ = TPM2B_PUBLIC.unmarshal(sealed.public)
        assert bool(public.publicArea.objectAttributes & TPMA_OBJECT.NODA) is exempt
    _lock_out(tpm)
    assert bytes(sealing.unseal(tpm, plain)) == b"p" * 20
    # a passphrase stays guarded against guessing: refused, even the right one
    with pytest.raises(TpmLockedOut):
        sealing.unseal(tpm, guarded, b"right")


def test_the_rollback_and_hotp_counters_read_and_move_in_lockout(tpm: Tpm) -> None:
    rollback = TpmCounter(tpm, OWNER)
    index = rollback.create()
    counters.increment_counter(tpm, index)
    hotp = TpmCounterStore.open_or_create(tpm, OWNER)
    _lock_out(tpm)
    before = rollback.read(index)
    assert before is not None
    assert counters.increment_counter(tpm, index) == before + 1
    assert rollback.read(index) == before + 1
    counters.check_counter(tpm, index)
    assert counters.rollback_counters(tpm) == [index]
    start = hotp.read()
    hotp.advance_to(start + 2)
    assert hotp.read() == start + 2
    for exempt in (index, handles.HOTP_COUNTER_NV):
        assert nv.info(tpm, exempt).attributes & NvAttr.NO_DA


# -- negative controls: the lockout is real ---------------------------------------


def test_a_storage_key_without_noda_cannot_load_a_blob_in_lockout(tpm: Tpm) -> None:
    tpm.esapi.tr_set_auth(ESYS_TR.OWNER, OWNER)
    old, _, _, _, _ = tpm.esapi.create_primary(
        TPM2B_SENSITIVE_CREATE(),
        TPM2B_PUBLIC.parse("ecc256:aes128cfb", objectAttributes=DA_PROTECTED_PRIMARY_ATTRIBUTES),
        ESYS_TR.OWNER,
        session1=tpm.hmac_session(),
    )
    try:
        data = TPM2B_SENSITIVE_CREATE(sensitive=TPMS_SENSITIVE_CREATE(data=b"s" * 20))
        blob = tpm.esapi.create(
            old, data, sealed_template(b"", no_da=True), session1=tpm.hmac_session()
        )
        ours = tpm.esapi.create(
            tpm.primary(), data, sealed_template(b"", no_da=True), session1=tpm.hmac_session()
        )
        _lock_out(tpm)
        with pytest.raises(TpmLockedOut), translated("Loading under the old storage key"):
            tpm.esapi.load(old, blob[0], blob[1], session1=ESYS_TR.PASSWORD)
        # the same blob under the exempted key loads
        tpm.esapi.flush_context(
            tpm.esapi.load(tpm.primary(), ours[0], ours[1], session1=ESYS_TR.PASSWORD)
        )
    finally:
        tpm.esapi.flush_context(old)


def test_an_old_storage_key_works_until_a_lockout_and_again_once_cleared(tpm: Tpm) -> None:
    _replace_primary_with_one_made_the_old_way(tpm)
    _seal_totp(tpm)
    assert unseal_totp(tpm, RUNTIME_PCR).code is not None  # not locked out: works
    _lock_out(tpm)
    refused = unseal_totp(tpm, RUNTIME_PCR)
    assert refused.code is None and refused.failure == "tpm-error"
    # what the screen says first: the lockout passphrase, not only a reset
    assert "Clear the lockout with the TPM lockout passphrase" in refused.message
    ownership.clear_lockout(tpm, OWNER)
    state = ownership.da_state(tpm)
    assert not state.in_lockout and state.failures == 0
    assert unseal_totp(tpm, RUNTIME_PCR).code is not None


def test_counters_defined_without_noda_are_still_ours_but_stop_in_lockout(tpm: Tpm) -> None:
    old = 0x01ABCDEF  # as Heads, and this runtime before NO_DA, define one
    nv.define(tpm, old, counters.COUNTER_SIZE, DA_PROTECTED_COUNTER_ATTRIBUTES, OWNER)
    value = counters.increment_counter(tpm, old)
    attributes = nv.info(tpm, old).attributes
    assert not attributes & NvAttr.NO_DA and counter_problem(attributes) is None
    assert counters.rollback_counters(tpm) == [old]  # retired with ours, checked as ours
    _lock_out(tpm)
    with pytest.raises(TpmLockedOut):
        counters.read_counter(tpm, old)
    with pytest.raises(TpmLockedOut):
        counters.increment_counter(tpm, old)
    ownership.clear_lockout(tpm, OWNER)
    assert counters.read_counter(tpm, old) == value


# -- clearing the lockout ---------------------------------------------------------


def test_the_right_lockout_passphrase_clears_the_lockout(tpm: Tpm) -> None:
    _seal_totp(tpm)
    _lock_out(tpm)
    ownership.clear_lockout(tpm, OWNER)
    state = ownership.da_state(tpm)
    assert (state.in_lockout, state.failures) == (False, 0)
    assert tpm.has_primary()  # nothing else changed
    assert unseal_totp(tpm, RUNTIME_PCR).code is not None


def test_a_wrong_lockout_passphrase_is_refused_plainly_until_a_restart(
    tpm: Tpm, swtpm: Swtpm
) -> None:
    _lock_out(tpm)
    with pytest.raises(WrongLockoutPassphrase) as wrong:
        ownership.clear_lockout(tpm, b"not the lockout passphrase")
    words = wrong.value.plain()
    assert "refused the lockout passphrase: it is wrong" in words
    assert "until the machine restarts" in words
    # the lockout passphrase itself is blocked now (lockoutRecovery 0: until restart)
    with pytest.raises(LockoutPassphraseBlocked) as blocked:
        ownership.clear_lockout(tpm, OWNER)
    assert "refuses the lockout passphrase for now" in blocked.value.plain()
    assert ownership.da_state(tpm).in_lockout
    tpm.close()
    swtpm.power_cycle()  # the restart the words ask for
    with Tpm.connect(swtpm.tcti) as again:
        again.startup()
        assert ownership.da_state(again).in_lockout  # a restart alone does not end it
        ownership.clear_lockout(again, OWNER)
        assert not ownership.da_state(again).in_lockout


def test_an_empty_lockout_passphrase_is_not_tried(tpm: Tpm) -> None:
    # The TPM gives the lockout passphrase one try: an empty answer, which
    # cannot be right when one is set, must not spend it.
    _lock_out(tpm)
    with pytest.raises(WrongLockoutPassphrase, match="it was not tried"):
        ownership.clear_lockout(tpm, b"")
    ownership.clear_lockout(tpm, OWNER)
    assert not ownership.da_state(tpm).in_lockout


def test_the_device_platform_says_which_refusal_and_how_long(tpm: Tpm) -> None:
    platform = DevicePlatform()
    platform.tpm = tpm
    assert not platform.tpm_lockout().locked_out
    _lock_out(tpm)
    facts = platform.tpm_lockout()
    assert facts.locked_out and facts.passphrase_set and facts.max_tries == MAX_TRIES
    assert facts.lockout_recovery_seconds == ownership.DA_LOCKOUT_RECOVERY_SECONDS
    wrong = platform.clear_lockout(bytearray(b"not it"))
    assert wrong.outcome is LockoutOutcome.WRONG_PASSPHRASE
    assert wrong.lockout_recovery_seconds == 0
    assert platform.clear_lockout(bytearray(OWNER)).outcome is LockoutOutcome.BLOCKED


def test_the_device_platform_clears_with_the_right_passphrase(tpm: Tpm) -> None:
    platform = DevicePlatform()
    platform.tpm = tpm
    _lock_out(tpm)
    assert platform.clear_lockout(bytearray(OWNER)).outcome is LockoutOutcome.CLEARED
    assert not platform.tpm_lockout().locked_out


def test_no_passphrase_is_tried_when_none_is_given_or_none_can_be_right(tpm: Tpm) -> None:
    _lock_out(tpm)
    failures = ownership.da_state(tpm).failures
    for auth in (None, b"x" * 33):
        with pytest.raises(WrongLockoutPassphrase) as untried:
            ownership.clear_lockout(tpm, auth)
        assert untried.value.rc is None and "not tried" in untried.value.plain()
    platform = DevicePlatform()
    platform.tpm = tpm
    facts = platform.clear_lockout(bytearray(b"x" * 33))
    assert facts.outcome is LockoutOutcome.FAILED and "not tried" in facts.problem
    # nothing was tried: the lockout passphrase is not blocked
    ownership.clear_lockout(tpm, OWNER)
    assert failures and not ownership.da_state(tpm).in_lockout


def test_a_tpm_without_a_lockout_passphrase_is_cleared_without_one(bare_tpm: Tpm) -> None:
    assert not ownership.da_state(bare_tpm).lockout_auth_set
    _lock_out(bare_tpm, lockout_auth=b"")
    ownership.clear_lockout(bare_tpm, None)
    assert not ownership.da_state(bare_tpm).in_lockout
