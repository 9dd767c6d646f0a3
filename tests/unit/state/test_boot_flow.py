"""The boot state machine driven end to end with a fake platform and a
scripted user: every start step, every failure branch and its choices, the
gates (autoboot only after attestation, reseal only after the report,
recovery only after confirmation, never under restricted boot)."""

from __future__ import annotations

import time

import pytest

from runtime.state.machine import State
from runtime.state.platform import (
    BootCheck,
    BootFacts,
    EnrolFacts,
    HotpCheck,
    HotpFacts,
    KeyringFacts,
    MeasureFacts,
    ResetFacts,
    StartFacts,
    TotpFacts,
    TotpFailure,
)
from runtime.state.view import Menu, Tone
from tests.fakes_platform import (
    GOOD_CHECK,
    GOOD_TOTP,
    SECRET,
    FakePlatform,
    failed_totp,
    run_machine,
)
from tests.fakes_ui import ScriptedUi, Step, power_off, reboot

MAIN = "boot menu"


run = run_machine


def shown(ui: ScriptedUi, title: str):  # type: ignore[no-untyped-def]
    return ui.shown[ui.titles().index(title)]


def started(**fields: object) -> StartFacts:
    return StartFacts("Test board", "Brand", **fields)  # type: ignore[arg-type]


#: the countdown configured, and the token's Success that lets it run
AUTOBOOT = started(auto_boot_timeout=5, hotp_configured=True)


# -- steps many scripts share ----------------------------------------------------


def secret_shown_then_power_off() -> list[Step]:
    """The new secret's QR code and its text are left, then power off."""
    return [("show", "Scan this", None), ("show", "TOTP secret", None), *power_off(MAIN)]


def reset_with_own_passphrase(passphrase: bytes) -> list[Step]:
    """Yes to resetting the TPM, and one's own new owner passphrase typed."""
    return [
        ("choose", "Reset the TPM?", "y"),
        ("choose", "New TPM owner passphrase", "t"),  # type my own
        ("ask", "Your own TPM owner passphrase", passphrase),
    ]


def seal_with_token(failure: str, pin: bytes, owner_passphrase: bytes) -> list[Step]:
    """From the failure screen titled ``failure``: a new secret, sealed and
    programmed into the HOTP token with ``pin``."""
    return [
        ("choose", failure, "g"),
        ("choose", "Seal a new", "y"),
        ("ask", "HOTP token PIN", pin),
        ("ask", "TPM owner passphrase", owner_passphrase),
    ]


def test_the_normal_start_reaches_the_main_menu_verified() -> None:
    platform = FakePlatform(checks=[GOOD_CHECK])
    final, ui = run(platform, [*power_off(MAIN)])
    assert final is State.POWER_OFF
    # /boot is checked once before the first menu: the verdict speaks about it too
    assert platform.calls == [
        "start",
        "early_totp",
        "measure",
        "find_boot",
        "rollback_preflight",
        "keyring",
        "unseal_totp",
        "verify_boot",
    ]
    menu = ui.shown[-2]
    assert menu.title == "Test board | Brand boot menu"
    assert menu.tone is Tone.GOOD and "VERIFIED" in menu.text
    assert any("TOTP: 123456" in line and "HOTP: N/A" in line for line in menu.live)


def test_autoboot_counts_down_only_after_attestation_and_boots_the_default() -> None:
    platform = FakePlatform(start_facts=AUTOBOOT, checks=[GOOD_CHECK])
    final, ui = run(
        platform,
        [
            ("choose", "Automatic boot", "timeout"),
            ("choose", "The boot did not start", "m"),
            *power_off(MAIN),
        ],
    )
    assert final is State.POWER_OFF
    countdown = shown(ui, "Automatic boot").description
    assert isinstance(countdown, Menu) and countdown.timeout == 5
    assert "verify_boot" in platform.calls


def test_a_key_stops_the_autoboot_and_it_is_not_offered_again() -> None:
    platform = FakePlatform(start_facts=AUTOBOOT, checks=[GOOD_CHECK])
    final, _ = run(
        platform,
        [
            ("choose", "Automatic boot", "esc"),
            ("choose", MAIN, "r"),  # refresh: TOTP again, no countdown
            *power_off(MAIN),
        ],
    )
    assert final is State.POWER_OFF
    assert platform.calls.count("verify_boot") == 1  # the countdown's check; nothing booted
    assert platform.calls.count("unseal_totp") == 2


def test_no_autoboot_once_someone_is_at_the_keyboard() -> None:
    """Enrolling a new secret (or retrying a token) passes through TOTP and
    HOTP again: the user is present, so no unattended countdown starts."""
    platform = FakePlatform(
        start_facts=started(auto_boot_timeout=5, hotp_configured=True),
        hotp_results=[
            HotpFacts(HotpCheck.NOT_PROGRAMMED, "empty slot"),
            HotpFacts(HotpCheck.SUCCESS, "ok"),
        ],
    )
    final, ui = run(
        platform,
        [
            *seal_with_token("HOTP not verified", b"12345678", b"owner"),
            *secret_shown_then_power_off(),
        ],
    )
    assert final is State.POWER_OFF
    assert "Automatic boot" not in ui.titles("choose")
    assert any("HOTP: Success" in line for line in ui.shown[-2].live)


def test_no_autoboot_when_the_totp_failed_even_if_ignored() -> None:
    platform = FakePlatform(start_facts=AUTOBOOT, totp_results=[failed_totp()])
    final, ui = run(platform, [("choose", "TOTP code cannot be shown", "i"), *power_off(MAIN)])
    assert final is State.POWER_OFF
    assert "Automatic boot" not in ui.titles("choose")
    assert ui.shown[-2].tone is Tone.WARNING


def test_hotp_success_allows_autoboot() -> None:
    platform = FakePlatform(
        start_facts=started(auto_boot_timeout=3, hotp_configured=True), checks=[GOOD_CHECK]
    )
    final, ui = run(platform, [("choose", "Automatic boot", "esc"), *power_off(MAIN)])
    assert final is State.POWER_OFF
    assert any("HOTP: Success" in line for line in ui.shown[-2].live)


def test_an_invalid_hotp_code_is_red_and_stops_autoboot() -> None:
    platform = FakePlatform(
        start_facts=started(auto_boot_timeout=3, hotp_configured=True),
        hotp_results=[HotpFacts(HotpCheck.INVALID, "refused the code")],
    )
    final, ui = run(platform, [("choose", "HOTP code invalid", "i"), *power_off(MAIN)])
    assert final is State.POWER_OFF
    failure = ui.shown[ui.titles().index("ERROR: HOTP code invalid")]
    assert failure.tone is Tone.ERROR and "refused the code" in failure.text
    assert "Automatic boot" not in ui.titles("choose")
    assert ui.shown[-2].tone is Tone.ERROR
    assert any("HOTP: Invalid code" in line for line in ui.shown[-2].live)


def test_a_missing_token_can_be_inserted_and_retried() -> None:
    platform = FakePlatform(
        start_facts=started(hotp_configured=True),
        hotp_results=[
            HotpFacts(HotpCheck.ABSENT, "no token"),
            HotpFacts(HotpCheck.SUCCESS, "ok"),
        ],
    )
    final, ui = run(platform, [("choose", "HOTP not verified", "r"), *power_off(MAIN)])
    assert final is State.POWER_OFF
    assert ui.shown[ui.titles().index("WARNING: HOTP not verified")].tone is Tone.WARNING
    assert platform.calls.count("verify_hotp") == 2


def test_no_tpm_says_so_and_continues_without_attestation() -> None:
    platform = FakePlatform(start_facts=started(tpm_problem="No TPM was found."))
    final, ui = run(platform, [("choose", "no TPM", "c"), *power_off(MAIN)])
    assert final is State.POWER_OFF
    # the drivers still load (the disks need them); nothing is unsealed
    assert "measure" in platform.calls and "unseal_totp" not in platform.calls
    assert platform.calls.index("measure") < platform.calls.index("find_boot")
    assert "No TPM was found." in ui.texts()[ui.titles().index("ERROR: no TPM")]
    menu = ui.shown[-2]
    assert menu.tone is Tone.ERROR and any("TOTP: NO TPM" in line for line in menu.live)


def test_a_fatal_start_offers_recovery_or_power_off() -> None:
    platform = FakePlatform(start_facts=started(fatal="The board file is missing."))
    final, ui = run(platform, [*power_off("cannot start")])
    assert final is State.POWER_OFF
    assert "The board file is missing." in ui.texts()[-2]


def test_no_boot_partition_can_be_retried() -> None:
    platform = FakePlatform(
        boot_facts=[
            BootFacts(problem="No disk.", encrypted_seen=True),
            BootFacts("/dev/vda1", "/boot"),
        ]
    )
    final, ui = run(platform, [("choose", "no /boot partition", "r"), *power_off(MAIN)])
    assert final is State.POWER_OFF
    text = ui.texts()[ui.titles().index("ERROR: no /boot partition found")]
    assert "No disk." in text and "LUKS" in text
    assert platform.calls.count("find_boot") == 2


def test_no_boot_partition_still_attests() -> None:
    platform = FakePlatform(boot_facts=[BootFacts(problem="No disk.")])
    final, ui = run(platform, [("choose", "no /boot partition", "m"), *power_off(MAIN)])
    assert final is State.POWER_OFF
    assert "unseal_totp" in platform.calls and "rollback_preflight" not in platform.calls
    assert "NO DISK" in ui.shown[-2].text


def test_an_inconsistent_tpm_shows_the_reason_and_skips_attestation_on_continue() -> None:
    platform = FakePlatform(preflight=["The TPM has no rollback counter 0x01000001."])
    final, ui = run(
        platform,
        [
            ("choose", "TPM state inconsistent", "i"),
            ("choose", "Integrity report", "b"),
            ("choose", "TPM state inconsistent", "m"),
            *power_off(MAIN),
        ],
    )
    assert final is State.POWER_OFF
    assert "0x01000001" in ui.texts()[0 if ui.shown[0].kind == "choose" else 1] or any(
        "0x01000001" in t for t in ui.texts()
    )
    assert "unseal_totp" not in platform.calls and "keyring" not in platform.calls


def test_an_empty_keyring_explains_and_can_be_ignored() -> None:
    platform = FakePlatform(keyring_facts=KeyringFacts(problem="No owner key file."))
    final, _ = run(
        platform,
        [
            ("choose", "no owner key", "g"),
            ("show", "Add a key", None),
            ("choose", "no owner key", "i"),
            *power_off(MAIN),
        ],
    )
    assert final is State.POWER_OFF
    assert "unseal_totp" in platform.calls


@pytest.mark.parametrize(
    ("failure", "words"),
    [
        (TotpFailure.MISSING, "No TOTP secret has been sealed"),
        (TotpFailure.PCRS_CHANGED, "a measurement changed"),
        (TotpFailure.RECOVERY_USED, "recovery shell was opened"),
        (TotpFailure.NOT_BOUND, "prove nothing"),
        (TotpFailure.NO_PRIMARY, "no storage key"),
        (TotpFailure.TPM_ERROR, "reported an error"),
    ],
)
def test_each_totp_failure_is_explained(failure: TotpFailure, words: str) -> None:
    platform = FakePlatform(totp_results=[failed_totp(failure, "TOTP secret refused: PCR 9")])
    final, ui = run(platform, [("choose", "TOTP code cannot be shown", "i"), *power_off(MAIN)])
    assert final is State.POWER_OFF
    failure_screen = ui.shown[ui.titles().index("ERROR: the TOTP code cannot be shown")]
    assert failure_screen.tone is Tone.ERROR
    assert words in failure_screen.text and "TOTP secret refused: PCR 9" in failure_screen.text


def test_first_ownership_resets_the_tpm_generates_and_shows_the_secret_once() -> None:
    platform = FakePlatform(
        owned=False, totp_results=[failed_totp(), GOOD_TOTP], checks=[GOOD_CHECK]
    )
    final, ui = run(
        platform,
        [
            ("choose", "TOTP code cannot be shown", "g"),
            ("show", "no owner yet", None),
            *reset_with_own_passphrase(b"correct horse"),
            ("show", "The TPM was reset", None),
            ("choose", "Seal a new TOTP/HOTP secret?", "y"),
            *secret_shown_then_power_off(),
        ],
    )
    assert final is State.POWER_OFF
    # The passphrase set by the reset seals the secret: not asked twice.
    assert platform.passphrases == [b"correct horse", b"correct horse"]
    secret_page = ui.texts()[ui.titles().index("TOTP secret")]
    assert "AEAQ CAIB AEAQ CAIB AEAQ CAIB AEAQ CAIB" in secret_page  # base32 of SECRET
    qr = ui.shown[ui.titles().index("Scan this with your phone's authenticator app")]
    assert len(qr.text.splitlines()) >= 15
    # Shown once, then wiped.
    assert all(b == 0 for b in platform.given_secrets[0]) and bytearray(20) != SECRET
    assert ui.shown[-2].tone is Tone.GOOD


def test_reseal_needs_confirmation_after_the_report() -> None:
    platform = FakePlatform(totp_results=[failed_totp(TotpFailure.PCRS_CHANGED)])
    final, ui = run(
        platform,
        [
            ("choose", "TOTP code cannot be shown", "g"),
            ("choose", "Seal a new TOTP/HOTP secret?", "n"),
            *power_off(MAIN),
        ],
    )
    assert final is State.POWER_OFF
    assert "generate_secret" not in platform.calls
    gate = ui.shown[ui.titles().index("Seal a new TOTP/HOTP secret?")]
    assert gate.tone is Tone.ERROR and "All PCRs match." in gate.text


def test_a_wrong_owner_passphrase_is_asked_again_and_wiped() -> None:
    platform = FakePlatform(
        totp_results=[failed_totp(), GOOD_TOTP],
        enrol_results=[
            EnrolFacts(None, "The TPM refused the owner passphrase.", wrong_passphrase=True),
            EnrolFacts(bytearray(SECRET), sealed_pcrs=(0, 9)),
        ],
    )
    final, _ = run(
        platform,
        [
            ("choose", "TOTP code cannot be shown", "g"),
            ("choose", "Seal a new", "y"),
            ("ask", "TPM owner passphrase", b"wrong one"),
            ("show", "not sealed", None),
            ("ask", "TPM owner passphrase", b"right one"),
            *secret_shown_then_power_off(),
        ],
    )
    assert final is State.POWER_OFF
    assert platform.passphrases == [b"wrong one", b"right one"]


def test_the_hotp_token_pin_is_asked_when_a_token_is_configured() -> None:
    platform = FakePlatform(
        start_facts=started(hotp_configured=True),
        totp_results=[failed_totp(), GOOD_TOTP],
        enrol_results=[
            EnrolFacts(bytearray(SECRET), sealed_pcrs=(9,), hotp_message="Token programmed.")
        ],
    )
    final, ui = run(
        platform,
        [
            *seal_with_token("TOTP code cannot be shown", b"12345678", b"owner pass"),
            *secret_shown_then_power_off(),
        ],
    )
    assert final is State.POWER_OFF
    assert platform.passphrases == [b"owner pass", b"12345678"]
    assert "Token programmed." in ui.texts()[ui.titles().index("TOTP secret")]


def test_a_reset_asks_the_lockout_passphrase_when_the_firmware_needs_it() -> None:
    platform = FakePlatform(
        reset_results=[ResetFacts(needs_lockout_passphrase=True), ResetFacts()],
        totp_results=[failed_totp()],
    )
    final, _ = run(
        platform,
        [
            ("choose", "TOTP code cannot be shown", "p"),
            *reset_with_own_passphrase(b"new passphrase"),
            ("ask", "Current TPM passphrase", b"old passphrase"),
            ("show", "The TPM was reset", None),
            ("choose", "Seal a new", "n"),
            *power_off(MAIN),
        ],
    )
    assert final is State.POWER_OFF
    assert platform.passphrases == [b"new passphrase", b"new passphrase", b"old passphrase"]


def test_a_reset_asks_the_current_passphrase_first_when_the_firmware_needs_it() -> None:
    platform = FakePlatform(reset_needs_current=True, totp_results=[failed_totp()])
    final, ui = run(
        platform,
        [
            ("choose", "TOTP code cannot be shown", "p"),
            ("choose", "Reset the TPM?", "y"),
            ("ask", "Current TPM passphrase", b"old passphrase"),
            ("choose", "New TPM owner passphrase", "t"),  # type my own
            ("ask", "Your own TPM owner passphrase", b"new passphrase"),
            ("show", "The TPM was reset", None),
            ("choose", "Seal a new", "n"),
            *power_off(MAIN),
        ],
    )
    assert final is State.POWER_OFF
    assert platform.calls.count("reset_tpm") == 1  # one try, with the current passphrase
    assert "one try" in shown(ui, "Current TPM passphrase").text


def test_a_failed_reset_says_why_and_changes_nothing() -> None:
    platform = FakePlatform(
        reset_results=[ResetFacts(problem="The TPM is locked out.")], totp_results=[failed_totp()]
    )
    final, ui = run(
        platform,
        [
            ("choose", "TOTP code cannot be shown", "p"),
            *reset_with_own_passphrase(b"new passphrase"),
            ("show", "was not reset", None),
            *power_off(MAIN),
        ],
    )
    assert final is State.POWER_OFF
    assert any("The TPM is locked out." in text for text in ui.texts())
    assert "generate_secret" not in platform.calls


def test_recovery_asks_first_then_hands_over_to_init() -> None:
    platform = FakePlatform(totp_results=[failed_totp(TotpFailure.PCRS_CHANGED)])
    final, ui = run(
        platform,
        [("choose", "TOTP code cannot be shown", "x"), ("choose", "Open the recovery shell?", "y")],
    )
    assert final is State.RECOVERY
    assert "PCR 4 is extended" in ui.texts()[-1]


def test_recovery_can_be_declined() -> None:
    final, _ = run(
        FakePlatform(),
        [
            ("choose", MAIN, "o"),
            ("choose", "Options", "x"),
            ("choose", "Open the recovery shell?", "n"),
            *power_off(MAIN),
        ],
    )
    assert final is State.POWER_OFF


def test_restricted_boot_forbids_the_recovery_shell() -> None:
    platform = FakePlatform(start_facts=started(restricted=True))
    final, ui = run(
        platform,
        [
            ("choose", MAIN, "o"),
            ("choose", "Options", "x"),
            ("show", "Recovery shell disabled", None),
            *power_off(MAIN),
        ],
    )
    assert final is State.POWER_OFF
    assert "Open the recovery shell?" not in ui.titles()


def test_every_option_is_reachable_by_its_hot_key_and_comes_back() -> None:
    script: list[tuple[str, str, object]] = [
        ("choose", MAIN, "s"),
        ("show", "System", None),
        ("choose", MAIN, "o"),
    ]
    for key, back in (("o", "b"), ("t", "esc"), ("g", "b")):
        script += [("choose", "Options", key), ("choose", "", back)]
    script += [
        ("choose", "Options", "i"),
        ("choose", "Integrity report", "b"),
        ("choose", "Options", "c"),
        ("show", "Configuration", None),
        ("choose", "Options", "u"),
        ("choose", "Update checksums", "n"),
        ("choose", "Options", "F"),
        ("show", "OEM factory reset", None),
        ("choose", MAIN, "o"),
        ("choose", "Options", "b"),
        *power_off(MAIN),
    ]
    final, ui = run(FakePlatform(), script)
    assert final is State.POWER_OFF
    assert {"Boot options", "TPM/TOTP/HOTP options", "GPG options"} <= set(ui.titles())


def test_unavailable_boot_options_say_so_and_return() -> None:
    final, ui = run(
        FakePlatform(),
        [
            ("choose", MAIN, "o"),
            ("choose", "Options", "o"),
            ("choose", "Boot options", "e"),
            ("show", "USB boot", None),
            ("choose", "Boot options", "b"),
            ("choose", "Options", "b"),
            *power_off(MAIN),
        ],
    )
    assert final is State.POWER_OFF
    page = ui.shown[ui.titles().index("USB boot")]
    assert page.tone is Tone.WARNING and "not available yet" in page.text


def test_gpg_options_list_the_firmware_keys() -> None:
    _, ui = run(
        FakePlatform(),
        [
            ("choose", MAIN, "o"),
            ("choose", "Options", "g"),
            ("choose", "GPG options", "l"),
            ("show", "Keys in the firmware", None),
            ("choose", "GPG options", "b"),
            ("choose", "Options", "b"),
            *power_off(MAIN),
        ],
    )
    assert "ABCD" in ui.texts()[ui.titles().index("Keys in the firmware")]


def test_the_clock_is_set_after_a_typo_and_the_totp_recomputed() -> None:
    platform = FakePlatform(time_problems=["Not a date: 2026-13-01 10:00.", ""])
    final, ui = run(
        platform,
        [
            ("choose", MAIN, "o"),
            ("choose", "Options", "t"),
            ("choose", "TPM/TOTP/HOTP options", "t"),
            ("choose", "does not match", "h"),
            ("ask", "Change the system time", "2026-13-01 10:00"),
            ("ask", "Change the system time", "2026-11-25 10:00"),
            *power_off(MAIN),
        ],
    )
    assert final is State.POWER_OFF
    retry = [s for s in ui.shown if s.title == "Change the system time"][-1]
    assert retry.tone is Tone.ERROR and "Not a date" in retry.text
    assert platform.calls.count("unseal_totp") == 2


def test_main_menu_problems_are_listed() -> None:
    platform = FakePlatform(
        start_facts=started(
            config_problems=("Error in config.user, line 2: bad",),
            clock_problem="The clock is before the image's build date.",
        ),
        measure_facts=MeasureFacts(("Driver x.ko did not load: no device",), False, "PCR 5"),
    )
    _, ui = run(platform, [*power_off(MAIN)])
    menu = ui.shown[-2]
    assert menu.tone is Tone.ERROR
    for words in ("line 2: bad", "build date", "x.ko did not load"):
        assert words in menu.text


def test_the_main_menu_unseals_again_when_the_window_turns(monkeypatch: pytest.MonkeyPatch) -> None:
    now = time.time()
    window = int(now) // 30
    platform = FakePlatform(
        totp_results=[TotpFacts("123456", step=window), TotpFacts("654321", step=window + 1)]
    )
    _, ui = run(platform, [*power_off(MAIN)])
    menu = ui.shown[-2].description
    assert isinstance(menu, Menu) and menu.live is not None
    monkeypatch.setattr(time, "time", lambda: window * 30 + 29.0)  # the same window
    assert "123456" in menu.live()[1]
    assert platform.calls.count("unseal_totp") == 1
    monkeypatch.setattr(time, "time", lambda: window * 30 + 31.0)  # the next one
    assert "654321" in menu.live()[1]
    assert platform.calls.count("unseal_totp") == 2


# -- the remaining transitions, one path each ---------------------------------------


def test_no_tpm_to_the_recovery_shell() -> None:
    platform = FakePlatform(start_facts=started(tpm_problem="No TPM."))
    final, _ = run(
        platform, [("choose", "no TPM", "x"), ("choose", "Open the recovery shell?", "y")]
    )
    assert final is State.RECOVERY


def test_a_fatal_start_can_reboot() -> None:
    final, _ = run(
        FakePlatform(start_facts=started(fatal="No board file.")), [*reboot("cannot start")]
    )
    assert final is State.REBOOT


def test_a_failed_hotp_can_generate_a_new_secret() -> None:
    platform = FakePlatform(
        start_facts=started(hotp_configured=True),
        hotp_results=[
            HotpFacts(HotpCheck.NOT_PROGRAMMED, "empty slot"),
            HotpFacts(HotpCheck.SUCCESS, "ok"),
        ],
    )
    final, _ = run(
        platform,
        [
            *seal_with_token("HOTP not verified", b"12345678", b"owner"),
            *secret_shown_then_power_off(),
        ],
    )
    assert final is State.POWER_OFF
    assert platform.calls.count("verify_hotp") == 2


def test_a_refused_boot_leads_to_the_integrity_report_and_recovery() -> None:
    final, ui = run(
        FakePlatform(boot_refusal="The hash of vmlinuz differs."),
        [
            ("choose", MAIN, "d"),
            ("choose", "Boot refused", "i"),
            ("choose", "Integrity report", "x"),
            ("choose", "Open the recovery shell?", "y"),
        ],
    )
    assert final is State.RECOVERY
    assert (
        "The hash of vmlinuz differs."
        in ui.texts()[ui.titles().index("Boot refused: /boot is not what you signed")]
    )


def test_an_inconsistent_tpm_can_be_checked_again_or_reset() -> None:
    platform = FakePlatform(preflight=["Counter missing.", ""], totp_results=[failed_totp()])
    final, _ = run(
        platform,
        [
            ("choose", "TPM state inconsistent", "r"),
            ("choose", "TOTP code cannot be shown", "x"),
            ("choose", "Open the recovery shell?", "n"),
            *power_off(MAIN),
        ],
    )
    assert final is State.POWER_OFF
    assert platform.calls.count("rollback_preflight") == 2
    platform = FakePlatform(preflight=["Counter missing."])
    final, _ = run(
        platform,
        [
            ("choose", "TPM state inconsistent", "t"),
            ("choose", "Reset the TPM?", "n"),
            *power_off(MAIN),
        ],
    )
    assert final is State.POWER_OFF


def test_oem_reset_from_the_keyring_screen_says_it_is_not_there_yet() -> None:
    final, ui = run(
        FakePlatform(keyring_facts=KeyringFacts(problem="none")),
        [("choose", "no owner key", "F"), ("show", "OEM factory reset", None), *power_off(MAIN)],
    )
    assert final is State.POWER_OFF
    assert ui.shown[ui.titles().index("OEM factory reset / re-ownership")].tone is Tone.WARNING


def test_options_reboot_and_a_cancelled_time_change() -> None:
    final, _ = run(
        FakePlatform(),
        [
            ("choose", MAIN, "o"),
            ("choose", "Options", "h"),
            ("ask", "Change the system time", None),
            *reboot("Options"),
        ],
    )
    assert final is State.REBOOT


def test_the_autoboot_screen_shows_a_fresh_code_at_the_period_boundary(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = time.time()
    window = int(now) // 30
    platform = FakePlatform(
        start_facts=AUTOBOOT,
        checks=[GOOD_CHECK],
        totp_results=[TotpFacts("123456", step=window), TotpFacts("654321", step=window + 1)],
    )
    _, ui = run(platform, [("choose", "Automatic boot", "b"), *power_off(MAIN)])
    countdown = shown(ui, "Automatic boot").description
    assert isinstance(countdown, Menu) and countdown.live is not None
    monkeypatch.setattr(time, "time", lambda: window * 30 + 29.0)
    assert "TOTP: 123456" in countdown.live()[1]
    monkeypatch.setattr(time, "time", lambda: window * 30 + 31.0)  # the next window
    assert "TOTP: 654321" in countdown.live()[1]
    assert platform.calls.count("unseal_totp") == 2


def test_autoboot_does_not_boot_when_the_refreshed_code_did_not_unseal() -> None:
    window = int(time.time()) // 30
    platform = FakePlatform(
        start_facts=AUTOBOOT,
        checks=[GOOD_CHECK],
        totp_results=[
            TotpFacts("123456", step=window - 1),
            failed_totp(TotpFailure.TPM_ERROR, "TPM error"),
        ],
    )
    final, _ = run(platform, [("choose", "Automatic boot", "timeout"), *power_off(MAIN)])
    assert final is State.POWER_OFF
    assert not [c for c in platform.calls if c.startswith("boot ")]


@pytest.mark.parametrize("trouble", ["unverified /boot", "measurements", "changed /boot"])
def test_no_countdown_unless_the_verdict_is_verified(trouble: str) -> None:
    checks = [GOOD_CHECK]
    measure = MeasureFacts()
    if trouble == "unverified /boot":
        checks = [
            BootCheck(False, ("No signature.",), frozenset({"signature missing"}), unsigned=True)
        ]
    elif trouble == "measurements":
        measure = MeasureFacts(measurements_match=False)  # a PCR outside the seal
    else:
        checks = [
            BootCheck(
                False,
                ("files modified: grub.cfg",),
                frozenset({"files modified"}),
                changed=("grub/grub.cfg",),
            )
        ]
    platform = FakePlatform(start_facts=AUTOBOOT, checks=checks, measure_facts=measure)
    final, ui = run(platform, [*power_off(MAIN)])
    assert final is State.POWER_OFF
    assert "Automatic boot" not in ui.titles("choose")
    assert not [c for c in platform.calls if c.startswith("boot ")]
    assert ui.shown[-2].tone is not Tone.GOOD


def test_a_token_that_refuses_the_pin_seals_nothing_and_can_be_tried_again() -> None:
    platform = FakePlatform(
        start_facts=started(hotp_configured=True),
        owned=True,
        totp_results=[failed_totp(), GOOD_TOTP],
        enrol_results=[
            EnrolFacts(
                None, "The token refused the admin PIN.", token_refused=True, wrong_pin=True
            ),
            EnrolFacts(
                bytearray(SECRET),
                sealed_pcrs=(0, 4, 9),
                hotp_message="The token accepted its first code.",
            ),
        ],
    )
    final, ui = run(
        platform,
        [
            *seal_with_token("TOTP code cannot be shown", b"1234567", b"owner"),
            ("choose", "HOTP token was not programmed", "r"),
            ("ask", "HOTP token PIN", b"12345678"),
            *secret_shown_then_power_off(),
        ],
    )
    assert final is State.POWER_OFF
    refusal = shown(ui, "The HOTP token was not programmed")
    assert refusal.tone is Tone.ERROR and "Nothing was sealed" in refusal.text
    assert platform.calls.count("generate_secret") == 2
    # the owner passphrase was right: kept for the token's second try, not asked again
    assert platform.passphrases == [b"owner", b"1234567", b"owner", b"12345678"]
    assert not any(
        s.tone is Tone.GOOD
        for s in ui.shown[: ui.titles().index("Scan this with your phone's authenticator app")]
        if s.kind != "progress" and "boot menu" not in s.title
    )


def test_a_refused_token_can_be_left_out() -> None:
    platform = FakePlatform(
        start_facts=started(hotp_configured=True),
        owned=True,
        totp_results=[failed_totp(), GOOD_TOTP],
        enrol_results=[
            EnrolFacts(None, "No token is plugged in.", token_refused=True),
            EnrolFacts(bytearray(SECRET), sealed_pcrs=(0, 4, 9)),
        ],
    )
    final, _ = run(
        platform,
        [
            *seal_with_token("TOTP code cannot be shown", b"12345678", b"owner"),
            ("choose", "HOTP token was not programmed", "w"),
            *secret_shown_then_power_off(),
        ],
    )
    assert final is State.POWER_OFF
    # the second try had no PIN: the platform sealed for the TOTP code alone
    assert platform.passphrases == [b"owner", b"12345678", b"owner"]


def test_failure_details_are_offered_and_shown_only_when_asked() -> None:
    platform = FakePlatform(
        preflight=["The rollback counter could not be read."],
        detail_lines=("preflight: the TPM answered 0x18b",),
    )
    final, ui = run(
        platform,
        [
            ("choose", "TPM state inconsistent", "?"),
            ("show", "Details", None),
            ("choose", "TPM state inconsistent", "m"),
            *power_off(MAIN),
        ],
    )
    assert final is State.POWER_OFF
    first = shown(ui, "ERROR: TPM state inconsistent")
    assert "0x18b" not in first.text and "?  Details" in first.text
    assert "0x18b" in shown(ui, "Details").text


def test_no_to_sealing_after_a_reset_wipes_the_kept_passphrase() -> None:
    platform = FakePlatform(totp_results=[failed_totp()], owned=False)
    from runtime.state import driver
    from runtime.state.steps import Context
    from tests.fakes_ui import ScriptedUi

    ui = ScriptedUi(
        [
            ("choose", "TOTP code cannot be shown", "p"),
            *reset_with_own_passphrase(b"new passphrase"),
            ("show", "The TPM was reset", None),
            ("choose", "Seal a new", "n"),
            *power_off(MAIN),
        ]
    )
    ctx = Context(ui, platform)
    assert driver.run(ctx) is State.POWER_OFF
    assert ctx.session.take_owner_passphrase() is None


def test_after_the_last_token_try_only_without_or_cancel_is_offered_and_without_seals() -> None:
    refused = EnrolFacts(
        None, "The token refused the admin PIN.", token_refused=True, wrong_pin=True
    )
    platform = FakePlatform(
        start_facts=started(hotp_configured=True),
        totp_results=[failed_totp(), GOOD_TOTP],
        enrol_results=[
            refused,
            refused,
            refused,
            EnrolFacts(bytearray(SECRET), sealed_pcrs=(0, 4, 9)),
        ],
    )
    final, ui = run(
        platform,
        [
            *seal_with_token("TOTP code cannot be shown", b"1", b"owner"),
            ("choose", "HOTP token was not programmed", "r"),
            ("ask", "HOTP token PIN", b"2"),
            ("choose", "HOTP token was not programmed", "r"),
            ("ask", "HOTP token PIN", b"3"),
            ("choose", "HOTP token was not programmed", "w"),
            *secret_shown_then_power_off(),
        ],
    )
    assert final is State.POWER_OFF
    last = [s for s in ui.shown if s.title == "The HOTP token was not programmed"][-1]
    assert isinstance(last.description, Menu)
    assert [c.event for c in last.description.choices] == ["without", "cancelled"]
    assert platform.calls.count("generate_secret") == 4


def test_details_are_those_of_failures_since_the_last_answer() -> None:
    class Forgetting(FakePlatform):
        def forget_details(self) -> None:
            self.detail_lines = ()

    platform = Forgetting(
        preflight=["The rollback counter could not be read."],
        detail_lines=("preflight: the TPM answered 0x18b",),
    )
    final, ui = run(platform, [("choose", "TPM state inconsistent", "m"), *power_off(MAIN)])
    assert final is State.POWER_OFF
    assert "?  Details" in shown(ui, "ERROR: TPM state inconsistent").text
    assert all("Details" not in s.text for s in ui.shown[-2:])
