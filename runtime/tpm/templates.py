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

#: The storage primary of a TPM owned by an older runtime: the tpm2-tools
#: default storage key (ECC P-256, AES-128-CFB), subject to the
#: dictionary-attack lockout. Such a key keeps working while the TPM is not
#: locked out; only new ownerships create PRIMARY_ATTRIBUTES.
DA_PROTECTED_PRIMARY_ATTRIBUTES = (
    TPMA_OBJECT.RESTRICTED
    | TPMA_OBJECT.DECRYPT
    | TPMA_OBJECT.FIXEDTPM
    | TPMA_OBJECT.FIXEDPARENT
    | TPMA_OBJECT.SENSITIVEDATAORIGIN
    | TPMA_OBJECT.USERWITHAUTH
)
#: NODA: the key's authorization value is empty, so there is nothing to guess
#: and the lockout protects nothing; without it, anyone (the OS with a key of
#: its own) who locks the TPM out stops every sealed secret from loading.
PRIMARY_ATTRIBUTES = DA_PROTECTED_PRIMARY_ATTRIBUTES | TPMA_OBJECT.NODA


#: CONFIG_PRIMARY_KEY_TYPE -> the tpm2-tools default storage key of that type
#: (`tpm2 createprimary -G rsa|ecc`, as Heads runs it)
PRIMARY_KEY_TYPES = {"rsa": "rsa2048:aes128cfb", "ecc": "ecc256:aes128cfb"}


def primary_template(key_type: str = "ecc") -> TPM2B_PUBLIC:
    """The storage primary's template; ``key_type`` is "rsa" or "ecc"."""
    spec = PRIMARY_KEY_TYPES.get(key_type)
    if spec is None:
        raise ValueError(f"unknown primary key type {key_type!r} (rsa or ecc)")
    return TPM2B_PUBLIC.parse(spec, objectAttributes=PRIMARY_ATTRIBUTES)


def sealed_template(policy: bytes, *, no_da: bool = False) -> TPM2B_PUBLIC:
    """A sealed-data object bound to ``policy``.

    No USERWITHAUTH: the passphrase alone never unseals, the policy must hold.
    ADMINWITHPOLICY as Heads sets it. ``no_da`` is for objects without a
    passphrase (a PCR-only policy): their empty authorization value cannot be
    guessed, so a lockout must not lock them. An object with a passphrase
    stays under the lockout: it is what stops guessing that passphrase.
    """
    attributes = TPMA_OBJECT.FIXEDTPM | TPMA_OBJECT.FIXEDPARENT | TPMA_OBJECT.ADMINWITHPOLICY
    if no_da:
        attributes |= TPMA_OBJECT.NODA
    return TPM2B_PUBLIC(
        publicArea=TPMT_PUBLIC(
            type=TPM2_ALG.KEYEDHASH,
            nameAlg=TPM2_ALG.SHA256,
            objectAttributes=attributes,
            authPolicy=policy,
            parameters=TPMU_PUBLIC_PARMS(
                keyedHashDetail=TPMS_KEYEDHASH_PARMS(
                    scheme=TPMT_KEYEDHASH_SCHEME(scheme=TPM2_ALG.NULL)
                )
            ),
        )
    )
