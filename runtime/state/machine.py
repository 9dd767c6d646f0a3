"""The power-on as an explicit state machine: the states, and for each the
events it can end with and the state each event leads to.

Pure data and one lookup: no devices, no UI. What each state does (its step)
is in runtime.state.steps; runtime.state.driver runs the loop. Reading this
table top to bottom is reading the boot: early init, the TOTP code shown while
the drivers load, measure, find /boot, rollback preflight, keyring check,
TOTP, HOTP, automatic boot, main menu, and every failure branch with the
choices it offers.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping


class State(enum.StrEnum):
    # The start, in order.
    EARLY_INIT = "early-init"  # board, settings, TPM
    # The TOTP secret is not sealed to the drivers' PCR: its code is on screen
    # while they load; the TOTP state below attests, after the checks.
    EARLY_TOTP = "early-totp"
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
        State.EARLY_TOTP,
        State.MEASURE,
        State.FIND_BOOT,
        State.ROLLBACK_PREFLIGHT,
        State.KEYRING_CHECK,
        State.TOTP,
        State.HOTP,
        State.AUTOBOOT,
    }
)


class Event(enum.StrEnum):
    """How a state ends: what its step returns, and the key of the table below."""

    OK = "ok"
    NO_TPM = "no-tpm"
    FATAL = "fatal"
    RECOVERY = "recovery"
    POWER_OFF = "power-off"
    REBOOT = "reboot"
    CONTINUE = "continue"
    DONE = "done"
    FOUND = "found"
    MISSING = "missing"
    RETRY = "retry"
    BOOT_OPTIONS = "boot-options"
    FAILED = "failed"
    BASIC = "basic"
    AGAIN = "again"
    RESET_TPM = "reset-tpm"
    OEM_RESET = "oem-reset"
    EMPTY = "empty"
    SHOWN = "shown"
    GENERATE = "generate"
    VERIFIED = "verified"
    NOT_CONFIGURED = "not-configured"
    TIMEOUT = "timeout"
    INTERRUPTED = "interrupted"
    NOT_ALLOWED = "not-allowed"
    DEFAULT_BOOT = "default-boot"
    BASIC_BOOT = "basic-boot"
    REFRESH = "refresh"
    OPTIONS = "options"
    SYSTEM_INFO = "system-info"
    BACK = "back"
    TPM_OPTIONS = "tpm-options"
    INTEGRITY = "integrity"
    CHANGE_TIME = "change-time"
    UPDATE_CHECKSUMS = "update-checksums"
    CONFIGURATION = "configuration"
    GPG_OPTIONS = "gpg-options"
    ROOT_HASHES = "root-hashes"
    OS_MENU = "os-menu"
    UNSAFE = "unsafe"
    NEED_RESET = "need-reset"
    CANCELLED = "cancelled"
    REFUSED = "refused"
    NO_DEFAULT = "no-default"
    MENU = "menu"
    LOADED = "loaded"
    INVESTIGATE = "investigate"
    DEFAULT_SAVED = "default-saved"
    CONFIRMED = "confirmed"


S, E = State, Event
# Every state's events and where they lead. A step returning an event not
# listed here is a bug the driver reports (and the unit tests catch).
TRANSITIONS: Mapping[State, Mapping[Event, State]] = {
    S.EARLY_INIT: {E.OK: S.EARLY_TOTP, E.NO_TPM: S.NO_TPM, E.FATAL: S.FATAL},
    S.EARLY_TOTP: {E.DONE: S.MEASURE},
    S.FATAL: {E.RECOVERY: S.RECOVERY_CONFIRM, E.POWER_OFF: S.POWER_OFF, E.REBOOT: S.REBOOT},
    S.NO_TPM: {E.CONTINUE: S.MEASURE, E.RECOVERY: S.RECOVERY_CONFIRM, E.POWER_OFF: S.POWER_OFF},
    S.MEASURE: {E.DONE: S.FIND_BOOT},
    S.FIND_BOOT: {E.FOUND: S.ROLLBACK_PREFLIGHT, E.MISSING: S.NO_BOOT},
    # Basic mode (CONFIG_BASIC) skips the checks: the preflight or the keyring
    # check (whichever comes first) leads straight to the main menu.
    S.NO_BOOT: {
        E.RETRY: S.FIND_BOOT,
        E.CONTINUE: S.KEYRING_CHECK,
        E.BOOT_OPTIONS: S.BOOT_OPTIONS,
        E.RECOVERY: S.RECOVERY_CONFIRM,
    },
    S.ROLLBACK_PREFLIGHT: {
        E.OK: S.KEYRING_CHECK,
        E.FAILED: S.TPM_INCONSISTENT,
        E.BASIC: S.MAIN_MENU,
    },
    S.TPM_INCONSISTENT: {
        E.AGAIN: S.TPM_INCONSISTENT,
        E.RETRY: S.ROLLBACK_PREFLIGHT,
        E.RESET_TPM: S.RESET_TPM,
        E.OEM_RESET: S.OEM_RESET,
        E.CONTINUE: S.MAIN_MENU,
        E.RECOVERY: S.RECOVERY_CONFIRM,
    },
    S.KEYRING_CHECK: {E.OK: S.TOTP, E.EMPTY: S.KEYRING_EMPTY, E.BASIC: S.MAIN_MENU},
    S.KEYRING_EMPTY: {
        E.AGAIN: S.KEYRING_EMPTY,
        E.CONTINUE: S.TOTP,
        E.OEM_RESET: S.OEM_RESET,
        E.RECOVERY: S.RECOVERY_CONFIRM,
    },
    S.TOTP: {E.SHOWN: S.HOTP, E.FAILED: S.TOTP_FAILED, E.NO_TPM: S.MAIN_MENU, E.BASIC: S.MAIN_MENU},
    S.TOTP_FAILED: {
        E.RETRY: S.TOTP,
        E.GENERATE: S.GENERATE_SECRET,
        E.RESET_TPM: S.RESET_TPM,
        E.CONTINUE: S.MAIN_MENU,
        E.REBOOT: S.REBOOT,
        E.POWER_OFF: S.POWER_OFF,
        E.RECOVERY: S.RECOVERY_CONFIRM,
    },
    S.HOTP: {E.VERIFIED: S.AUTOBOOT, E.NOT_CONFIGURED: S.AUTOBOOT, E.FAILED: S.HOTP_FAILED},
    S.HOTP_FAILED: {
        E.RETRY: S.HOTP,
        E.GENERATE: S.GENERATE_SECRET,
        E.CONTINUE: S.MAIN_MENU,
        E.RECOVERY: S.RECOVERY_CONFIRM,
    },
    S.AUTOBOOT: {E.TIMEOUT: S.DEFAULT_BOOT, E.INTERRUPTED: S.MAIN_MENU, E.NOT_ALLOWED: S.MAIN_MENU},
    S.MAIN_MENU: {
        E.DEFAULT_BOOT: S.DEFAULT_BOOT,
        E.BASIC_BOOT: S.UNSAFE_BOOT,
        E.REFRESH: S.TOTP,
        E.OPTIONS: S.OPTIONS,
        E.SYSTEM_INFO: S.SYSTEM_INFO,
        E.POWER_OFF: S.POWER_OFF,
    },
    S.SYSTEM_INFO: {E.BACK: S.MAIN_MENU},
    S.OPTIONS: {
        E.BOOT_OPTIONS: S.BOOT_OPTIONS,
        E.TPM_OPTIONS: S.TPM_OPTIONS,
        E.INTEGRITY: S.INTEGRITY_REPORT,
        E.CHANGE_TIME: S.CHANGE_TIME,
        E.UPDATE_CHECKSUMS: S.UPDATE_CHECKSUMS,
        E.CONFIGURATION: S.CONFIGURATION,
        E.GPG_OPTIONS: S.GPG_OPTIONS,
        E.OEM_RESET: S.OEM_RESET,
        E.ROOT_HASHES: S.ROOT_HASHES,
        E.RECOVERY: S.RECOVERY_CONFIRM,
        E.REBOOT: S.REBOOT,
        E.BACK: S.MAIN_MENU,
    },
    S.BOOT_OPTIONS: {
        E.OS_MENU: S.OS_MENU,
        E.UNSAFE: S.UNSAFE_BOOT,
        E.AGAIN: S.BOOT_OPTIONS,
        E.BACK: S.OPTIONS,
    },
    S.TPM_OPTIONS: {
        E.GENERATE: S.GENERATE_SECRET,
        E.RESET_TPM: S.RESET_TPM,
        E.CHANGE_TIME: S.CHANGE_TIME,
        E.AGAIN: S.TPM_OPTIONS,
        E.BACK: S.OPTIONS,
    },
    S.INTEGRITY_REPORT: {E.BACK: S.OPTIONS, E.RECOVERY: S.RECOVERY_CONFIRM},
    S.CONFIGURATION: {E.BACK: S.OPTIONS},
    S.GPG_OPTIONS: {E.AGAIN: S.GPG_OPTIONS, E.BACK: S.OPTIONS},
    S.OEM_RESET: {E.BACK: S.MAIN_MENU},
    S.UPDATE_CHECKSUMS: {E.BACK: S.OPTIONS, E.DONE: S.MAIN_MENU},
    S.ROOT_HASHES: {E.AGAIN: S.ROOT_HASHES, E.BACK: S.OPTIONS},
    S.GENERATE_SECRET: {E.DONE: S.TOTP, E.NEED_RESET: S.RESET_TPM, E.CANCELLED: S.MAIN_MENU},
    S.RESET_TPM: {E.DONE: S.GENERATE_SECRET, E.CANCELLED: S.MAIN_MENU},
    S.CHANGE_TIME: {E.DONE: S.TOTP, E.CANCELLED: S.OPTIONS},
    S.DEFAULT_BOOT: {
        E.REFUSED: S.BOOT_REFUSED,
        E.NO_DEFAULT: S.OS_MENU,
        E.MENU: S.MAIN_MENU,
        E.LOADED: S.HANDOVER,
    },
    S.BOOT_REFUSED: {
        E.INVESTIGATE: S.INTEGRITY_REPORT,
        E.UPDATE_CHECKSUMS: S.UPDATE_CHECKSUMS,
        E.UNSAFE: S.UNSAFE_BOOT,
        E.MENU: S.MAIN_MENU,
        E.POWER_OFF: S.POWER_OFF,
        E.REBOOT: S.REBOOT,
        E.RECOVERY: S.RECOVERY_CONFIRM,
    },
    S.OS_MENU: {
        E.REFUSED: S.BOOT_REFUSED,
        E.MENU: S.MAIN_MENU,
        E.AGAIN: S.OS_MENU,
        E.DEFAULT_SAVED: S.DEFAULT_BOOT,
        E.BACK: S.MAIN_MENU,
        E.LOADED: S.HANDOVER,
    },
    S.UNSAFE_BOOT: {E.REFUSED: S.BOOT_REFUSED, E.BACK: S.MAIN_MENU, E.LOADED: S.HANDOVER},
    S.RECOVERY_CONFIRM: {E.CONFIRMED: S.RECOVERY, E.REFUSED: S.MAIN_MENU, E.CANCELLED: S.MAIN_MENU},
    S.POWER_OFF: {},
    S.REBOOT: {},
    S.RECOVERY: {},
    S.HANDOVER: {},
}


class UnknownEvent(LookupError):
    """A step ended with an event its state does not list: a programming error."""


def next_state(state: State, event: Event) -> State:
    try:
        return TRANSITIONS[state][event]
    except KeyError:
        raise UnknownEvent(f"state {state} has no transition for event {event!r}") from None
