"""CONFIG_PRIMARY_KEY_TYPE on a real swtpm: a reset makes the storage key of
that type at 0x81000000 (Heads: `tpm2 createprimary -G rsa|ecc`), and
everything that uses the key (salted sessions, the Name check and its pin,
sealing, Heads' kexec_primhdl_hash.txt) works with an RSA one too."""

from __future__ import annotations

from pathlib import Path

import pytest
from tpm2_pytss.constants import TPM2_ALG, TPM2_ECC
from tpm2_pytss.types import TPMT_PUBLIC

from runtime import bootlog
from runtime.config import LoadedSettings, Settings
from runtime.integrity.primary_handle import (
    format_primary_hash,
    primary_handle_bytes,
    primary_hash_matches,
)
from runtime.state.device_platform import DevicePlatform
from runtime.tpm import handles, ownership, pcrs, sealing
from runtime.tpm.connection import Tpm
from runtime.tpm.pcr_math import Bank
from runtime.tpm.templates import PRIMARY_ATTRIBUTES
from tests.tpm.conftest import OWNER

pytestmark = pytest.mark.tpm

PCRS = (0, 7)


def _storage_key(tpm: Tpm) -> TPMT_PUBLIC:
    """The public area at 0x81000000, as the TPM answers ReadPublic."""
    tpm.forget_primary()
    public, _, _ = tpm.esapi.read_public(tpm.primary())
    return public.publicArea


def _assert_common(area: TPMT_PUBLIC) -> None:
    assert area.nameAlg == TPM2_ALG.SHA256
    assert area.objectAttributes == PRIMARY_ATTRIBUTES


def test_a_reset_with_rsa_makes_an_rsa_2048_storage_key(tpm: Tpm) -> None:
    ownership.reset_tpm(tpm, OWNER, key_type="rsa")
    area = _storage_key(tpm)
    assert area.type == TPM2_ALG.RSA
    _assert_common(area)
    rsa = area.parameters.rsaDetail
    assert rsa.keyBits == 2048
    assert rsa.exponent == 0  # 65537
    assert rsa.scheme.scheme == TPM2_ALG.NULL  # a restricted decryption key
    assert (rsa.symmetric.algorithm, rsa.symmetric.keyBits.aes, rsa.symmetric.mode.aes) == (
        TPM2_ALG.AES,
        128,
        TPM2_ALG.CFB,
    )
    assert len(area.unique.rsa) == 256


def test_a_reset_with_ecc_makes_a_p256_storage_key(tpm: Tpm) -> None:
    ownership.reset_tpm(tpm, OWNER, key_type="rsa")
    ownership.reset_tpm(tpm, OWNER, key_type="ecc")  # and back
    area = _storage_key(tpm)
    assert area.type == TPM2_ALG.ECC
    _assert_common(area)
    ecc = area.parameters.eccDetail
    assert ecc.curveID == TPM2_ECC.NIST_P256
    assert (ecc.symmetric.algorithm, ecc.symmetric.keyBits.aes, ecc.symmetric.mode.aes) == (
        TPM2_ALG.AES,
        128,
        TPM2_ALG.CFB,
    )


def test_take_ownership_defaults_to_ecc(bare_tpm: Tpm) -> None:
    ownership.take_ownership(bare_tpm, OWNER)
    assert _storage_key(bare_tpm).type == TPM2_ALG.ECC


def test_an_unknown_key_type_is_refused_before_the_tpm_is_cleared(tpm: Tpm) -> None:
    name = tpm.primary_name()
    with pytest.raises(ValueError, match="unknown primary key type"):
        ownership.reset_tpm(tpm, OWNER, key_type="dsa")
    tpm.forget_primary()
    assert tpm.primary_name() == name  # the same key: nothing was cleared


def test_sealing_under_an_rsa_storage_key(tpm: Tpm) -> None:
    ownership.reset_tpm(tpm, OWNER, key_type="rsa")
    # the HMAC and policy sessions are salted with the RSA key (RSA-OAEP)
    sealed = sealing.seal(tpm, b"sealed under RSA", PCRS)
    assert bytes(sealing.unseal(tpm, sealed)) == b"sealed under RSA"
    guarded = sealing.seal(tpm, b"k" * 64, PCRS, passphrase=b"disk passphrase")
    assert bytes(sealing.unseal(tpm, guarded, b"disk passphrase")) == b"k" * 64
    # Heads' layout: a persistent sealed object, made with the owner passphrase
    sealing.store_persistent(tpm, sealed, handles.TOTP_SECRET, OWNER)
    assert bytes(sealing.unseal_persistent(tpm, handles.TOTP_SECRET, PCRS)) == b"sealed under RSA"


def test_the_name_pin_and_audited_reads_with_an_rsa_storage_key(tpm: Tpm) -> None:
    ownership.reset_tpm(tpm, OWNER, key_type="rsa")
    _, answered, _ = tpm.esapi.read_public(tpm.primary())
    name = tpm.primary_name()  # recomputed from the RSA public area
    assert name == bytes(answered).hex()
    tpm.pin_primary_name(bytes.fromhex(name))
    sealed = sealing.seal(tpm, b"pinned", PCRS)
    assert bytes(sealing.unseal(tpm, sealed)) == b"pinned"
    session = tpm.audit_session()  # the answer is HMACed with a salt only the key opens
    try:
        audited = pcrs.read_audited(tpm, session, PCRS, [Bank.SHA256])
    finally:
        tpm.esapi.flush_context(session)
    assert audited[Bank.SHA256] == pcrs.read_pcrs(tpm, PCRS, Bank.SHA256)


def test_the_primary_handle_hash_with_an_rsa_storage_key(tpm: Tpm) -> None:
    ecc_key = primary_handle_bytes(tpm)
    ownership.reset_tpm(tpm, OWNER, key_type="rsa")
    tpm.forget_primary()
    rsa_key = primary_handle_bytes(tpm)
    data = format_primary_hash(rsa_key)
    assert primary_hash_matches(data, rsa_key)
    assert not primary_hash_matches(data, ecc_key)  # a reset is seen


@pytest.mark.parametrize("key_type", ["rsa", "ecc"])
def test_the_device_platform_resets_with_the_configured_type(
    tpm: Tpm, key_type: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bootlog, "LOG_PATH", str(tmp_path / "runtime.log"))
    platform = DevicePlatform()
    platform.tpm = tpm
    platform.loaded = LoadedSettings(Settings({"CONFIG_PRIMARY_KEY_TYPE": key_type}), [], {})
    facts = platform.reset_tpm(bytearray(b"new owner passphrase"), bytearray(OWNER))
    assert facts.problem == "" and not facts.needs_lockout_passphrase
    expected = TPM2_ALG.RSA if key_type == "rsa" else TPM2_ALG.ECC
    assert _storage_key(tpm).type == expected


# --- a TPM that cannot, or does not, make the key asked for --------------------


def _platform_asking(
    tpm: Tpm, key_type: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> DevicePlatform:
    monkeypatch.setattr(bootlog, "LOG_PATH", str(tmp_path / "runtime.log"))
    platform = DevicePlatform()
    platform.tpm = tpm
    platform.loaded = LoadedSettings(Settings({"CONFIG_PRIMARY_KEY_TYPE": key_type}), [], {})
    return platform


def test_a_key_type_the_tpm_refuses_clears_nothing(
    tpm: Tpm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tpm2_pytss import TSS2_Exception

    ownership.reset_tpm(tpm, OWNER)
    before = tpm.primary_name()

    def refuse(*_: object, **__: object) -> None:
        raise TSS2_Exception(0x2C4)  # TPM_RC_ASYMMETRIC (1): not this algorithm

    monkeypatch.setattr(tpm.esapi, "test_parms", refuse)
    platform = _platform_asking(tpm, "rsa", tmp_path, monkeypatch)
    facts = platform.reset_tpm(bytearray(b"another owner passphrase"), bytearray(OWNER))
    assert "cannot make the RSA storage key" in facts.problem
    assert "Nothing was changed" in facts.problem
    tpm.forget_primary()
    assert tpm.primary_name() == before  # not cleared
    ownership.check_owner_passphrase(tpm, OWNER)  # the old passphrase still holds


def test_a_tpm_that_makes_another_key_is_not_believed(
    tpm: Tpm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tpm2_pytss.constants import ESYS_TR

    from runtime.tpm.templates import primary_template

    ownership.reset_tpm(tpm, OWNER)
    real = tpm.esapi.create_primary

    def swap(
        sensitive: object, template: object, hierarchy: object, *args: object, **kwargs: object
    ) -> object:
        if hierarchy == ESYS_TR.OWNER:
            template = primary_template("ecc")  # asked for RSA, answers with its own
        return real(sensitive, template, hierarchy, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(tpm.esapi, "create_primary", swap)
    platform = _platform_asking(tpm, "rsa", tmp_path, monkeypatch)
    facts = platform.reset_tpm(bytearray(b"another owner passphrase"), bytearray(OWNER))
    assert "a storage key other than the one asked for" in facts.problem
    assert "The TPM was cleared" in facts.problem  # said as it is: not "not reset"
    assert facts.cleared
    tpm.forget_primary()
    assert not tpm.has_primary()  # the wrong key was not kept
