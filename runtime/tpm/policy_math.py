"""Pure computation of TPM 2.0 policy digests (TPM 2.0 Part 3, section 23).

Sealing computes the policy a secret is bound to offline instead of asking
the TPM through a trial session: it is faster, it lets the runtime predict a
policy for PCR values that do not exist yet (PCR 4 before the runtime's own
extends), and the tests check it against known answers and the TPM's digests.
All integers are marshalled big-endian, as the TPM does.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum

from runtime.tpm.pcr_math import Bank, composite_digest

# Command codes that enter policy digests (TPM 2.0 Part 2, TPM_CC).
TPM_CC_POLICY_NV = 0x00000149
TPM_CC_POLICY_AUTH_VALUE = 0x0000016B
TPM_CC_POLICY_COMMAND_CODE = 0x0000016C
TPM_CC_POLICY_PCR = 0x0000017F

#: A PC-client TPM has 24 PCRs, selected by a 3-byte bitmap.
PCR_SELECT_SIZE = 3


class NvOperation(IntEnum):
    """TPM_EO: how PolicyNV compares the NV contents (operand A) with operand B."""

    EQ = 0x0000
    NEQ = 0x0001
    SIGNED_GT = 0x0002
    UNSIGNED_GT = 0x0003
    SIGNED_LT = 0x0004
    UNSIGNED_LT = 0x0005
    SIGNED_GE = 0x0006
    UNSIGNED_GE = 0x0007
    SIGNED_LE = 0x0008
    UNSIGNED_LE = 0x0009
    BITSET = 0x000A
    BITCLEAR = 0x000B


def pcr_bitmap(pcrs: Iterable[int]) -> bytes:
    """The pcrSelect bitmap: bit (pcr % 8) of byte (pcr // 8)."""
    bitmap = bytearray(PCR_SELECT_SIZE)
    for pcr in pcrs:
        if not 0 <= pcr < PCR_SELECT_SIZE * 8:
            raise ValueError(f"PCR {pcr} is out of range 0-{PCR_SELECT_SIZE * 8 - 1}")
        bitmap[pcr // 8] |= 1 << (pcr % 8)
    return bytes(bitmap)


@dataclass(frozen=True)
class PcrSelection:
    """A set of PCRs in one bank (one TPMS_PCR_SELECTION)."""

    bank: Bank
    pcrs: tuple[int, ...]

    @classmethod
    def of(cls, bank: Bank, pcrs: Iterable[int]) -> PcrSelection:
        return cls(bank, tuple(sorted(set(pcrs))))

    def marshal(self) -> bytes:
        return struct.pack(">HB", self.bank.alg_id, PCR_SELECT_SIZE) + pcr_bitmap(self.pcrs)


def marshal_pcr_selections(selections: Iterable[PcrSelection]) -> bytes:
    """A TPML_PCR_SELECTION: count, then each selection."""
    items = list(selections)
    return struct.pack(">I", len(items)) + b"".join(sel.marshal() for sel in items)


def nv_public_name(
    nv_index: int,
    attributes: int,
    data_size: int,
    auth_policy: bytes = b"",
    name_alg: Bank = Bank.SHA256,
) -> bytes:
    """The Name of an NV index: nameAlg || H_nameAlg(marshalled TPMS_NV_PUBLIC)."""
    public = struct.pack(">IHI", nv_index, name_alg.alg_id, attributes)
    public += struct.pack(">H", len(auth_policy)) + auth_policy
    public += struct.pack(">H", data_size)
    return struct.pack(">H", name_alg.alg_id) + name_alg.hash(public)


@dataclass
class PolicyDigest:
    """A policy digest being built step by step, as a policy session would."""

    alg: Bank = Bank.SHA256
    value: bytes = field(default=b"")

    def __post_init__(self) -> None:
        if not self.value:
            self.value = self.alg.zero()
        if len(self.value) != self.alg.digest_size:
            raise ValueError(
                f"a {self.alg.hash_name} policy digest has {self.alg.digest_size} bytes"
            )

    def _update(self, data: bytes) -> PolicyDigest:
        self.value = self.alg.hash(self.value + data)
        return self

    def auth_value(self) -> PolicyDigest:
        """PolicyAuthValue (PolicyPassword leaves the same digest)."""
        return self._update(struct.pack(">I", TPM_CC_POLICY_AUTH_VALUE))

    def command_code(self, command_code: int) -> PolicyDigest:
        """PolicyCommandCode: restrict the policy to one command."""
        return self._update(struct.pack(">II", TPM_CC_POLICY_COMMAND_CODE, command_code))

    def pcr(
        self,
        selections: Iterable[PcrSelection],
        values: Mapping[Bank, Mapping[int, bytes]],
    ) -> PolicyDigest:
        """PolicyPCR over the given selections, bound to the given PCR values.

        The PCR digest is hashed with the policy's algorithm over the values of
        every selection in order, each bank's PCRs in ascending index order.
        """
        items = list(selections)
        concatenated = b""
        for sel in items:
            bank_values = values.get(sel.bank, {})
            for pcr in sel.pcrs:
                if pcr not in bank_values:
                    raise ValueError(f"no {sel.bank.hash_name} value for PCR {pcr}")
                value = bank_values[pcr]
                if len(value) != sel.bank.digest_size:
                    raise ValueError(f"PCR {pcr} value has the wrong size for {sel.bank.hash_name}")
                concatenated += value
        pcr_digest = self.alg.hash(concatenated)
        return self._update(
            struct.pack(">I", TPM_CC_POLICY_PCR) + marshal_pcr_selections(items) + pcr_digest
        )

    def nv(
        self,
        nv_name: bytes,
        operand_b: bytes,
        offset: int = 0,
        operation: NvOperation = NvOperation.EQ,
    ) -> PolicyDigest:
        """PolicyNV: the NV index contents at ``offset`` compared with ``operand_b``."""
        args = self.alg.hash(operand_b + struct.pack(">HH", offset, operation))
        return self._update(struct.pack(">I", TPM_CC_POLICY_NV) + args + nv_name)


def pcr_policy(
    bank: Bank,
    values: Mapping[int, bytes],
    pcrs: Iterable[int],
    with_auth_value: bool = False,
) -> bytes:
    """The digest of the sealing policy this runtime uses: PolicyPCR [+ PolicyAuthValue]."""
    policy = PolicyDigest().pcr([PcrSelection.of(bank, pcrs)], {bank: values})
    if with_auth_value:
        policy.auth_value()
    return policy.value


__all__ = [
    "NvOperation",
    "PcrSelection",
    "PolicyDigest",
    "composite_digest",
    "marshal_pcr_selections",
    "nv_public_name",
    "pcr_bitmap",
    "pcr_policy",
]
