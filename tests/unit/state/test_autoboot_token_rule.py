"""The automatic boot follows the HOTP check's Success (issue 15, item 1): a
TOTP code nobody compared proves nothing to a machine that boots by itself,
so without a token the countdown runs only where the owner chose so
(CONFIG_AUTO_BOOT_TOTP_ONLY), and the screens say which way it is."""

from __future__ import annotations

import pytest

from runtime.config.settings import SCHEMA, Settings
from runtime.state.machine import State
from runtime.state.platform import HotpCheck, HotpFacts, StartFacts
from runtime.state.session import ROLLBACK_OFF_WARNING, TOTP_ONLY_WARNING
from runtime.state.view import Menu, Tone
from tests.fakes_platform import GOOD_CHECK, FakePlatform, run_machine
from tests.fakes_ui import ScriptedUi, power_off

MAIN = "boot menu"
COUNTDOWN = "Automatic boot"


def started(**fields: object) -> StartFacts:
    return StartFacts("Test board", "Brand", auto_boot_timeout=5, **fields)  # type: ignore[arg-type]


def main_menu(ui: ScriptedUi) -> Menu:
    menus = [s.description for s in ui.shown if s.title.endswith(MAIN)]
    assert menus and isinstance(menus[-1], Menu)
    return menus[-1]


def booted(platform: FakePlatform) -> list[str]:
    return [c for c in platform.calls if c.startswith("boot ")]


def test_totp_alone_does_not_count_down_and_the_menu_says_why() -> None:
    platform = FakePlatform(start_facts=started(), checks=[GOOD_CHECK])
    final, ui = run_machine(platform, [*power_off(MAIN)])
    assert final is State.POWER_OFF
    assert COUNTDOWN not in ui.titles("choose") and not booted(platform)
    assert "verify_hotp" not in platform.calls
    menu = main_menu(ui)
    # the integrity verdict is unchanged: only the unattended boot waits for a token
    assert menu.tone is Tone.GOOD and menu.body[0].startswith("VERIFIED")
    why = [line for line in menu.body if line.startswith("No automatic boot")]
    assert len(why) == 1 and "no HOTP token" in why[0]
    assert "CONFIG_AUTO_BOOT_TOTP_ONLY" in why[0]
    assert TOTP_ONLY_WARNING not in menu.body


def test_totp_only_setting_counts_down_with_a_warning_on_both_screens() -> None:
    platform = FakePlatform(
        start_facts=started(auto_boot_totp_only=True), checks=[GOOD_CHECK], boot_results=[None]
    )
    final, ui = run_machine(platform, [("choose", COUNTDOWN, "timeout")])
    assert final is State.HANDOVER
    assert booted(platform) == ["boot Debian unsafe=False"]
    countdown = ui.shown[ui.titles().index(COUNTDOWN)].description
    assert isinstance(countdown, Menu) and countdown.timeout == 5
    assert countdown.body[0].startswith("VERIFIED")
    assert TOTP_ONLY_WARNING in countdown.body


def test_totp_only_warning_stays_on_the_main_menu_after_a_key() -> None:
    platform = FakePlatform(start_facts=started(auto_boot_totp_only=True), checks=[GOOD_CHECK])
    final, ui = run_machine(platform, [("choose", COUNTDOWN, "esc"), *power_off(MAIN)])
    assert final is State.POWER_OFF and not booted(platform)
    menu = main_menu(ui)
    assert TOTP_ONLY_WARNING in menu.body
    assert not any(line.startswith("No automatic boot") for line in menu.body)


def test_hotp_success_counts_down_without_warnings() -> None:
    platform = FakePlatform(
        start_facts=started(hotp_configured=True), checks=[GOOD_CHECK], boot_results=[None]
    )
    final, ui = run_machine(platform, [("choose", COUNTDOWN, "timeout")])
    assert final is State.HANDOVER and booted(platform) == ["boot Debian unsafe=False"]
    countdown = ui.shown[ui.titles().index(COUNTDOWN)]
    assert any("HOTP: Success" in line for line in countdown.live)
    assert TOTP_ONLY_WARNING not in countdown.description.body  # type: ignore[union-attr]


@pytest.mark.parametrize("totp_only", [False, True])
@pytest.mark.parametrize(
    ("outcome", "screen", "status"),
    [
        (HotpCheck.INVALID, "HOTP code invalid", "Invalid code"),
        (HotpCheck.ABSENT, "HOTP not verified", "No token"),
    ],
)
def test_hotp_failure_never_counts_down(
    outcome: HotpCheck, screen: str, status: str, totp_only: bool
) -> None:
    """Not even with CONFIG_AUTO_BOOT_TOTP_ONLY: it is for machines without a
    token, and a configured token that did not agree is no TOTP-only boot."""
    platform = FakePlatform(
        start_facts=started(hotp_configured=True, auto_boot_totp_only=totp_only),
        hotp_results=[HotpFacts(outcome, "the token said no")],
        checks=[GOOD_CHECK],
    )
    final, ui = run_machine(platform, [("choose", screen, "i"), *power_off(MAIN)])
    assert final is State.POWER_OFF
    assert COUNTDOWN not in ui.titles("choose") and not booted(platform)
    menu = main_menu(ui)
    assert f"No automatic boot: the HOTP check did not succeed ({status})." in menu.body
    assert TOTP_ONLY_WARNING not in menu.body


def test_no_countdown_configured_no_line() -> None:
    platform = FakePlatform(start_facts=StartFacts("Test board", "Brand"), checks=[GOOD_CHECK])
    _, ui = run_machine(platform, [*power_off(MAIN)])
    assert not any("automatic boot" in line.lower() for line in main_menu(ui).body)
    assert ROLLBACK_OFF_WARNING not in main_menu(ui).body


def test_the_setting_is_the_runtimes_own_and_off_by_default() -> None:
    setting = SCHEMA["CONFIG_AUTO_BOOT_TOTP_ONLY"]
    assert setting.default == "n" and "TOTP" in setting.meaning
    assert Settings().auto_boot_totp_only is False
    assert Settings({"CONFIG_AUTO_BOOT_TOTP_ONLY": "y"}).auto_boot_totp_only is True
