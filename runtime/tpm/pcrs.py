"""Reading and extending PCRs. Every extend is recorded in the Tpm's measurement log."""

from __future__ import annotations

from collections.abc import Iterable

from tpm2_pytss.constants import ESYS_TR, TPM2_CAP
from tpm2_pytss.types import (
    TPML_DIGEST_VALUES,
    TPML_PCR_SELECTION,
    TPMS_PCR_SELECTION,
    TPMT_HA,
    TPMU_HA,
)

from runtime.tpm.connection import Tpm
from runtime.tpm.errors import TpmCommandError, translated
from runtime.tpm.measurement_log import Measurement
from runtime.tpm.pcr_math import PCR_COUNT, Bank
from runtime.tpm.policy_math import PCR_SELECT_SIZE, pcr_bitmap


def selection(bank: Bank, pcrs: Iterable[int]) -> TPML_PCR_SELECTION:
    """A one-bank TPML_PCR_SELECTION for tpm2-pytss."""
    bitmap = pcr_bitmap(pcrs)
    return TPML_PCR_SELECTION(
        [TPMS_PCR_SELECTION(hash=bank.alg_id, sizeofSelect=PCR_SELECT_SIZE, pcrSelect=bitmap)]
    )


def _selected(sel: TPMS_PCR_SELECTION) -> list[int]:
    bitmap = bytes(sel.pcrSelect)[: sel.sizeofSelect]
    return [i for i in range(len(bitmap) * 8) if bitmap[i // 8] & (1 << (i % 8))]


def active_banks(tpm: Tpm) -> list[Bank]:
    """The banks the TPM has allocated with at least one PCR (swtpm: sha256 only by default)."""
    with translated("Reading the PCR banks"):
        _, data = tpm.esapi.get_capability(TPM2_CAP.PCRS, 0, 1)
    banks = []
    for sel in data.data.assignedPCR:
        if any(bytes(sel.pcrSelect)[: sel.sizeofSelect]):
            try:
                banks.append(Bank.from_alg_id(int(sel.hash)))
            except ValueError:
                continue  # a bank this runtime does not use (e.g. SM3)
    return banks


def read_pcrs(tpm: Tpm, pcrs: Iterable[int], bank: Bank = Bank.SHA256) -> dict[int, bytes]:
    """Read PCR values. The TPM returns at most 8 per call, so this loops."""
    wanted = sorted(set(pcrs))
    values: dict[int, bytes] = {}
    with translated(f"Reading PCRs {wanted}"):
        while len(values) < len(wanted):
            remaining = [p for p in wanted if p not in values]
            _, sel_out, digests = tpm.esapi.pcr_read(selection(bank, remaining))
            got = [p for s in sel_out for p in _selected(s) if int(s.hash) == bank.alg_id]
            if not got:
                raise ValueError(f"the TPM has no {bank.hash_name} value for PCRs {remaining}")
            for pcr, digest in zip(got, digests, strict=True):
                values[pcr] = bytes(digest)
    return values


def read_audited(
    tpm: Tpm, session: ESYS_TR, pcrs: Iterable[int], banks: Iterable[Bank]
) -> dict[Bank, dict[int, bytes]]:
    """Read PCRs of several banks in ``session``, an audit session
    (Tpm.audit_session). PCR_Read takes no authorization, so the TPM HMACs its
    answer only for an audit session; ESAPI checks that HMAC and raises
    (TpmCommandError, "Authorizing the TPM response failed") when something
    on the bus changed, replayed or made up the answer."""
    wanted = sorted(set(pcrs))
    values: dict[Bank, dict[int, bytes]] = {bank: {} for bank in banks}
    with translated(f"Reading PCRs {wanted} in an audit session"):
        while True:
            remaining = {bank: [p for p in wanted if p not in got] for bank, got in values.items()}
            remaining = {bank: left for bank, left in remaining.items() if left}
            if not remaining:
                return values
            asked = TPML_PCR_SELECTION(
                [
                    TPMS_PCR_SELECTION(
                        hash=bank.alg_id, sizeofSelect=PCR_SELECT_SIZE, pcrSelect=pcr_bitmap(left)
                    )
                    for bank, left in remaining.items()
                ]
            )
            _, sel_out, digests = tpm.esapi.pcr_read(asked, session1=session)
            # at most 8 digests per answer, in the order of the selection out
            answered = [(int(s.hash), p) for s in sel_out for p in _selected(s)]
            if len(answered) != len(digests):
                raise TpmCommandError(
                    f"Reading PCRs {wanted}: the TPM answered "
                    f"{len(digests)} values for {len(answered)} PCRs"
                )
            added = 0
            for (alg, pcr), digest in zip(answered, digests, strict=True):
                for bank, left in remaining.items():
                    if bank.alg_id == alg and pcr in left and pcr not in values[bank]:
                        values[bank][pcr] = bytes(digest)
                        added += 1
            if not added:  # a bank the TPM does not have
                raise TpmCommandError(
                    f"Reading PCRs {wanted}: the TPM answered no value "
                    f"in banks {[b.hash_name for b in remaining]}"
                )


def read_all_banks(tpm: Tpm, pcrs: Iterable[int]) -> dict[Bank, dict[int, bytes]]:
    wanted = list(pcrs)
    return {bank: read_pcrs(tpm, wanted, bank) for bank in active_banks(tpm)}


def extend(
    tpm: Tpm,
    pcr: int,
    data: bytes,
    description: str,
    event_type: str = "runtime",
    banks: Iterable[Bank] | None = None,
) -> Measurement:
    """Extend ``pcr`` in every active bank with the hash of ``data`` and log it.

    All active banks are extended: a bank left alone would keep a value an
    attacker could later forge into what a sealed policy expects.
    """
    if not 0 <= pcr < PCR_COUNT:
        raise ValueError(f"PCR {pcr} is out of range")
    use_banks = list(banks) if banks is not None else active_banks(tpm)
    digests = {bank: bank.hash(data) for bank in use_banks}
    values = TPML_DIGEST_VALUES(
        [
            TPMT_HA(hashAlg=bank.alg_id, digest=TPMU_HA(**{bank.hash_name: digest}))
            for bank, digest in digests.items()
        ]
    )
    with translated(f"Extending PCR {pcr}"):
        tpm.esapi.pcr_extend(ESYS_TR.PCR0 + pcr, values)
    measurement = Measurement(pcr, digests, event_type, description)
    tpm.log.record(measurement)
    if tpm.journal is not None:
        from runtime.tpm.log_journal import append

        append(tpm.journal, measurement)
    return measurement


def extend_string(tpm: Tpm, pcr: int, text: str, event_type: str = "runtime") -> Measurement:
    """Extend with a string as Heads does (hash of the UTF-8 text, no newline)."""
    return extend(tpm, pcr, text.encode("utf-8"), text, event_type)
