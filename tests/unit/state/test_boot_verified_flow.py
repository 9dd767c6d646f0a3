"""Booting through the state machine with a fake platform and a scripted user:
the default boot, the refusal and its ways forward (re-sign, unsafe boot),
the OS menu and saving a default, restricted boot."""

from __future__ import annotations

from runtime.state.machine import State
from runtime.state.platform import BootCheck, DefaultFacts, OptionsFacts, SignFacts, StartFacts
from runtime.state.view import Menu, Tone
from tests.fakes_platform import DEBIAN, GOOD_CHECK, FakePlatform, refused_check, run_machine
from tests.fakes_ui import power_off

MAIN = "boot menu"
REFUSED = "Boot refused"
NOT_STARTED = "The boot did not start"


run = run_machine


def test_a_verified_default_boots_and_a_failed_kexec_is_explained() -> None:
    platform = FakePlatform(checks=[GOOD_CHECK], boot_results=["Loading the kernel failed"])
    final, ui = run(
        platform, [("choose", MAIN, "d"), ("choose", NOT_STARTED, "b"), *power_off(MAIN)]
    )
    assert final is State.POWER_OFF
    assert platform.calls[-4:] == [
        "verify_boot",
        "saved_default",
        "disk_unlock",
        "boot Debian unsafe=False",
    ]
    refusal = ui.shown[ui.titles().index(NOT_STARTED)]
    assert "Debian did not start: Loading the kernel failed" in refusal.text


def test_changed_files_refuse_the_boot_and_offer_to_sign_again() -> None:
    changed = refused_check("files modified: 1 changed since the owner signed: vmlinuz-6.1")
    platform = FakePlatform(checks=[changed])
    final, ui = run(
        platform,
        [
            ("choose", MAIN, "d"),
            ("choose", REFUSED, "u"),
            ("choose", "Update checksums and sign /boot", "y"),
            ("ask", "Sign /boot", "123456"),
            ("show", "/boot signed", None),
            *power_off(MAIN),
        ],
    )
    assert final is State.POWER_OFF
    refusal = ui.shown[ui.titles().index("Boot refused: /boot is not what you signed")]
    assert refusal.tone is Tone.ERROR and "vmlinuz-6.1" in refusal.text
    assert "boot" not in " ".join(c for c in platform.calls if c.startswith("boot "))
    assert "sign_boot default=None" in platform.calls
    assert platform.sign_secrets == [b"123456"]
    update = ui.shown[ui.titles().index("Update checksums and sign /boot")]
    assert "vmlinuz-6.1" in update.text
    assert "Rollback counter: 8." in ui.texts()[ui.titles().index("/boot signed")]


def test_a_stranger_signature_is_not_offered_a_resign() -> None:
    stranger = refused_check(
        "signed by a key that is not the owner's: key X",
        problems=frozenset({"signed by a key that is not the owner's"}),
    )
    _, ui = run(FakePlatform(checks=[stranger]), [("choose", MAIN, "d"), *power_off(REFUSED)])
    menu = ui.shown[ui.titles().index("Boot refused: /boot is signed by another key")].description
    assert isinstance(menu, Menu)
    assert "update-checksums" not in [c.event for c in menu.choices]
    assert "unsafe" in [c.event for c in menu.choices]


def test_unsafe_boot_after_a_refusal_says_what_it_costs() -> None:
    platform = FakePlatform(checks=[refused_check("files added: 1")])
    final, ui = run(
        platform,
        [
            ("choose", MAIN, "d"),
            ("choose", REFUSED, "f"),
            ("choose", "Boot without verifying /boot?", "y"),
            ("choose", "Unsafe boot: choose an entry", "2"),
            ("choose", REFUSED, "b"),
            *power_off(MAIN),
        ],
    )
    assert final is State.POWER_OFF
    assert "boot Rescue unsafe=True" in platform.calls
    warning = ui.shown[ui.titles().index("Boot without verifying /boot?")]
    assert warning.tone is Tone.ERROR and "PCR 4 is extended" in warning.text


def test_no_default_leads_to_the_os_menu_and_making_one_boots_it() -> None:
    platform = FakePlatform(checks=[GOOD_CHECK], default_facts=DefaultFacts(none_saved=True))
    final, _ = run(
        platform,
        [
            ("choose", MAIN, "d"),
            ("choose", "No default boot entry", "m"),
            ("choose", "OS boot menu", "1"),
            ("choose", "Boot Debian?", "d"),
            ("choose", "Make Debian the default?", "y"),
            ("ask", "Sign /boot", "pin"),
            ("show", "/boot signed", None),
            # the fake's machine has LUKS containers and no DUK yet: offered
            ("choose", "Set up a Disk Unlock Key?", "n"),
            # after saving, the default path runs: verify, saved default, boot
            ("choose", "No default boot entry", "b"),
            *power_off(MAIN),
        ],
    )
    assert final is State.POWER_OFF
    assert "sign_boot default=Debian" in platform.calls
    assert platform.calls.count("verify_boot") == 4  # the menu's check, then three


def test_os_menu_boots_a_chosen_entry() -> None:
    platform = FakePlatform(checks=[GOOD_CHECK])
    final, _ = run(
        platform,
        [
            ("choose", MAIN, "o"),
            ("choose", "Options", "o"),
            ("choose", "Boot options", "m"),
            ("choose", "OS boot menu", "2"),
            ("choose", "Boot Rescue?", "y"),
            ("choose", NOT_STARTED, "b"),
            *power_off(MAIN),
        ],
    )
    assert final is State.POWER_OFF
    assert "boot Rescue unsafe=False" in platform.calls


def test_a_changed_default_is_refused_with_its_reason() -> None:
    platform = FakePlatform(
        checks=[GOOD_CHECK],
        default_facts=DefaultFacts(
            problem="The boot entries changed: the saved default entry moved to position 2"
        ),
    )
    _, ui = run(platform, [("choose", MAIN, "d"), ("choose", NOT_STARTED, "b"), *power_off(MAIN)])
    assert "moved to position 2" in ui.texts()[ui.titles().index(NOT_STARTED)]
    assert not [c for c in platform.calls if c.startswith("boot ")]


def test_signing_failure_changes_nothing_and_says_why() -> None:
    platform = FakePlatform(
        checks=[GOOD_CHECK],
        sign_results=[SignFacts(problem="/boot was not signed: the PIN was refused 3 times")],
    )
    final, ui = run(
        platform,
        [
            ("choose", MAIN, "o"),
            ("choose", "Options", "u"),
            ("choose", "Update checksums and sign /boot", "y"),
            ("ask", "Sign /boot", "0000"),
            ("show", "/boot was not signed", None),
            ("choose", "Options", "b"),
            *power_off(MAIN),
        ],
    )
    assert final is State.POWER_OFF
    page = ui.shown[ui.titles().index("/boot was not signed")]
    assert page.tone is Tone.ERROR and "refused 3 times" in page.text


def test_restricted_boot_offers_no_unsafe_boot() -> None:
    platform = FakePlatform(
        start_facts=StartFacts("Test board", "Brand", restricted=True),
        checks=[refused_check("files modified: 1")],
    )
    _, ui = run(
        platform,
        [
            ("choose", MAIN, "d"),
            ("choose", REFUSED, "b"),
            ("choose", MAIN, "o"),
            ("choose", "Options", "o"),
            ("choose", "Boot options", "f"),
            ("show", "Unsafe boot disabled", None),
            *power_off(MAIN),
        ],
    )
    menu = ui.shown[ui.titles().index("Boot refused: /boot is not what you signed")].description
    assert isinstance(menu, Menu) and "unsafe" not in [c.event for c in menu.choices]


def test_no_entries_is_said_plainly() -> None:
    platform = FakePlatform(
        checks=[GOOD_CHECK], options_facts=OptionsFacts(problem="nothing on /boot")
    )
    final, ui = run(
        platform,
        [
            ("choose", MAIN, "o"),
            ("choose", "Options", "o"),
            ("choose", "Boot options", "m"),
            ("show", "OS boot menu", None),
            *power_off(MAIN),
        ],
    )
    assert final is State.POWER_OFF
    pages = [x for t, x in zip(ui.titles(), ui.texts(), strict=True) if t == "OS boot menu"]
    assert "nothing on /boot" in pages[-1]  # after the progress screen of the same title
    assert DEBIAN.number == 1 and BootCheck(True).ok


def test_an_interrupted_signing_is_reported_before_the_boot() -> None:
    settled = BootCheck(True, counter=9, settled="An interrupted signing of /boot was completed.")
    platform = FakePlatform(checks=[settled])
    _, ui = run(platform, [("choose", MAIN, "d"), ("choose", NOT_STARTED, "b"), *power_off(MAIN)])
    assert any("interrupted signing" in text for text in ui.texts())
