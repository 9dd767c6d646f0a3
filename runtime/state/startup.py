"""The start sequence, from the interpreter's first line to the main menu:
connect to the TPM, measure and load kernel modules, read the PCRs, check the
firmware event log, unseal the TOTP secret, show the menu.

Each stage is logged with the boot clock (runtime.bootlog) for the benchmark.
Imports are made where they are needed, so the first line is printed early.
"""

from __future__ import annotations

import os
import platform
import sys
from dataclasses import dataclass, field

from runtime import bootlog

VERSION = "0.1.0"
PCRS_SHOWN = tuple(range(10))


@dataclass
class StartState:
    """What the start sequence found, for the menu and the log."""

    board_name: str = "?"
    status: list[str] = field(default_factory=list)
    info_rows: list[tuple[str, str]] = field(default_factory=list)
    replay_summary: str = "Not checked."
    replay_rows: tuple[tuple[str, str], ...] = ()


def _memory_rows() -> list[tuple[str, str]]:
    fields: dict[str, str] = {}
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
    except OSError:
        return []
    return [("Memory", f"{fields.get('MemTotal', '?')} total, "
                       f"{fields.get('MemAvailable', '?')} available")]


def peak_rss_kib() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def start(state: StartState) -> None:
    from runtime.config import ConfigError, load_board

    try:
        board = load_board()
    except ConfigError as err:
        state.status.append(f"Board configuration problem: {err}")
        return
    state.board_name = board.name
    state.info_rows += [("Board", board.description), ("Kernel", platform.release())]
    state.info_rows += _memory_rows()

    from runtime.tpm.connection import Tpm
    from runtime.tpm.errors import TpmError

    bootlog.stage("imports-tpm")
    try:
        tpm = Tpm.connect()
    except TpmError as err:
        state.status.append(f"No TPM: {err}. Measurements and secrets are unavailable.")
        return
    bootlog.stage("tpm-connected")

    from runtime.measure.modules import measure_and_load, module_list

    results = measure_and_load(tpm, board.modules_pcr, module_list())
    failed = [r for r in results if not r.loaded]
    state.info_rows.append(("Kernel modules", f"{len(results)} measured into PCR "
                                              f"{board.modules_pcr}, {len(failed)} failed"))
    for r in failed:
        state.status.append(f"Module {os.path.basename(r.path)} did not load: {r.problem}")
    bootlog.stage("modules-loaded", count=len(results), failed=len(failed))

    from runtime.tpm.pcrs import read_pcrs

    values = read_pcrs(tpm, range(24))
    for pcr in PCRS_SHOWN:
        state.info_rows.append((f"PCR {pcr}", values[pcr].hex()))
        bootlog.stage("pcr", index=pcr, sha256=values[pcr].hex())
    bootlog.stage("pcrs-read")

    from runtime.measure.replay import replay_report
    from runtime.tpm.eventlog import EventLogError, read_eventlog

    try:
        log, problem = read_eventlog(), ""
    except (OSError, EventLogError) as err:
        log, problem = None, str(err)
    # PCR 10 belongs to IMA and 17-22 to dynamic launch: neither is in this log.
    checked = {*board.firmware_pcrs, board.modules_pcr, board.runtime_pcr}
    report = replay_report(log, problem, tpm.log, values, checked)
    state.replay_summary, state.replay_rows = report.summary, report.rows
    if not report.all_match:
        state.status.append(report.summary)
    bootlog.stage("eventlog-checked", match=report.all_match)

    from runtime.secrets.totp import unseal_totp

    totp = unseal_totp(tpm, board.runtime_pcr)
    state.status.insert(0, f"TOTP {totp.code}  {totp.message}" if totp.code else totp.message)
    bootlog.stage("totp", unsealed=totp.code is not None)


def main() -> int:
    bootlog.stage("python-started")
    state = StartState()
    start(state)
    from runtime.ui import MenuChoice, SystemInfo, run_main_menu

    bootlog.stage("imports-ui")
    info = SystemInfo(title=f"heads-runtime {VERSION} - board {state.board_name}",
                      rows=tuple(state.info_rows))
    for line in state.status:
        bootlog.stage("status", text=repr(line))

    def first_draw() -> None:
        bootlog.stage("menu-shown", peak_rss_kib=peak_rss_kib())
        bootlog.echo_to_console(False)

    choice = run_main_menu(info, (state.replay_summary, state.replay_rows),
                           "\n".join(state.status), on_first_draw=first_draw)
    bootlog.echo_to_console(True)
    bootlog.stage("choice", value=choice.value)
    from runtime.devices import power

    if choice is MenuChoice.REBOOT:
        power.reboot()
    else:
        power.power_off()
    return 0


if __name__ == "__main__":
    sys.exit(main())
