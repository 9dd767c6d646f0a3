"""Runs the state machine: each state's step, then the transition its event
names, until a final state (power off, reboot, recovery shell)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from runtime import bootlog
from runtime.state.machine import FINAL_STATES, UNATTENDED_START, State, next_state
from runtime.state.steps import (
    Context,
    Step,
    actions,
    attest,
    boot,
    menus,
    report,
    root,
    secret,
    start,
    tpm_reset,
)

S = State
STEPS: Mapping[State, Step] = {
    S.EARLY_INIT: start.early_init,
    S.EARLY_TOTP: start.early_totp,
    S.FATAL: start.fatal,
    S.NO_TPM: start.no_tpm,
    S.MEASURE: start.measure,
    S.FIND_BOOT: start.find_boot,
    S.NO_BOOT: start.no_boot,
    S.ROLLBACK_PREFLIGHT: start.rollback_preflight,
    S.TPM_INCONSISTENT: start.tpm_inconsistent,
    S.KEYRING_CHECK: start.keyring_check,
    S.KEYRING_EMPTY: start.keyring_empty,
    S.TOTP: attest.totp,
    S.TOTP_FAILED: attest.totp_failed,
    S.HOTP: attest.hotp,
    S.HOTP_FAILED: attest.hotp_failed,
    S.AUTOBOOT: attest.autoboot,
    S.MAIN_MENU: menus.main_menu,
    S.SYSTEM_INFO: menus.system_info,
    S.OPTIONS: menus.options,
    S.BOOT_OPTIONS: menus.boot_options,
    S.TPM_OPTIONS: menus.tpm_options,
    S.INTEGRITY_REPORT: report.integrity_report,
    S.CONFIGURATION: menus.configuration,
    S.GPG_OPTIONS: menus.gpg_options,
    S.OEM_RESET: menus.oem_reset,
    S.UPDATE_CHECKSUMS: boot.update_checksums,
    S.ROOT_HASHES: root.root_hashes,
    S.GENERATE_SECRET: secret.generate_secret,
    S.RESET_TPM: tpm_reset.reset_tpm,
    S.CHANGE_TIME: actions.change_time,
    S.DEFAULT_BOOT: boot.default_boot,
    S.BOOT_REFUSED: boot.boot_refused,
    S.OS_MENU: boot.os_menu,
    S.UNSAFE_BOOT: boot.unsafe_boot,
    S.RECOVERY_CONFIRM: actions.recovery_confirm,
}


def run(
    ctx: Context, state: State = State.EARLY_INIT, on_state: Callable[[State], None] | None = None
) -> State:
    """Run from ``state`` until a final state; return it. The path taken is
    logged, one line per state (never what the user typed); ``on_state`` is
    told of each state entered."""
    while state not in FINAL_STATES:
        event = STEPS[state](ctx)
        following = next_state(state, event)
        bootlog.stage("state", at=str(state), event=event, next=str(following))
        state = following
        if state not in UNATTENDED_START:
            ctx.session.autoboot_offered = True  # someone is here: no automatic boot
        if on_state is not None:
            on_state(state)
    return state
