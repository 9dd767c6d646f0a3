"""primary_template: the storage key of each CONFIG_PRIMARY_KEY_TYPE, as
tpm2-tools' `createprimary -G rsa|ecc` makes it, and nothing else."""

from __future__ import annotations

import pytest
from tpm2_pytss.constants import TPM2_ALG, TPM2_ECC

from runtime.config import Settings
from runtime.config.value_types import Choice
from runtime.tpm.templates import PRIMARY_ATTRIBUTES, PRIMARY_KEY_TYPES, primary_template


def test_rsa_is_rsa_2048_with_aes128cfb() -> None:
    area = primary_template("rsa").publicArea
    assert (area.type, area.nameAlg, area.objectAttributes) == (
        TPM2_ALG.RSA,
        TPM2_ALG.SHA256,
        PRIMARY_ATTRIBUTES,
    )
    rsa = area.parameters.rsaDetail
    assert (rsa.keyBits, rsa.exponent, rsa.scheme.scheme) == (2048, 0, TPM2_ALG.NULL)
    assert (rsa.symmetric.algorithm, rsa.symmetric.keyBits.aes, rsa.symmetric.mode.aes) == (
        TPM2_ALG.AES,
        128,
        TPM2_ALG.CFB,
    )


def test_ecc_is_p256_and_the_default() -> None:
    area = primary_template("ecc").publicArea
    assert (area.type, area.nameAlg, area.objectAttributes) == (
        TPM2_ALG.ECC,
        TPM2_ALG.SHA256,
        PRIMARY_ATTRIBUTES,
    )
    assert area.parameters.eccDetail.curveID == TPM2_ECC.NIST_P256
    assert primary_template().marshal() == primary_template("ecc").marshal()


@pytest.mark.parametrize("key_type", ["", "RSA", "ecc384", "rsa2048", "dsa"])
def test_an_unknown_type_is_refused(key_type: str) -> None:
    with pytest.raises(ValueError, match="unknown primary key type"):
        primary_template(key_type)


def test_every_setting_value_has_a_template() -> None:
    kind = Settings.primary_key_type.kind
    assert isinstance(kind, Choice)
    assert set(kind.options) == set(PRIMARY_KEY_TYPES)
    assert Settings.primary_key_type.default == "ecc"
