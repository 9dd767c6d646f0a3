"""Does the TPM's state match what the firmware logged plus what the runtime
extended? One row per PCR, in words the user can act on."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from runtime.tpm.eventlog import EventLogError, ParsedLog, replay
from runtime.tpm.measurement_log import MeasurementLog
from runtime.tpm.pcr_math import Bank


@dataclass(frozen=True)
class ReplayReport:
    summary: str
    rows: tuple[tuple[str, str], ...]
    all_match: bool


def replay_report(
    log: ParsedLog | None,
    log_problem: str,
    own: MeasurementLog,
    actual: Mapping[int, bytes],
    pcrs: Iterable[int],
    bank: Bank = Bank.SHA256,
) -> ReplayReport:
    """Compare firmware log + own extends with ``actual`` (one bank's values)."""
    if log is None:
        return ReplayReport(f"No firmware event log: {log_problem}", (), False)
    try:
        replayed = replay(log)
    except EventLogError as err:
        return ReplayReport(f"The firmware event log is unreadable: {err}", (), False)
    if bank not in replayed:
        return ReplayReport(
            f"The firmware event log has no {bank.hash_name} digests, so it "
            "cannot be checked against that bank.",
            (),
            False,
        )
    firmware = replayed[bank]
    expected = own.replay({bank: firmware}).get(bank, {})
    rows = []
    mismatched = []
    for pcr in sorted(set(pcrs)):
        want = expected.get(pcr, bank.zero())
        have = actual.get(pcr)
        if have is None:
            mismatched.append(pcr)
            rows.append((f"PCR {pcr}", "not read from the TPM"))
        elif have == want:
            rows.append((f"PCR {pcr}", f"matches the logs  {have.hex()[:16]}..."))
        else:
            mismatched.append(pcr)
            rows.append(
                (f"PCR {pcr}", f"DIFFERS: TPM {have.hex()[:16]}..., logs say {want.hex()[:16]}...")
            )
    if mismatched:
        summary = (
            f"PCR {', '.join(map(str, mismatched))} do not match the event logs: "
            "something was measured that was not logged, or a PCR could not be read."
        )
    else:
        summary = f"All {len(rows)} PCRs match the firmware event log and the runtime's extends."
    return ReplayReport(summary, tuple(rows), not mismatched)
