"""The power-on as an explicit state machine: the states, and for each the
events it can end with and the state each event leads to.

Pure data and one lookup: no devices, no UI. What each state does (its step)
is in runtime.state.steps; runtime.state.driver runs the loop. Reading this
table top to bottom is reading the boot: early init, measure, find /boot,
rollback preflight, keyring check, TOTP, HOTP, automatic boot, main menu, and
every failure branch with the choices it offers.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping


class State(enum.StrEnum):
    # The start, in order.
    EARLY_INIT = "early-init"  # board, settings, TPM
    MEASURE = "measure"  # kernel modules into PCR 5, event log vs PCRs
    FIND_BOOT = "find-boot"
    ROLLBACK_PREFLIGHT = "rollback-preflight"
    KEYRING_CHECK = "keyring-check"
    TOTP = "totp"
    HOTP = "hotp"
    AUTOBOOT = "autoboot"
    MAIN_MENU = "main-menu"
    # Failure branches of the start.
    FATAL = "fatal"  # the runtime cannot work at all (no board file)
    NO_TPM = "no-tpm"
    NO_BOOT = "no-boot"
    TPM_INCONSISTENT = "tpm-inconsistent"
    KEYRING_EMPTY = "keyring-empty"
    TOTP_FAILED = "totp-failed"
    HOTP_FAILED = "hotp-failed"
    # Work the user starts.
    GENERATE_SECRET = "generate-secret"  # noqa: S105 (a state, not a password)
    RESET_TPM = "reset-tpm"
    DEFAULT_BOOT = "default-boot"
    BOOT_REFUSED = "boot-refused"
    OS_MENU = "os-menu"
    UNSAFE_BOOT = "unsafe-boot"
    CHANGE_TIME = "change-time"
    RECOVERY_CONFIRM = "recovery-confirm"
    # Menus and pages.
    SYSTEM_INFO = "system-info"
    OPTIONS = "options"
    BOOT_OPTIONS = "boot-options"
    TPM_OPTIONS = "tpm-options"
    INTEGRITY_REPORT = "integrity-report"
    CONFIGURATION = "configuration"
    GPG_OPTIONS = "gpg-options"
    OEM_RESET = "oem-reset"
    UPDATE_CHECKSUMS = "update-checksums"
    ROOT_HASHES = "root-hashes"
    # Where the runtime ends: the driver hands these to the caller.
    POWER_OFF = "power-off"
    REBOOT = "reboot"
    RECOVERY = "recovery"  # /init opens the authenticated recovery shell
    HANDOVER = "handover"  # the kernel is loaded: the runtime exits, /init runs kexec -e


FINAL_STATES = frozenset({State.POWER_OFF, State.REBOOT, State.RECOVERY, State.HANDOVER})
#: The start a machine runs through unattended. Once any other state is
#: entered, someone is at the keyboard: the automatic boot is not offered then
#: (not after a secret was enrolled or a failure was dealt with, either).
UNATTENDED_START = frozenset(
    {
        State.EARLY_INIT,
        State.MEASURE,
        State.FIND_BOOT,
        State.ROLLBACK_PREFLIGHT,
        State.KEYRING_CHECK,
        State.TOTP,
        State.HOTP,
        State.AUTOBOOT,
    }
)

S = State
# Every state's events and where they lead. A step returning an event not
# listed here is a bug the driver reports (and the unit tests catch).
TRANSITIONS: Mapping[State, Mapping[str, State]] = {
    S.EARLY_INIT: {"ok": S.MEASURE, "no-tpm": S.NO_TPM, "fatal": S.FATAL},
    S.FATAL: {"recovery": S.RECOVERY_CONFIRM, "power-off": S.POWER_OFF, "reboot": S.REBOOT},
    S.NO_TPM: {"continue": S.MEASURE, "recovery": S.RECOVERY_CONFIRM, "power-off": S.POWER_OFF},
    S.MEASURE: {"done": S.FIND_BOOT},
    S.FIND_BOOT: {"found": S.ROLLBACK_PREFLIGHT, "missing": S.NO_BOOT},
    # Basic mode (CONFIG_BASIC) skips the checks: the preflight or the keyring
    # check (whichever comes first) leads straight to the main menu.
    S.NO_BOOT: {
        "retry": S.FIND_BOOT,
        "continue": S.KEYRING_CHECK,
        "boot-options": S.BOOT_OPTIONS,
        "recovery": S.RECOVERY_CONFIRM,
    },
    S.ROLLBACK_PREFLIGHT: {
        "ok": S.KEYRING_CHECK,
        "failed": S.TPM_INCONSISTENT,
        "basic": S.MAIN_MENU,
    },
    S.TPM_INCONSISTENT: {
        "again": S.TPM_INCONSISTENT,
        "retry": S.ROLLBACK_PREFLIGHT,
        "reset-tpm": S.RESET_TPM,
        "oem-reset": S.OEM_RESET,
        "continue": S.MAIN_MENU,
        "recovery": S.RECOVERY_CONFIRM,
    },
    S.KEYRING_CHECK: {"ok": S.TOTP, "empty": S.KEYRING_EMPTY, "basic": S.MAIN_MENU},
    S.KEYRING_EMPTY: {
        "again": S.KEYRING_EMPTY,
        "continue": S.TOTP,
        "oem-reset": S.OEM_RESET,
        "recovery": S.RECOVERY_CONFIRM,
    },
    S.TOTP: {"shown": S.HOTP, "failed": S.TOTP_FAILED, "no-tpm": S.MAIN_MENU, "basic": S.MAIN_MENU},
    S.TOTP_FAILED: {
        "retry": S.TOTP,
        "generate": S.GENERATE_SECRET,
        "reset-tpm": S.RESET_TPM,
        "continue": S.MAIN_MENU,
        "reboot": S.REBOOT,
        "power-off": S.POWER_OFF,
        "recovery": S.RECOVERY_CONFIRM,
    },
    S.HOTP: {"verified": S.AUTOBOOT, "not-configured": S.AUTOBOOT, "failed": S.HOTP_FAILED},
    S.HOTP_FAILED: {
        "retry": S.HOTP,
        "generate": S.GENERATE_SECRET,
        "continue": S.MAIN_MENU,
        "recovery": S.RECOVERY_CONFIRM,
    },
    S.AUTOBOOT: {"timeout": S.DEFAULT_BOOT, "interrupted": S.MAIN_MENU, "not-allowed": S.MAIN_MENU},
    S.MAIN_MENU: {
        "default-boot": S.DEFAULT_BOOT,
        "basic-boot": S.UNSAFE_BOOT,
        "refresh": S.TOTP,
        "options": S.OPTIONS,
        "system-info": S.SYSTEM_INFO,
        "power-off": S.POWER_OFF,
    },
    S.SYSTEM_INFO: {"back": S.MAIN_MENU},
    S.OPTIONS: {
        "boot-options": S.BOOT_OPTIONS,
        "tpm-options": S.TPM_OPTIONS,
        "integrity": S.INTEGRITY_REPORT,
        "change-time": S.CHANGE_TIME,
        "update-checksums": S.UPDATE_CHECKSUMS,
        "configuration": S.CONFIGURATION,
        "gpg-options": S.GPG_OPTIONS,
        "oem-reset": S.OEM_RESET,
        "root-hashes": S.ROOT_HASHES,
        "recovery": S.RECOVERY_CONFIRM,
        "reboot": S.REBOOT,
        "back": S.MAIN_MENU,
    },
    S.BOOT_OPTIONS: {
        "os-menu": S.OS_MENU,
        "unsafe": S.UNSAFE_BOOT,
        "again": S.BOOT_OPTIONS,
        "back": S.OPTIONS,
    },
    S.TPM_OPTIONS: {
        "generate": S.GENERATE_SECRET,
        "reset-tpm": S.RESET_TPM,
        "change-time": S.CHANGE_TIME,
        "again": S.TPM_OPTIONS,
        "back": S.OPTIONS,
    },
    S.INTEGRITY_REPORT: {"back": S.OPTIONS, "recovery": S.RECOVERY_CONFIRM},
    S.CONFIGURATION: {"back": S.OPTIONS},
    S.GPG_OPTIONS: {"again": S.GPG_OPTIONS, "back": S.OPTIONS},
    S.OEM_RESET: {"back": S.MAIN_MENU},
    S.UPDATE_CHECKSUMS: {"back": S.OPTIONS, "done": S.MAIN_MENU},
    S.ROOT_HASHES: {"again": S.ROOT_HASHES, "back": S.OPTIONS},
    S.GENERATE_SECRET: {"done": S.TOTP, "need-reset": S.RESET_TPM, "cancelled": S.MAIN_MENU},
    S.RESET_TPM: {"done": S.GENERATE_SECRET, "cancelled": S.MAIN_MENU},
    S.CHANGE_TIME: {"done": S.TOTP, "cancelled": S.OPTIONS},
    S.DEFAULT_BOOT: {
        "refused": S.BOOT_REFUSED,
        "no-default": S.OS_MENU,
        "menu": S.MAIN_MENU,
        "loaded": S.HANDOVER,
    },
    S.BOOT_REFUSED: {
        "investigate": S.INTEGRITY_REPORT,
        "update-checksums": S.UPDATE_CHECKSUMS,
        "unsafe": S.UNSAFE_BOOT,
        "menu": S.MAIN_MENU,
        "power-off": S.POWER_OFF,
        "reboot": S.REBOOT,
        "recovery": S.RECOVERY_CONFIRM,
    },
    S.OS_MENU: {
        "refused": S.BOOT_REFUSED,
        "again": S.OS_MENU,
        "default-saved": S.DEFAULT_BOOT,
        "back": S.MAIN_MENU,
        "loaded": S.HANDOVER,
    },
    S.UNSAFE_BOOT: {"refused": S.BOOT_REFUSED, "back": S.MAIN_MENU, "loaded": S.HANDOVER},
    S.RECOVERY_CONFIRM: {"confirmed": S.RECOVERY, "refused": S.MAIN_MENU, "cancelled": S.MAIN_MENU},
    S.POWER_OFF: {},
    S.REBOOT: {},
    S.RECOVERY: {},
    S.HANDOVER: {},
}


class UnknownEvent(LookupError):
    """A step ended with an event its state does not list: a programming error."""


def next_state(state: State, event: str) -> State:
    try:
        return TRANSITIONS[state][event]
    except KeyError:
        raise UnknownEvent(f"state {state} has no transition for event {event!r}") from None
