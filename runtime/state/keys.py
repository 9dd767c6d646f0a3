"""The key scheme every screen speaks: one way to go back, one letter for the
recovery shell, and a letter of its own for each action that cannot be undone.

Pure data. The steps build their choices from these constants, the UI
(runtime.ui.menu_view) gives Esc and BACK the same meaning, and
tests/unit/test_screen_inventory.py renders every screen and checks that the
scheme holds. runtime/ui/KEYS.md is the same table for people.
"""

from __future__ import annotations

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
RESERVED: dict[str, str] = {RECOVERY_KEY: "recovery", DETAILS_KEY: "details",
                            UNSAFE_KEY: "unsafe", **DESTRUCTIVE}

#: Letters for the entries of a list (the OS boot menu): never a reserved one,
#: so an entry is never taken for Back or a destructive action.
ENTRY_KEYS = "123456789" + "".join(
    c for c in "acdefghijklmnoqstvwyz" if c not in RESERVED and c != BACK)

RECOVERY = Choice(RECOVERY_KEY, "Exit to the recovery shell", "recovery")
POWER_OFF = Choice("p", "Power off", "power-off")
REBOOT = Choice("R", "Reboot", "reboot")
RESET_TPM = Choice("T", "Reset the TPM", "reset-tpm")
OEM_RESET = Choice("F", "OEM factory reset / re-ownership", "oem-reset")
UNSAFE_BOOT = Choice(UNSAFE_KEY, "Boot anyway, unverified (unsafe: secrets stay locked)",
                     "unsafe")
DETAILS = Choice(DETAILS_KEY, "Details (the technical lines, for a bug report)", "details")


def back(label: str = "Back", event: str = "back") -> Choice:
    """The Back line of a menu; its event must be the menu's back_event."""
    return Choice(BACK, f"<-- {label}", event)
