"""Object templates: the storage primary key and sealed-data objects."""

from __future__ import annotations

from tpm2_pytss.constants import TPM2_ALG, TPMA_OBJECT
from tpm2_pytss.types import (
    TPM2B_PUBLIC,
    TPMS_KEYEDHASH_PARMS,
    TPMT_KEYEDHASH_SCHEME,
    TPMT_PUBLIC,
    TPMU_PUBLIC_PARMS,
)

#: The tpm2-tools default storage key: ECC P-256, AES-128-CFB (what Heads creates).
PRIMARY_ATTRIBUTES = (
    TPMA_OBJECT.RESTRICTED
    | TPMA_OBJECT.DECRYPT
    | TPMA_OBJECT.FIXEDTPM
    | TPMA_OBJECT.FIXEDPARENT
    | TPMA_OBJECT.SENSITIVEDATAORIGIN
    | TPMA_OBJECT.USERWITHAUTH
)


def primary_template() -> TPM2B_PUBLIC:
    return TPM2B_PUBLIC.parse("ecc256:aes128cfb", objectAttributes=PRIMARY_ATTRIBUTES)


def sealed_template(policy: bytes) -> TPM2B_PUBLIC:
    """A sealed-data object bound to ``policy``.

    No USERWITHAUTH: the passphrase alone never unseals, the policy must hold.
    ADMINWITHPOLICY as Heads sets it.
    """
    return TPM2B_PUBLIC(
        publicArea=TPMT_PUBLIC(
            type=TPM2_ALG.KEYEDHASH,
            nameAlg=TPM2_ALG.SHA256,
            objectAttributes=TPMA_OBJECT.FIXEDTPM
            | TPMA_OBJECT.FIXEDPARENT
            | TPMA_OBJECT.ADMINWITHPOLICY,
            authPolicy=policy,
            parameters=TPMU_PUBLIC_PARMS(
                keyedHashDetail=TPMS_KEYEDHASH_PARMS(
                    scheme=TPMT_KEYEDHASH_SCHEME(scheme=TPM2_ALG.NULL)
                )
            ),
        )
    )
