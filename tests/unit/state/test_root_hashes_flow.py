"""Root file system hashing in the menus (CONFIG_ROOT_*): the list is made,
then signed with /boot after the usual review; checked on request, and with
CONFIG_ROOT_CHECK_AT_BOOT before the first menu and before any automatic
boot, which a changed root file system stops."""

from __future__ import annotations

from runtime.state.machine import State
from runtime.state.platform import HotpCheck, HotpFacts, RootFacts, StartFacts
from runtime.state.view import Tone
from tests.fakes_platform import GOOD_CHECK, FakePlatform, run_machine
from tests.fakes_ui import power_off

MAIN = "boot menu"
CHANGED = RootFacts(checked=40, changed=("usr/bin/ls",), added=("usr/bin/evil\x1b[2J",))


def started(**fields: object) -> StartFacts:
    return StartFacts("Test board", "Brand", root_hashing=True, **fields)  # type: ignore[arg-type]


def test_without_a_root_device_the_options_do_not_offer_it() -> None:
    platform = FakePlatform(checks=[GOOD_CHECK])
    _, ui = run_machine(
        platform, [("choose", MAIN, "o"), ("choose", "Options", "b"), *power_off(MAIN)]
    )
    assert "Root file system hashes" not in ui.texts()[ui.titles().index("Options")]


def test_create_makes_the_list_and_signs_it_after_the_review() -> None:
    platform = FakePlatform(checks=[GOOD_CHECK], start_facts=started())
    final, ui = run_machine(
        platform,
        [
            ("choose", MAIN, "o"),
            ("choose", "Options", "a"),
            ("choose", "Root file system hashes", "c"),
            ("choose", "Update checksums and sign /boot", "y"),
            ("ask", "Sign /boot", b"123456"),
            ("show", "/boot signed", None),
            ("choose", "Root file system hashes", "b"),
            ("choose", "Options", "b"),
            *power_off(MAIN),
        ],
    )
    assert final is State.POWER_OFF
    review = ui.texts()[ui.titles().index("Update checksums and sign /boot")]
    assert "A new root hash list of 3 files" in review
    assert "create_root_hashes" in platform.calls
    assert "sign_boot default=None root_list" in platform.calls


def test_a_list_that_cannot_be_made_signs_nothing() -> None:
    platform = FakePlatform(
        checks=[GOOD_CHECK],
        start_facts=started(),
        root_create_results=[RootFacts(problem="/dev/vda2 is encrypted.")],
    )
    run_machine(
        platform,
        [
            ("choose", MAIN, "o"),
            ("choose", "Options", "a"),
            ("choose", "Root file system hashes", "c"),
            ("show", "The list was not made", None),
            ("choose", "Root file system hashes", "b"),
            ("choose", "Options", "b"),
            *power_off(MAIN),
        ],
    )
    assert not any(c.startswith("sign_boot") for c in platform.calls)


def test_verify_names_what_changed_in_printable_words() -> None:
    platform = FakePlatform(
        checks=[GOOD_CHECK], start_facts=started(), root_check_results=[CHANGED]
    )
    _, ui = run_machine(
        platform,
        [
            ("choose", MAIN, "o"),
            ("choose", "Options", "a"),
            ("choose", "Root file system hashes", "v"),
            ("show", "WARNING: the root file system changed", None),
            ("choose", "Root file system hashes", "b"),
            ("choose", "Options", "b"),
            *power_off(MAIN),
        ],
    )
    page = ui.shown[ui.titles().index("WARNING: the root file system changed")]
    assert page.tone is Tone.ERROR
    assert "usr/bin/ls" in page.text and "\x1b" not in page.text and "\\x1b" in page.text
    menu = ui.texts()[[i for i, t in enumerate(ui.titles()) if MAIN in t][-1]]
    assert "Root file system: CHANGED (2 files differ" in menu


def test_at_boot_a_changed_root_is_shown_and_stops_the_automatic_boot() -> None:
    platform = FakePlatform(
        checks=[GOOD_CHECK],
        root_check_results=[CHANGED],
        hotp_results=[HotpFacts(HotpCheck.SUCCESS, "ok")],
        start_facts=started(root_check_at_boot=True, auto_boot_timeout=5, hotp_configured=True),
    )
    final, ui = run_machine(
        platform,
        [
            ("show", "WARNING: the root file system changed", None),
            *power_off(MAIN),
        ],
    )
    assert final is State.POWER_OFF
    assert "Automatic boot" not in ui.titles()
    assert platform.calls.count("check_root_hashes") == 1  # once per power-on


def test_at_boot_a_matching_root_lets_the_countdown_run() -> None:
    platform = FakePlatform(
        checks=[GOOD_CHECK],
        hotp_results=[HotpFacts(HotpCheck.SUCCESS, "ok")],
        start_facts=started(root_check_at_boot=True, auto_boot_timeout=5, hotp_configured=True),
    )
    _, ui = run_machine(
        platform,
        [
            ("choose", "Automatic boot", "b"),
            *power_off(MAIN),
        ],
    )
    assert "check_root_hashes" in platform.calls
    assert "WARNING: the root file system changed" not in ui.titles()


def test_an_unverified_boot_is_not_used_for_the_root_check() -> None:
    platform = FakePlatform(checks=None, start_facts=started(root_check_at_boot=True))
    run_machine(platform, [*power_off(MAIN)])
    assert "check_root_hashes" not in platform.calls


def test_a_changed_root_is_the_verdict_not_a_green_verified() -> None:
    from runtime.state.verdict import BootState, Evidence, Secret, Token, verdict

    found = verdict(
        Evidence(
            tpm=True,
            measurements_match=True,
            recovery_opened=False,
            secret=Secret.SHOWN,
            token=Token.SUCCESS,
            boot=BootState.VERIFIED,
            root_changed=True,
        )
    )
    assert found.word == "ROOT CHANGED" and found.tone is Tone.WARNING
    assert not found.unattended
    assert "the root file system changed" in found.reasons
