"""From the interpreter's first line to the end of the runtime: open the
console, run the boot state machine (runtime.state.machine) in the UI, and
carry out where it ended: power off, reboot, or back to /init for the
recovery shell or for ``kexec -e``.

Each stage is logged with the boot clock (runtime.bootlog) for the benchmark;
the console sees those lines only with `runtime.trace` on the kernel command
line, or as the owner's CONFIG_QUIET_MODE / CONFIG_DEBUG_OUTPUT ask.
Imports are made where they are needed: under TCG each costs real time.
"""

from __future__ import annotations

import gc
from typing import TYPE_CHECKING

from runtime import bootlog

if TYPE_CHECKING:
    from runtime.state.machine import State
    from runtime.state.platform import Platform
    from runtime.state.view import Ui

#: /init opens the recovery shell (through its gate) on this exit status.
RECOVERY_EXIT = 3
#: /init runs ``kexec -e`` on this exit status: the kernel is loaded and the
#: hand-over prepared. The runtime exits first so that its memory (every
#: immutable copy of a passphrase or secret Python made) is freed, and zeroed
#: by the firmware kernel's init_on_free=1, before the next kernel gets the RAM.
#: Its exit also hangs up the console it leads (setsid -c in /init), which
#: frees the kernel's buffer of what was typed there.
HANDOVER_EXIT = 4
DEFAULT_COLUMNS, DEFAULT_ROWS = 80, 24


def _console_size() -> tuple[int, int]:
    """The board's console size; the default when the board file is unreadable
    (the state machine then says why on screen)."""
    from runtime.config import ConfigError, load_board

    try:
        board = load_board()
    except ConfigError:
        return DEFAULT_COLUMNS, DEFAULT_ROWS
    return board.columns, board.rows


def _on_state(state: State) -> None:
    from runtime.state.machine import State

    if state is State.MEASURE or state is State.NO_TPM:
        # The start's imports are done: what they allocated lives all boot, so
        # keep it out of every future collection, then collect as usual (gc
        # was off since __main__).
        gc.freeze()
        gc.enable()


#: the first screen, up before the state machine's modules are imported
FIRST_SCREEN = ("Starting", "Loading the measured-boot runtime...")


def main() -> int:
    import signal

    from runtime.state.recovery_window import wait_for_recovery_window
    from runtime.state.view import Progress
    from runtime.ui import run_ui

    # Ctrl-C on the console must not stop the runtime (its leaving is the
    # menus' business; /init would offer the recovery gate).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    columns, rows = _console_size()
    bootlog.stage("imports-ui")
    waited = wait_for_recovery_window()
    bootlog.stage("recovery-window-closed", waited=f"{waited:.3f}")
    platforms: list[Platform] = []

    def machine(ui: Ui) -> State:
        # The screen first: the state machine's imports take about a second
        # under emulation, and the user sees the runtime started meanwhile.
        ui.progress(Progress(*FIRST_SCREEN))
        bootlog.stage("ui-up")
        bootlog.echo_to_console(False)  # the UI owns the screen now
        from runtime.state import driver
        from runtime.state.device_platform import DevicePlatform
        from runtime.state.steps import Context

        platforms.append(DevicePlatform())
        bootlog.stage("imports-machine")
        return driver.run(Context(ui, platforms[0]), on_state=_on_state)

    try:
        final = run_ui(machine, columns=columns, rows=rows)
    finally:
        # With the trace (or the owner's console level) on, prints the lines
        # held back meanwhile; quiet, nothing: the screen left must not scroll away.
        bootlog.echo_to_console(True)
    bootlog.stage("final", state=str(final))
    return leave(final, platforms[0])


def leave(final: State, platform: Platform) -> int:
    """Carry out the final state; the exit status for /init."""
    from runtime.state.machine import State

    if final is State.RECOVERY:
        # No TPM shutdown: the recovery gate runs next and uses the TPM.
        return RECOVERY_EXIT
    # The TPM's last command (runtime.tpm.power_state). For the hand-over it
    # follows prepare_handover, and after it the runtime only exits.
    platform.before_power_change()
    if final is State.HANDOVER:
        return HANDOVER_EXIT
    from runtime.devices import power

    if final is State.REBOOT:
        power.reboot()
    else:
        power.power_off()
    return 0
