"""DevicePlatform's measurement: the drivers measured and loaded, the
firmware's event log replayed and compared with the TPM's PCRs, and whether
a recovery shell opened during this power-on explains PCR 4."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from runtime import bootlog
from runtime.devices.memory_use import guest_memory_used_kib, peak_rss_kib
from runtime.error_detail import plain
from runtime.measure.modules import measure_and_load, module_list
from runtime.measure.replay import replay_report
from runtime.state.platform import MeasureFacts
from runtime.tpm.eventlog import EventLogError, read_eventlog, replay
from runtime.tpm.pcr_math import Bank
from runtime.tpm.pcr_roles import PCRS_SHOWN, recovery_extends
from runtime.tpm.pcrs import read_pcrs

if TYPE_CHECKING:
    from runtime.config import BoardConfig
    from runtime.tpm.connection import Tpm


@dataclass
class Measured:
    """What the measurement found, for DevicePlatform to keep for its pages
    and for the checks that follow."""

    facts: MeasureFacts
    #: the firmware's PCRs as its event log replays (SHA-256), when it does
    firmware_pcrs: dict[int, bytes] | None = None
    rows: tuple[tuple[str, str], ...] = ()
    summary: str = "Not checked."
    module_row: str = ""
    recovery_used: bool = False
    pcr4_at_start: bytes | None = None
    info_rows: list[tuple[str, str]] = field(default_factory=list)


def measure(tpm: Tpm | None, board: BoardConfig, progress: Callable[[str], None]) -> Measured:
    results = measure_and_load(tpm, board.modules_pcr, module_list())
    if tpm is None:
        # the disks still need their drivers: loaded, said to be unmeasured
        failed = [r for r in results if not r.loaded]
        problems = [f"Driver {os.path.basename(r.path)} did not load: {r.problem}" for r in failed]
        return Measured(
            MeasureFacts(
                tuple(problems), True, "No TPM: the drivers were loaded without being measured."
            )
        )
    failed = [r for r in results if not r.loaded]
    found = Measured(
        MeasureFacts(),
        module_row=f"{len(results)} measured into PCR {board.modules_pcr}, {len(failed)} failed",
    )
    problems = [f"Driver {os.path.basename(r.path)} did not load: {r.problem}" for r in failed]
    bootlog.stage("modules-loaded", count=len(results), failed=len(failed))
    progress("Checking the firmware's event log against the TPM...")
    log, log_problem = None, ""
    try:
        log = read_eventlog()
        found.firmware_pcrs = replay(log).get(Bank.SHA256)
    except (OSError, EventLogError) as err:
        log = None  # a log that does not replay is reported as unreadable, once
        log_problem = plain(
            "eventlog",
            err,
            "the firmware did not publish one, or it cannot be read or is damaged.",
        )
    values = read_pcrs(tpm, range(24))
    found.pcr4_at_start = values[4]
    checked = {*board.firmware_pcrs, board.modules_pcr, board.runtime_pcr}
    report = replay_report(log, log_problem, tpm.log, values, checked)
    firmware4 = (found.firmware_pcrs or {}).get(4)
    match = report.all_match
    summary = report.summary
    if any(m.event_type == "recovery-shell" for m in tpm.log.entries):
        # this power-on opened the recovery shell: PCR 4 says so, and the log too
        found.recovery_used = True
        summary = "A recovery shell was opened during this boot (PCR 4 records it). " + summary
    elif not match and firmware4 is not None and recovery_extends(firmware4, values[4]):
        # PCR 4 was extended by the recovery gate (another process): expected,
        # and it is why nothing unseals until the reboot.
        found.recovery_used = True
        others = [row for row in report.rows if row[0] != "PCR 4" and "DIFFERS" in row[1]]
        match = not others
        summary = "A recovery shell was opened during this boot (PCR 4 records it)." + (
            "" if match else " " + report.summary
        )
    found.summary, found.rows = summary, report.rows
    found.info_rows = [(f"PCR {pcr}", values[pcr].hex()) for pcr in PCRS_SHOWN]
    for pcr in PCRS_SHOWN:
        bootlog.stage("pcr", index=pcr, sha256=values[pcr].hex())
    bootlog.stage("eventlog-checked", match=report.all_match, recovery_used=found.recovery_used)
    if not match:
        problems.append(summary)
    bootlog.stage(
        "devices-ready", peak_rss_kib=peak_rss_kib(), guest_used_kib=guest_memory_used_kib()
    )
    found.facts = MeasureFacts(tuple(problems), match, summary)
    return found
