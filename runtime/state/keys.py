"""The key scheme every screen speaks: one way to go back, one letter for the
recovery shell, and a letter of its own for each action that cannot be undone;
on the failure screens Heads has too, Heads' letters (HEADS_KEYS) come first.

Pure data. The steps build their choices from these constants, the UI
(runtime.ui.menu_view) gives Esc and BACK the same meaning, and
tests/unit/test_screen_inventory.py renders every screen and checks that the
scheme holds. runtime/ui/KEYS.md is the same table for people.
"""

from __future__ import annotations

from collections.abc import Mapping

from runtime.state.machine import State
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
    "p": "power-off",
    "R": "reboot",
    "T": "reset-tpm",
    "F": "oem-reset",
    "u": "update-checksums",  # signs what /boot holds now
}
#: Booting without verifying /boot: one letter wherever it is offered (it asks
#: first, with No selected).
UNSAFE_KEY = "f"
#: Every reserved letter and the one event it may name. BACK names whatever
#: the screen's back event is; checked separately.
RESERVED: dict[str, str] = {
    RECOVERY_KEY: "recovery",
    DETAILS_KEY: "details",
    UNSAFE_KEY: "unsafe",
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
    State.NO_BOOT: {"u": "usb", "b": "boot-options", "m": "continue", "x": "recovery"},
    State.TPM_INCONSISTENT: {"i": "report", "o": "oem-reset", "t": "reset-tpm", "m": "continue"},
    State.KEYRING_EMPTY: {"g": "add-key", "F": "oem-reset", "i": "continue", "x": "recovery"},
    State.TOTP_FAILED: {"g": "generate", "p": "reset-tpm", "i": "continue", "x": "recovery"},
    # the HOTP outcomes: invalid code g/i/x, slot not programmed g/x, error r/i
    State.HOTP_FAILED: {"r": "retry", "g": "generate", "i": "continue", "x": "recovery"},
    # "Boot Hash Mismatch"
    State.BOOT_REFUSED: {"i": "investigate", "u": "update-checksums", "m": "menu"},
}

RECOVERY = Choice(RECOVERY_KEY, "Exit to the recovery shell", "recovery")
POWER_OFF = Choice("p", "Power off", "power-off")
REBOOT = Choice("R", "Reboot", "reboot")
RESET_TPM = Choice("T", "Reset the TPM", "reset-tpm")
OEM_RESET = Choice("F", "OEM factory reset / re-ownership", "oem-reset")
UNSAFE_BOOT = Choice(UNSAFE_KEY, "Boot anyway, unverified (unsafe: secrets stay locked)", "unsafe")
DETAILS = Choice(DETAILS_KEY, "Details (the technical lines, for a bug report)", "details")


def back(label: str = "Back", event: str = "back") -> Choice:
    """The Back line of a menu; its event must be the menu's back_event."""
    return Choice(BACK, f"<-- {label}", event)
