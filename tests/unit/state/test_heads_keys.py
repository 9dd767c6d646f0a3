"""Heads parity on the failure screens: where Heads' gui-init offers a choice
under a letter, the runtime's screen offers the same choice under the same
letter (runtime.state.keys.HEADS_KEYS), and the letter leads where Heads'
choice does. The runtime's own extra choices there keep other letters."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import pytest

from runtime.state import driver
from runtime.state.keys import HEADS_KEYS
from runtime.state.machine import State
from runtime.state.platform import BootFacts, HotpCheck, HotpFacts, KeyringFacts, StartFacts
from runtime.state.steps import Context
from runtime.state.view import Choice, Menu, Page, Progress, Prompt
from tests.fakes_platform import FakePlatform, failed_totp, refused_check, run_machine
from tests.fakes_ui import power_off

MAIN = "boot menu"
RECOVERY = "Open the recovery shell?"


Machine = Callable[[], FakePlatform]


def _hotp(outcome: HotpCheck) -> Machine:
    return lambda: FakePlatform(
        start_facts=StartFacts("Test board", "Brand", hotp_configured=True),
        hotp_results=[HotpFacts(outcome, "the token said so")],
    )


def _no_boot() -> FakePlatform:
    return FakePlatform(boot_facts=[BootFacts(problem="No disk was found.")])


def _inconsistent() -> FakePlatform:
    return FakePlatform(preflight=["The rollback counter is missing."])


def _no_key() -> FakePlatform:
    return FakePlatform(keyring_facts=KeyringFacts(problem="No key."))


def _no_totp() -> FakePlatform:
    return FakePlatform(totp_results=[failed_totp()])


def _changed() -> FakePlatform:
    return FakePlatform(checks=[refused_check("grub.cfg changed")])


#: (the machine, the keys that reach the screen, its title, Heads' letter,
#: the title of the screen the letter leads to); Heads' menus are in
#: gui-init.sh (no /boot, the TPM state, the keyring, TOTP, HOTP) and
#: gui_functions.sh (the hash mismatch)
CASES: list[tuple[Machine, tuple[tuple[str, str], ...], str, str, str]] = [
    # "ERROR: No /boot Partition Found": u/b/m/x
    (_no_boot, (), "no /boot partition", "u", "USB boot"),
    (_no_boot, (), "no /boot partition", "b", "Boot options"),
    (_no_boot, (), "no /boot partition", "m", MAIN),
    (_no_boot, (), "no /boot partition", "x", RECOVERY),
    # "ERROR: TPM State Inconsistent": i/o/t/m
    (_inconsistent, (), "TPM state inconsistent", "i", "Integrity report"),
    (_inconsistent, (), "TPM state inconsistent", "o", "OEM factory reset"),
    (_inconsistent, (), "TPM state inconsistent", "t", "Reset the TPM?"),
    (_inconsistent, (), "TPM state inconsistent", "m", MAIN),
    # "ERROR: GPG keyring empty!": g/F/i/x
    (_no_key, (), "no owner key", "g", "Add a key to the firmware"),
    (_no_key, (), "no owner key", "F", "OEM factory reset"),
    (_no_key, (), "no owner key", "i", MAIN),
    (_no_key, (), "no owner key", "x", RECOVERY),
    # "ERROR: TOTP Generation Failed!": g/p/i/x
    (_no_totp, (), "TOTP code cannot be shown", "g", "Seal a new TOTP/HOTP secret?"),
    (_no_totp, (), "TOTP code cannot be shown", "p", "Reset the TPM?"),
    (_no_totp, (), "TOTP code cannot be shown", "i", MAIN),
    (_no_totp, (), "TOTP code cannot be shown", "x", RECOVERY),
    # HOTP "Invalid code": g/i/x
    (_hotp(HotpCheck.INVALID), (), "HOTP code invalid", "g", "Seal a new TOTP/HOTP secret?"),
    (_hotp(HotpCheck.INVALID), (), "HOTP code invalid", "i", MAIN),
    (_hotp(HotpCheck.INVALID), (), "HOTP code invalid", "x", RECOVERY),
    # "HOTP Not Configured": g/x
    (
        _hotp(HotpCheck.NOT_PROGRAMMED),
        (),
        "HOTP not verified",
        "g",
        "Seal a new TOTP/HOTP secret?",
    ),
    (_hotp(HotpCheck.NOT_PROGRAMMED), (), "HOTP not verified", "x", RECOVERY),
    # "HOTP Verification Failed" (an error, no token): r/i
    (_hotp(HotpCheck.ERROR), (), "HOTP not verified", "r", "HOTP not verified"),
    (_hotp(HotpCheck.ERROR), (), "HOTP not verified", "i", MAIN),
    (_hotp(HotpCheck.ABSENT), (), "HOTP not verified", "r", "HOTP not verified"),
    (_hotp(HotpCheck.ABSENT), (), "HOTP not verified", "i", MAIN),
    # "ERROR: Boot Hash Mismatch": i/u/m
    (_changed, ((MAIN, "d"),), "not what you signed", "i", "Integrity report"),
    (_changed, ((MAIN, "d"),), "not what you signed", "u", "Update checksums and sign /boot"),
    (_changed, ((MAIN, "d"),), "not what you signed", "m", MAIN),
]


class _Stop(Exception):
    """The screen after the letter was reached."""


class _Probe:
    """Answers ``path`` (title part, key), presses ``key`` on the screen
    titled ``title``, and keeps the next screen the machine shows."""

    unicode = True

    def __init__(self, path: tuple[tuple[str, str], ...], title: str, key: str) -> None:
        self._path = list(path)
        self._title, self._key = title, key
        self.state = State.EARLY_INIT
        self.pressed: tuple[State, Choice] | None = None
        self.following: Menu | Page | Prompt | None = None

    def entered(self, state: State) -> None:
        self.state = state

    def _next(self, screen: Menu | Page | Prompt) -> None:
        if self.pressed is not None:
            self.following = screen
            raise _Stop
        assert isinstance(screen, Menu), f"unexpected {screen.title!r}"

    def choose(self, menu: Menu) -> str:
        self._next(menu)
        if self._path:
            title, key = self._path.pop(0)
            assert title in menu.title, (title, menu.title)
            return next(c.event for c in menu.choices if c.key == key)
        assert self._title in menu.title, (self._title, menu.title)
        choice = next((c for c in menu.choices if c.key == self._key), None)
        assert choice is not None, f"{menu.title!r} offers no {self._key!r}: {menu.choices}"
        self.pressed = (self.state, choice)
        return choice.event

    def ask(self, prompt: Prompt) -> str | bytearray | None:
        self._next(prompt)
        return None

    def show(self, page: Page) -> None:
        self._next(page)

    def progress(self, progress: Progress) -> None:
        pass


@pytest.mark.parametrize(
    ("platform", "path", "title", "key", "leads_to"), CASES, ids=[f"{c[2]}-{c[3]}" for c in CASES]
)
def test_heads_letter_leads_to_heads_choice(
    platform: Machine, path: tuple[tuple[str, str], ...], title: str, key: str, leads_to: str
) -> None:
    ui = _Probe(path, title, key)
    with contextlib.suppress(_Stop):
        driver.run(Context(ui, platform()), on_state=ui.entered)
    assert ui.pressed is not None
    state, choice = ui.pressed
    assert choice.event == HEADS_KEYS[state][key], (state, choice)
    assert ui.following is not None and leads_to in ui.following.title, ui.following


def test_every_heads_letter_has_a_case() -> None:
    screens = {
        "no /boot partition": State.NO_BOOT,
        "TPM state inconsistent": State.TPM_INCONSISTENT,
        "no owner key": State.KEYRING_EMPTY,
        "TOTP code cannot be shown": State.TOTP_FAILED,
        "HOTP code invalid": State.HOTP_FAILED,
        "HOTP not verified": State.HOTP_FAILED,
        "not what you signed": State.BOOT_REFUSED,
    }
    covered = {(screens[title], key) for _, _, title, key, _ in CASES}
    assert covered == {(state, key) for state, letters in HEADS_KEYS.items() for key in letters}


def test_usb_boot_on_no_boot_is_the_main_menus_and_comes_back() -> None:
    platform = FakePlatform(boot_facts=[BootFacts(problem="No disk was found.")])
    final, ui = run_machine(
        platform,
        [
            ("choose", "no /boot partition", "u"),
            ("show", "USB boot", None),
            ("choose", "no /boot partition", "m"),
            ("choose", MAIN, "o"),
            ("choose", "Options", "o"),
            ("choose", "Boot options", "e"),
            ("show", "USB boot", None),
            ("choose", "Boot options", "esc"),
            ("choose", "Options", "esc"),
            *power_off(MAIN),
        ],
    )
    assert final is State.POWER_OFF
    pages = [s.description for s in ui.shown if s.title == "USB boot"]
    assert len(pages) == 2 and pages[0] == pages[1]
    assert platform.calls.count("find_boot") == 1  # nothing probed again


def test_b_on_no_boot_is_heads_choice_not_back() -> None:
    platform = FakePlatform(boot_facts=[BootFacts(problem="No disk was found.")])
    final, ui = run_machine(
        platform,
        [
            ("choose", "no /boot partition", "b"),
            ("choose", "Boot options", "esc"),
            ("choose", "Options", "esc"),
            *power_off(MAIN),
        ],
    )
    assert final is State.POWER_OFF
    screen = ui.shown[[s.title for s in ui.shown].index("ERROR: no /boot partition found")]
    assert isinstance(screen.description, Menu) and screen.description.back_event is None


@pytest.mark.parametrize("key", ["m", "b", "esc"])
def test_a_refused_boot_returns_to_the_menu_by_heads_letter_and_still_by_back(key: str) -> None:
    platform = FakePlatform(checks=[refused_check("grub.cfg changed")])
    final, _ = run_machine(
        platform, [("choose", MAIN, "d"), ("choose", "not what you signed", key), *power_off(MAIN)]
    )
    assert final is State.POWER_OFF
