"""The TPM's dictionary-attack lockout, as the user meets it (issue 27, finding 4):
where a lockout stops something, clearing it with the lockout passphrase is
offered first, before any reset; the passphrase is asked with the secret
prompt and wiped; a wrong one is said plainly, with how long the TPM then
refuses the next."""

from __future__ import annotations

from runtime.state.machine import State
from runtime.state.platform import (
    ClearLockoutFacts,
    HotpCheck,
    HotpFacts,
    LockoutFacts,
    LockoutOutcome,
    StartFacts,
    TotpFailure,
)
from runtime.state.view import Menu, Prompt, Tone
from tests.fakes_platform import GOOD_TOTP, FakePlatform, failed_totp, run_machine
from tests.fakes_ui import ScriptedUi, power_off

MAIN = "boot menu"
LOCKED_TOTP = "TPM is locked out, no TOTP code"
LOCKED = LockoutFacts(
    locked_out=True, failures=10, max_tries=10, recovery_seconds=3600, lockout_recovery_seconds=0
)
TPM_ERROR = failed_totp(
    TotpFailure.TPM_ERROR, "TOTP secret not unsealed. The TPM is refusing passphrases for now."
)


def _screen(ui: ScriptedUi, title: str, nth: int = 0):  # type: ignore[no-untyped-def]
    return [s for s in ui.shown if title in s.title][nth]


def test_a_lockout_offers_clearing_first_and_the_totp_then_unseals() -> None:
    platform = FakePlatform(totp_results=[TPM_ERROR, GOOD_TOTP], lockout=LOCKED)
    final, ui = run_machine(
        platform,
        [
            ("choose", LOCKED_TOTP, "l"),
            ("ask", "TPM lockout passphrase", b"owner passphrase"),
            ("show", "The TPM lockout is cleared", None),
            *power_off(MAIN),
        ],
    )
    assert final is State.POWER_OFF
    menu = _screen(ui, LOCKED_TOTP).description
    assert isinstance(menu, Menu) and menu.tone is Tone.ERROR
    keys = [c.key for c in menu.choices]
    # a normal choice, first, and before the reset that would destroy the secrets
    assert keys[0] == "l" and keys.index("l") < keys.index("p")  # Heads' Reset the TPM
    assert menu.choices[0].label == "Clear the lockout with the lockout passphrase"
    text = _screen(ui, LOCKED_TOTP).text
    assert "10 wrong passphrases" in text and "every hour" in text
    assert "operating system" in text  # a lockout is no sign of a changed firmware
    prompt = _screen(ui, "TPM lockout passphrase").description
    assert isinstance(prompt, Prompt)
    assert prompt.secret and prompt.max_bytes == 32 and not prompt.confirm
    assert "until the machine restarts" in _screen(ui, "TPM lockout passphrase").text
    assert platform.passphrases == [b"owner passphrase"]
    assert all(b == 0 for b in platform.lockout_buffers[0])  # wiped after use
    # unsealed again after the clear: the main menu has the code
    assert "unseal_totp" in platform.calls[platform.calls.index("clear_lockout") :]
    assert "123456" in _screen(ui, MAIN).text
    assert _screen(ui, "The TPM lockout is cleared").tone is Tone.GOOD


def test_a_wrong_lockout_passphrase_is_said_plainly_with_the_wait() -> None:
    platform = FakePlatform(
        totp_results=[TPM_ERROR],
        lockout=LOCKED,
        clear_results=[ClearLockoutFacts(LockoutOutcome.WRONG_PASSPHRASE)],
    )
    final, ui = run_machine(
        platform,
        [
            ("choose", LOCKED_TOTP, "l"),
            ("ask", "TPM lockout passphrase", b"a typo"),
            ("show", "The TPM lockout was not cleared", None),
            ("choose", LOCKED_TOTP, "i"),  # back on the lockout screen, nothing changed
            *power_off(MAIN),
        ],
    )
    assert final is State.POWER_OFF
    page = _screen(ui, "was not cleared")
    assert page.tone is Tone.ERROR
    assert "refused the lockout passphrase: it is wrong" in page.text
    assert "until the machine restarts" in page.text
    assert "nothing was changed" in page.text
    assert all(b == 0 for b in platform.lockout_buffers[0])
    assert platform.calls.count("unseal_totp") == 1  # not retried: still locked out


def test_the_wait_after_a_wrong_passphrase_is_the_tpms_own() -> None:
    lockout = LockoutFacts(
        locked_out=True, failures=3, recovery_seconds=600, lockout_recovery_seconds=86400
    )
    platform = FakePlatform(
        totp_results=[TPM_ERROR],
        lockout=lockout,
        clear_results=[
            ClearLockoutFacts(LockoutOutcome.WRONG_PASSPHRASE, lockout_recovery_seconds=86400)
        ],
    )
    _, ui = run_machine(
        platform,
        [
            ("choose", LOCKED_TOTP, "l"),
            ("ask", "TPM lockout passphrase", b"a typo"),
            ("show", "was not cleared", None),
            ("choose", LOCKED_TOTP, "i"),
            *power_off(MAIN),
        ],
    )
    assert "for 24 hours while the machine stays on" in _screen(ui, "lockout passphrase").text
    assert "for 24 hours while the machine stays on" in _screen(ui, "was not cleared").text
    assert "every 10 minutes" in _screen(ui, LOCKED_TOTP).text


def test_a_blocked_lockout_passphrase_says_an_earlier_one_was_wrong() -> None:
    platform = FakePlatform(
        totp_results=[TPM_ERROR],
        lockout=LOCKED,
        clear_results=[ClearLockoutFacts(LockoutOutcome.BLOCKED)],
    )
    _, ui = run_machine(
        platform,
        [
            ("choose", LOCKED_TOTP, "l"),
            ("ask", "TPM lockout passphrase", b"owner passphrase"),
            ("show", "was not cleared", None),
            ("choose", LOCKED_TOTP, "P"),  # p is Heads' Reset the TPM there
            ("choose", "Power off now?", "y"),
        ],
    )
    text = _screen(ui, "was not cleared").text
    assert "a wrong one was typed earlier" in text and "until the machine restarts" in text


def test_esc_at_the_passphrase_clears_nothing() -> None:
    platform = FakePlatform(totp_results=[TPM_ERROR], lockout=LOCKED)
    final, _ = run_machine(
        platform,
        [
            ("choose", LOCKED_TOTP, "l"),
            ("ask", "TPM lockout passphrase", None),
            ("choose", LOCKED_TOTP, "i"),
            *power_off(MAIN),
        ],
    )
    assert final is State.POWER_OFF
    assert "clear_lockout" not in platform.calls


def test_without_a_lockout_passphrase_nothing_is_asked() -> None:
    lockout = LockoutFacts(locked_out=True, failures=3, passphrase_set=False)
    platform = FakePlatform(totp_results=[TPM_ERROR, GOOD_TOTP], lockout=lockout)
    final, ui = run_machine(
        platform,
        [
            ("choose", LOCKED_TOTP, "l"),
            ("show", "The TPM lockout is cleared", None),
            *power_off(MAIN),
        ],
    )
    assert final is State.POWER_OFF
    assert "clear_lockout" in platform.calls and platform.passphrases == []
    assert not ui.titles("ask")


def test_a_tpm_error_without_a_lockout_keeps_the_usual_screen() -> None:
    platform = FakePlatform(totp_results=[TPM_ERROR])
    _, ui = run_machine(
        platform,
        [
            ("choose", "TOTP code cannot be shown", "i"),
            *power_off(MAIN),
        ],
    )
    menu = ui.shown[
        [s.title for s in ui.shown].index("ERROR: the TOTP code cannot be shown")
    ].description
    assert isinstance(menu, Menu) and "l" not in [c.key for c in menu.choices]


def test_other_totp_failures_do_not_ask_about_the_lockout() -> None:
    # a changed PCR is a changed PCR, lockout or not
    platform = FakePlatform(totp_results=[failed_totp(TotpFailure.PCRS_CHANGED)], lockout=LOCKED)
    _, ui = run_machine(
        platform,
        [
            ("choose", "TOTP code cannot be shown", "i"),
            *power_off(MAIN),
        ],
    )
    assert not any("locked out" in t for t in ui.titles())


def test_the_reset_stays_offered_on_the_lockout_screen_and_asks_first() -> None:
    platform = FakePlatform(totp_results=[TPM_ERROR], lockout=LOCKED)
    final, _ = run_machine(
        platform,
        [
            ("choose", LOCKED_TOTP, "p"),
            ("choose", "Reset the TPM?", "enter"),  # No is selected
            *power_off(MAIN),
        ],
    )
    assert final is State.POWER_OFF
    assert "reset_tpm" not in platform.calls


def test_a_lockout_behind_the_hotp_check_offers_clearing_then_checks_again() -> None:
    platform = FakePlatform(
        start_facts=StartFacts("Test board", "Brand", hotp_configured=True),
        hotp_results=[
            HotpFacts(HotpCheck.ERROR, "The HOTP counter cannot be read."),
            HotpFacts(HotpCheck.SUCCESS, "ok"),
        ],
        lockout=LOCKED,
    )
    final, ui = run_machine(
        platform,
        [
            ("choose", "TPM is locked out, HOTP not verified", "l"),
            ("ask", "TPM lockout passphrase", b"owner passphrase"),
            ("show", "The TPM lockout is cleared", None),
            *power_off(MAIN),
        ],
    )
    assert final is State.POWER_OFF
    assert platform.calls.count("verify_hotp") == 2
    menu = _screen(ui, "HOTP not verified").description
    assert isinstance(menu, Menu) and menu.choices[0].key == "l"


def test_the_tpm_options_clear_the_lockout_too() -> None:
    platform = FakePlatform(lockout=LockoutFacts(failures=4, max_tries=10))
    final, ui = run_machine(
        platform,
        [
            ("choose", MAIN, "o"),
            ("choose", "Options", "t"),
            ("choose", "TPM/TOTP/HOTP options", "l"),
            ("ask", "TPM lockout passphrase", b"owner passphrase"),
            ("show", "The TPM lockout is cleared", None),
            ("choose", "TPM/TOTP/HOTP options", "esc"),
            ("choose", "Options", "esc"),
            *power_off(MAIN),
        ],
    )
    assert final is State.POWER_OFF
    assert platform.calls.count("clear_lockout") == 1
    menu = _screen(ui, "TPM/TOTP/HOTP options").description
    assert isinstance(menu, Menu)
    keys = [c.key for c in menu.choices]
    assert keys.index("l") < keys.index("T")


def test_nothing_to_clear_asks_for_nothing() -> None:
    platform = FakePlatform()
    _, ui = run_machine(
        platform,
        [
            ("choose", MAIN, "o"),
            ("choose", "Options", "t"),
            ("choose", "TPM/TOTP/HOTP options", "l"),
            ("show", "The TPM is not locked out", None),
            ("choose", "TPM/TOTP/HOTP options", "b"),
            ("choose", "Options", "b"),
            *power_off(MAIN),
        ],
    )
    assert "clear_lockout" not in platform.calls
    assert not ui.titles("ask")
