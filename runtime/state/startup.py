"""The start sequence, from the interpreter's first line to the main menu.

Before the first screen: the board, the TPM, the PCRs and the TOTP code
(what the user compares with a phone). Once it is drawn, in a background
thread beside the menu: the firmware event log is read, kernel modules are
measured into PCR 5 and loaded (drivers for /boot and USB; the TOTP is not
sealed to PCR 5, the disk key will be), and the measurement report is made.
Once a second the TOTP line counts down, and is unsealed anew each window.

Each stage is logged with the boot clock (runtime.bootlog) for the benchmark.
Imports are made where they are needed: under TCG each costs real time.
"""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from runtime import bootlog

if TYPE_CHECKING:
    from runtime.config import BoardConfig
    from runtime.tpm.connection import Tpm
    from runtime.tpm.eventlog import ParsedLog
    from runtime.ui import MenuController

VERSION = "0.1.0"
PCRS_SHOWN = tuple(range(10))
BUSY_LINE = "Loading drivers and checking the event log..."
TOTP_PERIOD = 30


@dataclass
class StartState:
    """What the start sequence found, for the menu and the log."""

    board: BoardConfig | None = None
    tpm: Tpm | None = None
    eventlog: ParsedLog | None = None
    eventlog_problem: str = ""
    totp_code: str | None = None
    totp_step: int = 0  # the 30-second window totp_code belongs to
    totp_message: str = ""
    status: list[str] = field(default_factory=list)
    info_rows: list[tuple[str, str]] = field(default_factory=list)
    replay_summary: str = "Not checked."
    replay_rows: tuple[tuple[str, str], ...] = ()

    def totp_line(self, now: float | None = None) -> str:
        if self.totp_code is None:
            return self.totp_message
        left = TOTP_PERIOD - int(time.time() if now is None else now) % TOTP_PERIOD
        return f"TOTP {self.totp_code}  ({left:2d} s left)  Compare it with your phone."

    def status_text(self, busy: bool = False) -> str:
        """The main menu's status lines; ``busy`` while the background work runs."""
        lines = [self.totp_line(), *self.status, BUSY_LINE if busy else ""]
        return "\n".join(line for line in lines if line)


def _meminfo_kib() -> dict[str, int]:
    """/proc/meminfo's kB fields; empty if it cannot be read."""
    fields: dict[str, int] = {}
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if value.strip().endswith("kB"):
                    fields[key] = int(value.split()[0])
    except (OSError, ValueError):
        return {}
    return fields


def _memory_row() -> tuple[str, str]:
    fields = _meminfo_kib()
    return ("Memory", f"{fields.get('MemTotal', '?')} kB total, "
                      f"{fields.get('MemAvailable', '?')} kB available")


def guest_memory_used_kib() -> int:
    """MemTotal - MemAvailable: what the whole guest uses now."""
    fields = _meminfo_kib()
    return fields.get("MemTotal", 0) - fields.get("MemAvailable", 0)


# Placed in the image by build_initrd.py (--owner-key, --user-config), so the
# firmware measures them with the runtime; the ownership flow will use them.
OWNER_KEY_PATH = "/etc/runtime/owner.asc"
USER_CONFIG_PATH = "/etc/runtime/config.toml"


def _owner_material_rows() -> list[tuple[str, str]]:
    def present(path: str) -> str:
        try:
            return f"in the image ({os.path.getsize(path)} bytes, measured with it)"
        except OSError:
            return "none in the image"

    return [("Owner key", present(OWNER_KEY_PATH)),
            ("User configuration", present(USER_CONFIG_PATH))]


def peak_rss_kib() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _check_measurements(state: StartState) -> None:
    """Replay the firmware log plus the runtime's own extends against the TPM."""
    from runtime.measure.replay import replay_report
    from runtime.tpm.pcrs import read_pcrs

    assert state.tpm is not None and state.board is not None
    values = read_pcrs(state.tpm, range(24))
    board = state.board
    # PCR 10 belongs to IMA and 17-22 to dynamic launch: neither is in this log.
    checked = {*board.firmware_pcrs, board.modules_pcr, board.runtime_pcr}
    report = replay_report(state.eventlog, state.eventlog_problem, state.tpm.log, values,
                           checked)
    state.replay_summary, state.replay_rows = report.summary, report.rows
    state.info_rows = [row for row in state.info_rows if not row[0].startswith("PCR ")]
    state.info_rows += [(f"PCR {pcr}", values[pcr].hex()) for pcr in PCRS_SHOWN]
    if not report.all_match:
        state.status.append(report.summary)
    bootlog.stage("eventlog-checked", match=report.all_match)


def before_first_screen(state: StartState) -> None:
    from runtime.config import ConfigError, load_board

    try:
        state.board = board = load_board()
    except ConfigError as err:
        state.status.append(f"Board configuration problem: {err}")
        return
    state.info_rows += [("Board", board.description), ("Kernel", os.uname().release),
                        _memory_row(), *_owner_material_rows()]

    from runtime.tpm.connection import Tpm
    from runtime.tpm.errors import TpmError

    bootlog.stage("imports-tpm")
    try:
        state.tpm = tpm = Tpm.connect()
    except TpmError as err:
        state.status.append(f"{err} Nothing can be measured or unsealed, so this boot "
                            "proves nothing about the firmware.")
        return
    bootlog.stage("tpm-connected")

    from runtime.tpm.pcrs import read_pcrs

    values = read_pcrs(tpm, PCRS_SHOWN)
    state.info_rows += [(f"PCR {pcr}", values[pcr].hex()) for pcr in PCRS_SHOWN]
    for pcr in PCRS_SHOWN:
        bootlog.stage("pcr", index=pcr, sha256=values[pcr].hex())

    _unseal_totp(state)
    bootlog.stage("totp", unsealed=state.totp_code is not None)


def _unseal_totp(state: StartState) -> None:
    """Unseal again for each 30-second window, as Heads does: the secret is in RAM
    only for the moment it takes to compute one code."""
    from runtime.secrets.totp import unseal_totp

    assert state.tpm is not None and state.board is not None
    step = int(time.time()) // TOTP_PERIOD
    totp = unseal_totp(state.tpm, state.board.runtime_pcr)
    state.totp_code, state.totp_step, state.totp_message = totp.code, step, totp.message


def refresh_totp(state: StartState, tpm_free: bool) -> bool:
    """Once a second in the menu: a new code when the window turns (if the TPM is
    not busy with the background work; next second otherwise). True if the
    line on screen changes."""
    if state.totp_code is None:
        return False
    if int(time.time()) // TOTP_PERIOD != state.totp_step and tpm_free:
        _unseal_totp(state)
    return True


def after_first_screen(state: StartState) -> Callable[[MenuController], None]:
    """Check the firmware event log, measure and load the kernel modules (in the
    background, beside the menu); returns what updates the menu. None of it is
    needed to show the TOTP code."""
    if state.tpm is None or state.board is None:
        return lambda _controller: None
    from runtime.tpm.eventlog import EventLogError, read_eventlog

    try:
        state.eventlog = read_eventlog()
    except (OSError, EventLogError) as err:
        state.eventlog_problem = str(err)

    from runtime.measure.modules import measure_and_load, module_list
    from runtime.ui import SystemInfo

    results = measure_and_load(state.tpm, state.board.modules_pcr, module_list())
    failed = [r for r in results if not r.loaded]
    state.info_rows.append(("Kernel modules", f"{len(results)} measured into PCR "
                                              f"{state.board.modules_pcr}, {len(failed)} failed"))
    for r in failed:
        state.status.append(f"Module {os.path.basename(r.path)} did not load: {r.problem}")
    bootlog.stage("modules-loaded", count=len(results), failed=len(failed))
    _check_measurements(state)
    bootlog.stage("devices-ready", peak_rss_kib=peak_rss_kib(),
                  guest_used_kib=guest_memory_used_kib())
    info = SystemInfo(title=_title(state), rows=tuple(state.info_rows))
    measurements = (state.replay_summary, state.replay_rows)
    status = state.status_text()

    def apply(controller: MenuController) -> None:
        controller.update(info=info, measurements=measurements, status=status)

    return apply


def _title(state: StartState) -> str:
    return f"heads-runtime {VERSION} - board {state.board.name if state.board else '?'}"


def main() -> int:
    state = StartState()
    before_first_screen(state)
    from runtime.ui import BackgroundWork, MenuChoice, SystemInfo, run_main_menu

    bootlog.stage("imports-ui")
    for line in state.status_text().splitlines():
        bootlog.stage("status", text=repr(line))
    info = SystemInfo(title=_title(state), rows=tuple(state.info_rows))

    def after_first_draw(_controller: MenuController) -> None:
        bootlog.stage("menu-shown", peak_rss_kib=peak_rss_kib(),
                      guest_used_kib=guest_memory_used_kib())
        # What the start allocated lives all boot: keep it out of every future
        # collection, then collect as usual (gc was off since __main__).
        gc.freeze()
        gc.enable()
        bootlog.echo_to_console(False)

    background = BackgroundWork(lambda: after_first_screen(state))

    def every_second(controller: MenuController) -> None:
        busy = not background.join(timeout=0)
        if refresh_totp(state, tpm_free=not busy):
            controller.update(status=state.status_text(busy))

    replay = ("Checking the firmware event log...", ())
    choice = run_main_menu(info, replay, state.status_text(busy=True),
                           after_first_draw=after_first_draw,
                           background=background, every_second=every_second)
    # The TPM is the background work's until it ends (modules are in the kernel then).
    finished = background.join(timeout=120)
    bootlog.echo_to_console(True)  # also prints the lines logged while the menu was up
    if not finished:
        bootlog.stage("background-unfinished")
    elif background.error is not None:
        bootlog.report_crash(background.error)
    bootlog.stage("choice", value=choice.value)
    from runtime.devices import power

    if choice is MenuChoice.REBOOT:
        power.reboot()
    else:
        power.power_off()
    return 0
