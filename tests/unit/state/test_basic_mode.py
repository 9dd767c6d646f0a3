"""Basic mode (CONFIG_BASIC): no attestation and no check of /boot, by the
owner's choice. The start goes straight to a main menu that says BASIC MODE,
nothing boots by itself, and every boot is unverified with PCR 4 extended
first (the platform's unsafe path)."""

from __future__ import annotations

from runtime.state.machine import State
from runtime.state.platform import StartFacts
from runtime.state.verdict import BootState, Evidence, Secret, Token, verdict
from runtime.state.view import Tone
from tests.fakes_platform import FakePlatform, run_machine
from tests.fakes_ui import power_off

MAIN = "boot menu"


def basic(**fields: object) -> StartFacts:
    return StartFacts("Test board", "Brand", basic=True, **fields)  # type: ignore[arg-type]


def test_the_start_checks_nothing_and_the_menu_says_basic_mode() -> None:
    platform = FakePlatform(start_facts=basic(auto_boot_timeout=5, hotp_configured=True))
    final, ui = run_machine(platform, [*power_off(MAIN)])
    assert final is State.POWER_OFF
    # no preflight, keyring, TOTP, HOTP or check of /boot
    assert platform.calls[:3] == ["start", "measure", "find_boot"]
    assert not {"rollback_preflight", "keyring", "unseal_totp", "verify_hotp", "verify_boot"} & set(
        platform.calls
    )
    menu = ui.shown[ui.titles().index(next(t for t in ui.titles() if MAIN in t))]
    assert menu.tone is Tone.WARNING
    assert "BASIC MODE" in menu.text and "CONFIG_BASIC" in menu.text
    assert "Automatic boot" not in ui.titles()
    assert "Refresh TOTP" not in menu.text and "Basic mode: not verified" in menu.text


def test_d_boots_the_chosen_entry_unverified_without_a_question() -> None:
    platform = FakePlatform(start_facts=basic(), boot_results=[None])
    final, ui = run_machine(
        platform,
        [
            ("choose", MAIN, "d"),
            ("choose", "Basic mode: choose an entry to boot", "1"),
        ],
    )
    assert final is State.HANDOVER
    assert platform.calls[-1] == "boot Debian unsafe=True"  # PCR 4 extended first
    assert "Boot without verifying /boot?" not in ui.titles()


def test_the_os_menu_in_basic_mode_is_the_same_unverified_list() -> None:
    platform = FakePlatform(start_facts=basic(), boot_results=[None])
    final, _ = run_machine(
        platform,
        [
            ("choose", MAIN, "o"),
            ("choose", "Options", "o"),
            ("choose", "Boot options", "m"),
            ("choose", "Basic mode: choose an entry to boot", "1"),
        ],
    )
    assert final is State.HANDOVER
    assert "verify_boot" not in platform.calls


def test_the_verdict_is_basic_mode_whatever_was_not_checked() -> None:
    for tpm in (True, False):
        found = verdict(
            Evidence(
                tpm=tpm,
                measurements_match=True,
                recovery_opened=False,
                secret=Secret.ERROR,
                token=Token.UNVERIFIED,
                boot=BootState.NOT_CHECKED,
                basic=True,
            )
        )
        assert found.word == "BASIC MODE" and found.tone is Tone.WARNING
        assert not found.unattended


def test_an_event_log_that_does_not_explain_the_pcrs_still_says_so() -> None:
    found = verdict(
        Evidence(
            tpm=True,
            measurements_match=False,
            recovery_opened=False,
            secret=Secret.ERROR,
            token=Token.UNVERIFIED,
            boot=BootState.NOT_CHECKED,
            basic=True,
        )
    )
    assert found.word == "TAMPERED?" and not found.unattended


def test_a_new_secret_or_the_clock_leads_back_without_attesting() -> None:
    platform = FakePlatform(start_facts=basic(), owned=True)
    final, _ = run_machine(
        platform,
        [
            ("choose", MAIN, "o"),
            ("choose", "Options", "h"),
            ("ask", "Change the system time", "2026-12-07 10:00"),
            *power_off(MAIN),
        ],
    )
    assert final is State.POWER_OFF
    assert not {"unseal_totp", "verify_hotp"} & set(platform.calls)
