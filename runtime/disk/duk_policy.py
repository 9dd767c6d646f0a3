"""The PCRs the Disk Unlock Key is sealed to, and their values at the next
normal boot's unseal, computed before that boot happens.

The DUK is bound to PCRs 0-7 (firmware, boot mode, modules, LUKS headers)
plus the board's PCRs above 7 that secrets are sealed to (the runtime's own
measurement: PCR 9 on the qemu-swtpm board). Three of them are predicted
rather than read, because this boot has changed, or will change, them:

- PCR 4, the boot mode: the value the firmware left (its event log), since
  the runtime extends it when it leaves its verified path (a recovery shell,
  an unverified boot) and the unseal happens before the hand-over's extend;
- PCR 5, the modules: the firmware's value extended with each module the
  runtime loaded at start, in order (a module loaded later, for a USB stick
  or a card, must not lock the disk out of the next normal boot);
- PCR 6, the LUKS headers: the firmware's value extended with the header
  measurement as it will be once the DUK's key slot is added (adding it
  changes the header, so this boot's own PCR 6 is already stale).

Everything else is read from the TPM now; a PCR the runtime itself extended
this boot cannot be sealed to, as its normal-boot value is unknown.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from runtime.tpm.pcr_math import Bank, extend, extend_all
from runtime.tpm.pcr_roles import BOOT_MODE_PCR
from runtime.tpm.policy_math import pcr_policy

#: Heads' measurement of the LUKS headers (qubes-measure-luks)
LUKS_HEADER_PCR = 6
FIRMWARE_AND_BOOT_PCRS = tuple(range(8))
BANK = Bank.SHA256
#: what a DUK passphrase is turned into before it is the sealed object's
#: authorization: a TPM takes at most a digest's worth of authValue, and a
#: disk passphrase is often longer.
AUTH_CONTEXT = b"heads-runtime disk unlock key\x00"


def duk_pcrs(seal_pcrs: Sequence[int], modules_pcr: int) -> tuple[int, ...]:
    """PCRs 0-7, the modules PCR, and the board's sealing PCRs above 7."""
    return tuple(sorted({*FIRMWARE_AND_BOOT_PCRS, modules_pcr, *(p for p in seal_pcrs if p > 7)}))


@dataclass(frozen=True)
class PcrFacts:
    """What the prediction starts from.

    ``current``: the TPM's values now (every PCR of duk_pcrs);
    ``firmware``: the firmware event log's replay (None when unreadable);
    ``runtime_extended``: the PCRs the runtime extended this boot;
    ``module_digests``: the modules PCR's extends made at start, in order.
    """

    current: Mapping[int, bytes]
    firmware: Mapping[int, bytes] | None
    runtime_extended: frozenset[int]
    module_digests: tuple[bytes, ...]


def _firmware_start(pcr: int, facts: PcrFacts) -> bytes | str:
    """The PCR's value as the firmware handed it to the runtime."""
    if facts.firmware is not None:
        return facts.firmware.get(pcr, BANK.zero())
    if pcr not in facts.runtime_extended:
        return facts.current[pcr]
    return (
        f"PCR {pcr} was extended during this boot and the firmware's event log, "
        "which gives its value before that, cannot be read."
    )


def predicted_values(
    pcrs: Sequence[int], modules_pcr: int, facts: PcrFacts, header_measurement: bytes
) -> dict[int, bytes] | str:
    """The values the DUK's PCRs will hold at the next normal boot's unseal,
    or why they cannot be known. ``header_measurement`` is the digest PCR 6
    is extended with (key_lists.measurement_digest of the header text)."""
    values: dict[int, bytes] = {}
    for pcr in pcrs:
        if pcr in (BOOT_MODE_PCR, modules_pcr, LUKS_HEADER_PCR):
            start = _firmware_start(pcr, facts)
            if isinstance(start, str):
                return start
            if pcr == modules_pcr:
                start = extend_all(BANK, start, facts.module_digests)
            if pcr == LUKS_HEADER_PCR:
                start = extend(BANK, start, header_measurement)
            values[pcr] = start
        elif pcr in facts.runtime_extended:
            return f"PCR {pcr} was extended by this runtime: the key cannot be sealed to it."
        else:
            values[pcr] = facts.current[pcr]
    return values


def policy_digest(values: Mapping[int, bytes], pcrs: Sequence[int]) -> bytes:
    """The DUK's sealing policy: PolicyPCR over ``pcrs``, then PolicyAuthValue."""
    return pcr_policy(BANK, values, pcrs, with_auth_value=True)


def auth_value(passphrase: bytes | bytearray) -> bytes:
    """The sealed object's authorization for a DUK passphrase of any length."""
    digest = hashlib.sha256(AUTH_CONTEXT)
    digest.update(passphrase)  # from the buffer: no immutable copy of the passphrase
    return digest.digest()
