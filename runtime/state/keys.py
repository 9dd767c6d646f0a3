"""The key scheme every screen speaks: one way to go back, one letter for the
recovery shell, and a letter of its own for each action that cannot be undone;
on the failure screens Heads has too, Heads' letters (HEADS_KEYS) come first.

Pure data. The steps build their choices from these constants, the UI
(runtime.ui.menu_view) gives Esc and BACK the same meaning, and
tests/unit/state/test_screen_inventory.py renders every screen and checks that the
scheme holds. runtime/ui/KEYS.md is the same table for people.
"""

from __future__ import annotations

from collections.abc import Mapping

from runtime.state.machine import Event, State
from runtime.state.view import Choice

#: Back on every screen that has somewhere to go back to (Esc does the same).
#: On a yes/no question, Back is No.
BACK = "b"
#: The recovery shell, and nothing else.
RECOVERY_KEY = "x"
#: The technical details behind a failure (offered where there are some).
DETAILS_KEY = "?"

#: Actions that end the session or destroy state: each letter means only its
#: action on every screen, and each asks first, with No selected (the OEM
#: reset only shows that it is not built yet).
DESTRUCTIVE: dict[str, str] = {
    "p": Event.POWER_OFF,
    "R": Event.REBOOT,
    "T": Event.RESET_TPM,
    "F": Event.OEM_RESET,
    "u": Event.UPDATE_CHECKSUMS,  # signs what /boot holds now
}
#: Booting without verifying /boot: one letter wherever it is offered (it asks
#: first, with No selected).
UNSAFE_KEY = "f"
#: Every reserved letter and the one event it may name. BACK names whatever
#: the screen's back event is; checked separately.
RESERVED: dict[str, str] = {
    RECOVERY_KEY: Event.RECOVERY,
    DETAILS_KEY: "details",
    UNSAFE_KEY: Event.UNSAFE,
    **DESTRUCTIVE,
}

#: Letters for the entries of a list (the OS boot menu): never a reserved one,
#: so an entry is never taken for Back or a destructive action.
ENTRY_KEYS = "123456789" + "".join(
    c for c in "acdefghijklmnoqstvwyz" if c not in RESERVED and c != BACK
)

#: Heads' letters on its failure screens (gui-init's menus), by the state that
#: shows the runtime's screen: there a letter means Heads' choice, even where
#: the scheme above gives it another, so a user who knows Heads finds the same
#: key in the same place. The runtime's other choices there take free letters.
HEADS_KEYS: Mapping[State, Mapping[str, str]] = {
    # "No /boot Partition Found"; b: the boot options, as the runtime has no
    # boot device to select
    State.NO_BOOT: {"u": "usb", "b": Event.BOOT_OPTIONS, "m": Event.CONTINUE, "x": Event.RECOVERY},
    State.TPM_INCONSISTENT: {
        "i": "report",
        "o": Event.OEM_RESET,
        "t": Event.RESET_TPM,
        "m": Event.CONTINUE,
    },
    State.KEYRING_EMPTY: {
        "g": "add-key",
        "F": Event.OEM_RESET,
        "i": Event.CONTINUE,
        "x": Event.RECOVERY,
    },
    State.TOTP_FAILED: {
        "g": Event.GENERATE,
        "p": Event.RESET_TPM,
        "i": Event.CONTINUE,
        "x": Event.RECOVERY,
    },
    # the HOTP outcomes: invalid code g/i/x, slot not programmed g/x, error r/i
    State.HOTP_FAILED: {
        "r": Event.RETRY,
        "g": Event.GENERATE,
        "i": Event.CONTINUE,
        "x": Event.RECOVERY,
    },
    # "Boot Hash Mismatch"
    State.BOOT_REFUSED: {"i": Event.INVESTIGATE, "u": Event.UPDATE_CHECKSUMS, "m": Event.MENU},
}

RECOVERY = Choice(RECOVERY_KEY, "Exit to the recovery shell", Event.RECOVERY)
POWER_OFF = Choice("p", "Power off", Event.POWER_OFF)
REBOOT = Choice("R", "Reboot", Event.REBOOT)
RESET_TPM = Choice("T", "Reset the TPM", Event.RESET_TPM)
OEM_RESET = Choice("F", "OEM factory reset / re-ownership", Event.OEM_RESET)
UNSAFE_BOOT = Choice(
    UNSAFE_KEY, "Boot anyway, unverified (unsafe: secrets stay locked)", Event.UNSAFE
)
DETAILS = Choice(DETAILS_KEY, "Details (the technical lines, for a bug report)", "details")


def back(label: str = "Back", event: str = Event.BACK) -> Choice:
    """The Back line of a menu; its event must be the menu's back_event."""
    return Choice(BACK, f"<-- {label}", event)
