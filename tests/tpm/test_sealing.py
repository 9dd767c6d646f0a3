"""Sealing and unsealing on a real swtpm: positive paths and every refusal."""

from __future__ import annotations

import pytest
from tpm2_pytss import TSS2_Exception
from tpm2_pytss.constants import ESYS_TR, TPM2_ALG, TPM2_SE
from tpm2_pytss.types import TPMT_SYM_DEF

from runtime.tpm import handles, nv, pcrs, rng, sealing
from runtime.tpm.connection import Tpm
from runtime.tpm.errors import (
    RC_AUTH_UNAVAILABLE,
    NvIndexMissing,
    PcrsChanged,
    SealedObjectMissing,
    WrongOwnerPassphrase,
    WrongPassphrase,
    base_code,
)
from runtime.tpm.pcr_math import Bank, extend, measure_string
from runtime.tpm.policy_math import PcrSelection, PolicyDigest, pcr_policy
from tests.tpm.conftest import OWNER

# Trial sessions need no parameter encryption; tpm2-pytss 2.x refuses None here.
_NO_SYMMETRIC = TPMT_SYM_DEF(algorithm=TPM2_ALG.NULL)

TOTP_PCRS = (0, 1, 2, 3, 4, 7)
DUK_PCRS = tuple(range(8))


@pytest.mark.parametrize("size", [1, 20, 64, 128])
def test_secret_reads_back_byte_exact(tpm: Tpm, size: int) -> None:
    secret = rng.random_bytes(tpm, size)
    sealed = sealing.seal(tpm, secret, TOTP_PCRS)
    assert bytes(sealing.unseal(tpm, sealed)) == secret
    # Twice in a row: the reused policy session is restarted correctly.
    assert bytes(sealing.unseal(tpm, sealed)) == secret


@pytest.mark.parametrize("pcr", TOTP_PCRS)
def test_extending_any_policy_pcr_refuses_and_names_it(tpm: Tpm, pcr: int) -> None:
    sealed = sealing.seal(tpm, b"totp secret 20 bytes", TOTP_PCRS)
    pcrs.extend(tpm, pcr, b"tamper", "tamper")
    with pytest.raises(PcrsChanged) as info:
        sealing.unseal(tpm, sealed)
    assert [m.pcr for m in info.value.mismatches] == [pcr]
    assert f"{pcr}" in info.value.message and info.value.hint


def test_other_pcrs_do_not_matter(tpm: Tpm) -> None:
    sealed = sealing.seal(tpm, b"s" * 20, TOTP_PCRS)
    pcrs.extend(tpm, 5, b"module", "module")
    pcrs.extend(tpm, 9, b"initrd", "initrd")
    assert bytes(sealing.unseal(tpm, sealed)) == b"s" * 20


def test_passphrase_right_wrong_and_missing(tpm: Tpm) -> None:
    key = rng.random_bytes(tpm, 128)
    sealed = sealing.seal(tpm, key, DUK_PCRS, passphrase=b"correct horse battery")
    assert bytes(sealing.unseal(tpm, sealed, b"correct horse battery")) == key
    with pytest.raises(WrongPassphrase):
        sealing.unseal(tpm, sealed, b"correct horse batterY")
    with pytest.raises(ValueError):
        sealing.unseal(tpm, sealed)
    # The right passphrase still works after a failure (a fresh policy session is used).
    assert bytes(sealing.unseal(tpm, sealed, b"correct horse battery")) == key


def test_passphrase_alone_never_unseals(tpm: Tpm) -> None:
    # The object has no USERWITHAUTH: a plain password session with the right
    # passphrase, without the PCR policy, must be refused by the TPM.
    sealed = sealing.seal(tpm, b"k" * 32, DUK_PCRS, passphrase=b"pw")
    sealing.store_persistent(tpm, sealed, handles.DISK_UNLOCK_KEY, OWNER)
    obj = tpm.esapi.tr_from_tpmpublic(handles.DISK_UNLOCK_KEY)
    tpm.esapi.tr_set_auth(obj, b"pw")
    with pytest.raises(TSS2_Exception) as info:
        tpm.esapi.unseal(obj)  # password session
    assert base_code(info.value.rc) == RC_AUTH_UNAVAILABLE


def test_pcrs_are_checked_before_the_passphrase(tpm: Tpm) -> None:
    sealed = sealing.seal(tpm, b"k" * 32, DUK_PCRS, passphrase=b"pw")
    pcrs.extend_string(tpm, 4, "recovery")
    with pytest.raises(PcrsChanged):
        sealing.unseal(tpm, sealed, b"pw")


def test_seal_to_predicted_future_pcr(tpm: Tpm) -> None:
    # Seal to what PCR 4 will hold after the "generic" boot extend
    # (../shared/reference/heads-facts.md §2.3).
    current = pcrs.read_pcrs(tpm, TOTP_PCRS)
    future4 = extend(Bank.SHA256, current[4], measure_string(Bank.SHA256, "generic"))
    sealed = sealing.seal(tpm, b"future", TOTP_PCRS, pcr_values={4: future4})
    with pytest.raises(PcrsChanged):
        sealing.unseal(tpm, sealed)
    pcrs.extend_string(tpm, 4, "generic")
    assert bytes(sealing.unseal(tpm, sealed)) == b"future"


def test_offline_policy_equals_tpm_trial_policy(tpm: Tpm) -> None:
    pcrs.extend(tpm, 7, b"config", "config")
    values = pcrs.read_pcrs(tpm, DUK_PCRS)
    trial = tpm.esapi.start_auth_session(
        ESYS_TR.NONE, ESYS_TR.NONE, TPM2_SE.TRIAL, _NO_SYMMETRIC, TPM2_ALG.SHA256
    )
    try:
        digest = Bank.SHA256.hash(b"".join(values[p] for p in DUK_PCRS))
        tpm.esapi.policy_pcr(trial, digest, pcrs.selection(Bank.SHA256, DUK_PCRS))
        tpm.esapi.policy_auth_value(trial)
        from_tpm = bytes(tpm.esapi.policy_get_digest(trial))
    finally:
        tpm.esapi.flush_context(trial)
    assert from_tpm == pcr_policy(Bank.SHA256, values, DUK_PCRS, with_auth_value=True)


def test_offline_policy_nv_equals_tpm(tpm: Tpm) -> None:
    from runtime.tpm.nv_attrs import NvAttr
    from runtime.tpm.policy_math import NvOperation, nv_public_name

    index = 0x01500010
    attrs = NvAttr.OWNERWRITE | NvAttr.OWNERREAD | NvAttr.AUTHREAD | NvAttr.NO_DA
    nv.define(tpm, index, 8, attrs, OWNER)
    nv.write(tpm, index, b"\x00" * 7 + b"\x05", owner_auth=OWNER)
    name = nv.info(tpm, index).name
    assert name == nv_public_name(index, nv.info(tpm, index).attributes, 8)
    trial = tpm.esapi.start_auth_session(
        ESYS_TR.NONE, ESYS_TR.NONE, TPM2_SE.TRIAL, _NO_SYMMETRIC, TPM2_ALG.SHA256
    )
    handle = tpm.esapi.tr_from_tpmpublic(index)
    try:
        operand = b"\x00" * 7 + b"\x03"
        tpm.esapi.policy_nv(handle, handle, trial, operand, NvOperation.UNSIGNED_GE, offset=0)
        from_tpm = bytes(tpm.esapi.policy_get_digest(trial))
    finally:
        tpm.esapi.flush_context(trial)
        tpm.esapi.tr_close(handle)
    assert from_tpm == PolicyDigest().nv(name, operand, 0, NvOperation.UNSIGNED_GE).value
    assert PcrSelection.of(Bank.SHA256, [1]).pcrs == (1,)


def test_persistent_object_at_heads_handle(tpm: Tpm) -> None:
    sealed = sealing.seal(tpm, b"t" * 20, TOTP_PCRS)
    sealing.store_persistent(tpm, sealed, handles.TOTP_SECRET, OWNER)
    assert bytes(sealing.unseal_persistent(tpm, handles.TOTP_SECRET, TOTP_PCRS)) == b"t" * 20
    # Replacing it keeps one object at the handle, with the new secret.
    sealing.store_persistent(
        tpm, sealing.seal(tpm, b"u" * 20, TOTP_PCRS), handles.TOTP_SECRET, OWNER
    )
    assert bytes(sealing.unseal_persistent(tpm, handles.TOTP_SECRET, TOTP_PCRS)) == b"u" * 20
    pcrs.extend_string(tpm, 4, "recovery")
    with pytest.raises(PcrsChanged):
        sealing.unseal_persistent(tpm, handles.TOTP_SECRET, TOTP_PCRS)
    assert sealing.remove_persistent(tpm, handles.TOTP_SECRET, OWNER)
    with pytest.raises(SealedObjectMissing):
        sealing.unseal_persistent(tpm, handles.TOTP_SECRET, TOTP_PCRS)


def test_persistent_store_needs_the_owner_passphrase(tpm: Tpm) -> None:
    sealed = sealing.seal(tpm, b"t" * 20, TOTP_PCRS)
    with pytest.raises(WrongOwnerPassphrase):
        sealing.store_persistent(tpm, sealed, handles.TOTP_SECRET, b"not the owner")


def test_persistent_with_passphrase(tpm: Tpm) -> None:
    sealed = sealing.seal(tpm, b"d" * 128, DUK_PCRS, passphrase=b"disk pass")
    sealing.store_persistent(tpm, sealed, handles.DISK_UNLOCK_KEY, OWNER)
    got = sealing.unseal_persistent(tpm, handles.DISK_UNLOCK_KEY, DUK_PCRS, b"disk pass")
    assert bytes(got) == b"d" * 128
    with pytest.raises(WrongPassphrase):
        sealing.unseal_persistent(tpm, handles.DISK_UNLOCK_KEY, DUK_PCRS, b"disk pasS")


def test_sealed_blob_in_nv(tpm: Tpm) -> None:
    index = 0x01804D47
    with pytest.raises(NvIndexMissing):
        nv.load_sealed(tpm, index)
    first = sealing.seal(tpm, b"first secret", TOTP_PCRS)
    nv.store_sealed(tpm, first, index, OWNER)
    assert bytes(sealing.unseal(tpm, nv.load_sealed(tpm, index))) == b"first secret"
    nv.store_sealed(tpm, sealing.seal(tpm, b"second", TOTP_PCRS, passphrase=b"p"), index, OWNER)
    assert bytes(sealing.unseal(tpm, nv.load_sealed(tpm, index), b"p")) == b"second"


def test_sealing_refuses_bad_sizes(tpm: Tpm) -> None:
    with pytest.raises(ValueError):
        sealing.seal(tpm, b"", TOTP_PCRS)
    with pytest.raises(ValueError):
        sealing.seal(tpm, b"x" * 129, TOTP_PCRS)
    with pytest.raises(ValueError):
        sealing.seal(tpm, b"x", TOTP_PCRS, passphrase=b"y" * 33)


def test_secret_from_a_cleared_tpm_is_gone(tpm: Tpm) -> None:
    from runtime.tpm.ownership import reset_tpm

    sealed = sealing.seal(tpm, b"x" * 20, TOTP_PCRS)
    reset_tpm(tpm, OWNER)
    with pytest.raises(Exception) as info:
        sealing.unseal(tpm, sealed)
    assert "Loading the sealed secret" in str(info.value)
