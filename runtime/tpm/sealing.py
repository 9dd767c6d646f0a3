"""Sealing small secrets to PCR values (and optionally a passphrase), and unsealing them.

The policy is PolicyPCR, plus PolicyAuthValue when a passphrase protects the
secret (never PolicyPassword: with libtss2 3.2.1 and an encrypted session it
silently returned a wrong secret). The policy digest is computed offline by
``policy_math``, so a secret can be sealed to predicted PCR values; the TPM's
own digest (in the created object) is checked against it.

Sealed objects are kept either as persistent handles (Heads' layout) or as a
blob (``SealedSecret``) that can be written to an NV index or a file.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from tpm2_pytss.constants import ESYS_TR
from tpm2_pytss.types import (
    TPM2B_PRIVATE,
    TPM2B_PUBLIC,
    TPM2B_SENSITIVE_CREATE,
    TPMS_SENSITIVE_CREATE,
)

from runtime.tpm import handles
from runtime.tpm.connection import Tpm
from runtime.tpm.errors import (
    PcrsChanged,
    SealedObjectMissing,
    TpmCommandError,
    TpmError,
    translated,
)
from runtime.tpm.pcr_math import Bank, compare
from runtime.tpm.pcrs import read_pcrs, selection
from runtime.tpm.policy_math import pcr_policy
from runtime.tpm.templates import sealed_template

#: A TPM sealed-data object holds at most 128 bytes (MAX_SYM_DATA).
MAX_SECRET_SIZE = 128
#: Auth values are limited to the size of the name algorithm's digest.
MAX_PASSPHRASE_SIZE = 32
_MAGIC = b"RTSEAL01"


def _check_passphrase(passphrase: bytes | None) -> None:
    if passphrase is not None and not 0 < len(passphrase) <= MAX_PASSPHRASE_SIZE:
        raise ValueError(f"a passphrase must have 1 to {MAX_PASSPHRASE_SIZE} bytes")


@dataclass(frozen=True)
class SealedSecret:
    """A sealed object as data: its public and private parts plus what it is bound to.

    ``expected`` keeps the PCR values the policy was computed from, so a later
    refusal can name the PCRs that changed.
    """

    public: bytes
    private: bytes
    bank: Bank
    pcrs: tuple[int, ...]
    with_passphrase: bool
    expected: Mapping[int, bytes] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        mask = sum(1 << p for p in self.pcrs)
        out = _MAGIC + struct.pack(
            ">HIBB", self.bank.alg_id, mask, int(self.with_passphrase), len(self.expected)
        )
        for pcr in sorted(self.expected):
            out += struct.pack(">B", pcr) + self.expected[pcr]
        for part in (self.public, self.private):
            out += struct.pack(">H", len(part)) + part
        return out

    @classmethod
    def from_bytes(cls, data: bytes) -> SealedSecret:
        try:
            if data[:8] != _MAGIC:
                raise ValueError("not a sealed secret (bad magic)")
            alg, mask, flag, count = struct.unpack_from(">HIBB", data, 8)
            bank = Bank.from_alg_id(alg)
            offset = 16
            expected = {}
            for _ in range(count):
                pcr = data[offset]
                value = data[offset + 1 : offset + 1 + bank.digest_size]
                if len(value) != bank.digest_size:
                    raise ValueError("truncated PCR value")
                expected[pcr] = value
                offset += 1 + bank.digest_size
            parts = []
            for _ in range(2):
                (size,) = struct.unpack_from(">H", data, offset)
                part = data[offset + 2 : offset + 2 + size]
                if len(part) != size:
                    raise ValueError("truncated object")
                parts.append(part)
                offset += 2 + size
        except (struct.error, IndexError) as exc:
            raise ValueError("truncated sealed secret") from exc
        pcrs = tuple(p for p in range(32) if mask & (1 << p))
        return cls(parts[0], parts[1], bank, pcrs, bool(flag), expected)


def seal(
    tpm: Tpm,
    secret: bytes,
    pcrs: Iterable[int],
    *,
    pcr_values: Mapping[int, bytes] | None = None,
    passphrase: bytes | None = None,
    bank: Bank = Bank.SHA256,
) -> SealedSecret:
    """Seal ``secret`` under the primary key to ``pcrs``.

    ``pcr_values`` gives the values to bind to (predicted ones, for example);
    PCRs missing from it are read from the TPM now.
    """
    if not 0 < len(secret) <= MAX_SECRET_SIZE:
        raise ValueError(f"a sealed secret must have 1 to {MAX_SECRET_SIZE} bytes")
    _check_passphrase(passphrase)
    pcr_list = tuple(sorted(set(pcrs)))
    values = dict(pcr_values or {})
    missing = [p for p in pcr_list if p not in values]
    if missing:
        values.update(read_pcrs(tpm, missing, bank))
    values = {p: values[p] for p in pcr_list}
    policy = pcr_policy(bank, values, pcr_list, with_auth_value=passphrase is not None)
    sensitive = TPM2B_SENSITIVE_CREATE(
        sensitive=TPMS_SENSITIVE_CREATE(userAuth=passphrase or b"", data=bytes(secret))
    )
    with translated("Sealing the secret"):
        private, public, _, _, _ = tpm.esapi.create(
            tpm.primary(),
            sensitive,
            sealed_template(policy, no_da=passphrase is None),
            session1=tpm.hmac_session(),
        )
    if bytes(public.publicArea.authPolicy) != policy:
        raise TpmCommandError("The TPM bound the secret to a different policy than computed.")
    return SealedSecret(
        public=public.marshal(),
        private=private.marshal(),
        bank=bank,
        pcrs=pcr_list,
        with_passphrase=passphrase is not None,
        expected=values,
    )


def _load(tpm: Tpm, sealed: SealedSecret) -> ESYS_TR:
    public, _ = TPM2B_PUBLIC.unmarshal(sealed.public)
    private, _ = TPM2B_PRIVATE.unmarshal(sealed.private)
    # A password session (the storage key has no authorization value): the blob
    # is already encrypted by the TPM and the unseal below runs in a salted,
    # response-encrypted policy session. Saves a salted session on the boot path.
    with translated("Loading the sealed secret"):
        return tpm.esapi.load(tpm.primary(), private, public, session1=ESYS_TR.PASSWORD)


def store_persistent(tpm: Tpm, sealed: SealedSecret, handle: int, owner_auth: bytes) -> None:
    """Make ``sealed`` persistent at ``handle``, replacing what was there.

    The new object is loaded (so a bad blob fails before anything is removed)
    before the old one is evicted; the TPM cannot swap a persistent handle
    atomically, so a power cut between the two steps leaves the handle empty,
    which the boot reports as a missing secret to generate again.
    """
    if not handles.is_persistent(handle):
        raise ValueError(f"0x{handle:08x} is not a persistent handle")
    transient = _load(tpm, sealed)
    try:
        tpm.esapi.tr_set_auth(ESYS_TR.OWNER, owner_auth)
        remove_persistent(tpm, handle, owner_auth)
        with translated("Storing the sealed secret", auth="TPM owner passphrase", owner_auth=True):
            new = tpm.esapi.evict_control(
                ESYS_TR.OWNER, transient, handle, session1=tpm.hmac_session()
            )
        tpm.esapi.tr_close(new)
    finally:
        tpm.esapi.flush_context(transient)


def remove_persistent(tpm: Tpm, handle: int, owner_auth: bytes) -> bool:
    """Evict the persistent object at ``handle``; False if there was none."""
    try:
        with translated("Finding the sealed secret", missing=SealedObjectMissing):
            existing = tpm.esapi.tr_from_tpmpublic(handle)
    except SealedObjectMissing:
        return False
    tpm.esapi.tr_set_auth(ESYS_TR.OWNER, owner_auth)
    with translated("Removing the old sealed secret", auth="TPM owner passphrase", owner_auth=True):
        tpm.esapi.evict_control(ESYS_TR.OWNER, existing, handle, session1=tpm.hmac_session())
    # ESAPI keeps the evicted object's record; without closing it a later
    # lookup of the same handle fails with a general error instead of "missing".
    tpm.esapi.tr_close(existing)
    return True


def _unseal_loaded(
    tpm: Tpm,
    obj: ESYS_TR,
    bank: Bank,
    pcrs: Iterable[int],
    passphrase: bytes | None,
) -> bytearray:
    session = tpm.policy_session()
    try:
        with translated("Unsealing the secret"):
            tpm.esapi.policy_pcr(session, b"", selection(bank, pcrs))
            if passphrase is not None:
                tpm.esapi.policy_auth_value(session)
        tpm.esapi.tr_set_auth(obj, passphrase or b"")
        with translated("Unsealing the secret"):
            data = tpm.esapi.unseal(obj, session1=session)
    except TpmError:
        tpm.discard_policy_session()
        raise
    finally:
        tpm.esapi.tr_set_auth(obj, b"")
    return bytearray(bytes(data))


def _explain_pcr_failure(tpm: Tpm, exc: PcrsChanged, sealed: SealedSecret) -> PcrsChanged:
    if not sealed.expected:
        return exc
    current = read_pcrs(tpm, sealed.pcrs, sealed.bank)
    mismatches = compare(sealed.bank, sealed.expected, current)
    changed = ", ".join(str(m.pcr) for m in mismatches) or "none (the policy itself differs)"
    return PcrsChanged(
        f"{exc.message}: PCR(s) changed since sealing: {changed}", rc=exc.rc, mismatches=mismatches
    )


def unseal(tpm: Tpm, sealed: SealedSecret, passphrase: bytes | None = None) -> bytearray:
    """Unseal a blob. The caller wipes the returned bytearray after use."""
    if sealed.with_passphrase and passphrase is None:
        raise ValueError("this secret needs a passphrase")
    _check_passphrase(passphrase)
    obj = _load(tpm, sealed)
    try:
        return _unseal_loaded(
            tpm, obj, sealed.bank, sealed.pcrs, passphrase if sealed.with_passphrase else None
        )
    except PcrsChanged as exc:
        raise _explain_pcr_failure(tpm, exc, sealed) from exc
    finally:
        tpm.esapi.flush_context(obj)


def unseal_persistent(
    tpm: Tpm,
    handle: int,
    pcrs: Iterable[int],
    passphrase: bytes | None = None,
    bank: Bank = Bank.SHA256,
) -> bytearray:
    """Unseal the persistent object at ``handle`` (sealed to ``pcrs`` of ``bank``)."""
    _check_passphrase(passphrase)
    with translated("Finding the sealed secret", missing=SealedObjectMissing):
        obj = tpm.esapi.tr_from_tpmpublic(handle)
    try:
        return _unseal_loaded(tpm, obj, bank, pcrs, passphrase)
    finally:
        tpm.esapi.tr_close(obj)
