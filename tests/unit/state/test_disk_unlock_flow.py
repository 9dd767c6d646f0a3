"""The Disk Unlock Key's screens through the state machine, with a fake
platform and a scripted user: its setup from the TPM options (each entry
checked right away, and only the wrong one asked again), and a verified
boot with it (its passphrase, bounded attempts, the ways forward when it
cannot be used; the key wiped once the boot took it)."""

from __future__ import annotations

import pytest

from runtime.state.machine import State
from runtime.state.platform import (
    DefaultFacts,
    DiskCheckFacts,
    DiskContainer,
    DiskKeyFacts,
    DiskSetupFacts,
    DiskUnlock,
    DiskUnlockFacts,
    StartFacts,
)
from runtime.state.view import Tone
from tests.fakes_platform import (
    GOOD_CHECK,
    GOOD_TOTP,
    FakePlatform,
    failed_totp,
    refused_check,
    run_machine,
)
from tests.fakes_ui import Step, power_off

MAIN = "boot menu"
TPM_OPTIONS = "TPM/TOTP/HOTP options"
WHICH = "Disk Unlock Key: which encrypted disks?"
RECOVERY = "Disk Recovery Key passphrase"
DUK = "Disk Unlock Key passphrase"
OWNER = "TPM owner passphrase"


def _to_setup() -> list[Step]:
    return [("choose", MAIN, "o"), ("choose", "Options", "t"), ("choose", TPM_OPTIONS, "d")]


def _back_to_main() -> list[Step]:
    return [("choose", TPM_OPTIONS, "b"), ("choose", "Options", "b")]


def _signed() -> list[Step]:
    return [("ask", "Sign /boot", "123456"), ("show", "/boot signed", None)]


def _set_up_steps(which: str) -> list[Step]:
    """A setup answered right the first time: the disks, then each passphrase."""
    return [
        ("choose", WHICH, which),
        ("ask", RECOVERY, b"recovery"),
        ("ask", DUK, b"duk passphrase 12"),
        ("ask", OWNER, b"owner"),
        *_signed(),
        ("show", "Disk Unlock Key set up", None),
    ]


def test_setup_checks_seals_and_signs_with_the_duk_files() -> None:
    platform = FakePlatform(checks=[GOOD_CHECK])
    final, ui = run_machine(
        platform,
        [
            *_to_setup(),
            *_set_up_steps("a"),
            *_back_to_main(),
            *power_off(MAIN),
        ],
    )
    assert final is State.POWER_OFF
    duk_calls = [c for c in platform.calls if "disk" in c]
    assert duk_calls == [
        "disk_containers",
        "disk_lvm_problem",
        "check_disks /dev/vda3 /dev/vda4",
        "set_up_disk_unlock /dev/vda3 /dev/vda4 wipe=False",
        "sign_boot default=None disk_unlock",
    ]
    assert platform.passphrases == [
        b"recovery",
        b"recovery",
        b"duk passphrase 12",
        b"owner",
    ]
    done = ui.shown[ui.titles().index("Disk Unlock Key set up")]
    assert "0, 1, 2, 3, 4, 5, 6, 7, 9" in done.text


def test_a_wrong_recovery_passphrase_is_asked_again_with_the_reason() -> None:
    platform = FakePlatform(
        checks=[GOOD_CHECK],
        disk_check_results=[
            DiskCheckFacts(problem="It does not open /dev/vda3.", wrong_passphrase=True),
            DiskCheckFacts(),
        ],
    )
    _, ui = run_machine(
        platform,
        [
            *_to_setup(),
            ("choose", WHICH, "1"),
            ("ask", RECOVERY, b"typo"),
            ("ask", RECOVERY, b"recovery"),
            ("ask", DUK, b"duk passphrase 12"),
            ("ask", OWNER, b"owner"),
            *_signed(),
            ("show", "Disk Unlock Key set up", None),
            *_back_to_main(),
            *power_off(MAIN),
        ],
    )
    second = [s for s in ui.shown if s.title == RECOVERY][1]
    assert "does not open /dev/vda3" in second.text and "Caps Lock" in second.text
    assert "check_disks /dev/vda3" in platform.calls


def test_a_wrong_owner_passphrase_asks_for_it_alone_again() -> None:
    platform = FakePlatform(
        checks=[GOOD_CHECK],
        disk_setup_results=[
            DiskSetupFacts(problem="refused", wrong_owner_passphrase=True),
            DiskSetupFacts(pcrs=(0, 7)),
        ],
    )
    _, ui = run_machine(
        platform,
        [
            *_to_setup(),
            ("choose", WHICH, "a"),
            ("ask", RECOVERY, b"recovery"),
            ("ask", DUK, b"duk passphrase 12"),
            ("ask", OWNER, b"typo"),
            ("ask", OWNER, b"owner"),
            *_signed(),
            ("show", "Disk Unlock Key set up", None),
            *_back_to_main(),
            *power_off(MAIN),
        ],
    )
    assert ui.titles("ask").count(RECOVERY) == 1 and ui.titles("ask").count(DUK) == 1


def test_a_used_slot_is_replaced_only_when_the_user_says_so() -> None:
    in_use = DiskCheckFacts(slots_in_use=("/dev/vda3 key slot 31",))
    platform = FakePlatform(checks=[GOOD_CHECK], disk_check_results=[in_use])
    run_machine(
        platform,
        [
            *_to_setup(),
            ("choose", WHICH, "1"),
            ("ask", RECOVERY, b"recovery"),
            ("choose", "Replace the key in these slots?", "n"),
            *_back_to_main(),
            *power_off(MAIN),
        ],
    )
    assert not any(c.startswith("set_up_disk_unlock") for c in platform.calls)
    platform = FakePlatform(checks=[GOOD_CHECK], disk_check_results=[in_use])
    run_machine(
        platform,
        [
            *_to_setup(),
            ("choose", WHICH, "1"),
            ("ask", RECOVERY, b"recovery"),
            ("choose", "Replace the key in these slots?", "y"),
            ("ask", DUK, b"duk passphrase 12"),
            ("ask", OWNER, b"owner"),
            *_signed(),
            ("show", "Disk Unlock Key set up", None),
            *_back_to_main(),
            *power_off(MAIN),
        ],
    )
    assert "set_up_disk_unlock /dev/vda3 wipe=True" in platform.calls


def test_lvm_volumes_that_cannot_be_opened_are_named_with_the_reason() -> None:
    problem = "LVM physical volumes: /dev/vda5. This firmware has no LVM tools."
    platform = FakePlatform(
        checks=[GOOD_CHECK], disk_containers_found=(), lvm_problem_found=problem
    )
    _, ui = run_machine(
        platform,
        [*_to_setup(), ("show", "No encrypted disk", None), *_back_to_main(), *power_off(MAIN)],
    )
    page = ui.shown[ui.titles().index("No encrypted disk")]
    assert problem in page.text


def test_a_container_inside_lvm_is_offered_with_its_volume_group() -> None:
    inside = DiskContainer("/dev/mapper/osvg-cryptvault", 2, 32, "", "osvg")
    platform = FakePlatform(checks=[GOOD_CHECK], disk_containers_found=(inside,))
    _, ui = run_machine(
        platform,
        [*_to_setup(), ("choose", WHICH, "b"), *_back_to_main(), *power_off(MAIN)],
    )
    menu = ui.shown[ui.titles().index(WHICH)]
    assert "/dev/mapper/osvg-cryptvault (LUKS2, 32 MiB, LVM group osvg)" in menu.text


def test_turned_off_by_the_settings_it_is_neither_offered_nor_used() -> None:
    platform = FakePlatform(
        start_facts=StartFacts("Test board", "Brand", disk_unlock=False),
        checks=[GOOD_CHECK],
        disk_unlock_facts=DiskUnlockFacts(DiskUnlock.READY),
    )
    _, ui = run_machine(
        platform,
        [
            ("choose", MAIN, "o"),
            ("choose", "Options", "t"),
            ("choose", TPM_OPTIONS, "b"),
            ("choose", "Options", "b"),
            ("choose", MAIN, "d"),
            ("choose", "The boot did not start", "b"),
            *power_off(MAIN),
        ],
    )
    tpm_menu = ui.shown[ui.titles().index(TPM_OPTIONS)]
    assert "Disk Unlock Key" not in tpm_menu.text
    assert "disk_unlock" not in platform.calls


# --- offered when a default entry is saved -----------------------------------

OFFER = "Set up a Disk Unlock Key?"


def _saving_default(*after: Step) -> list[Step]:
    """The first entry made the default, ``after`` its signing, back at the menu."""
    return [
        ("choose", MAIN, "d"),
        ("choose", "No default boot entry", "m"),
        ("choose", "OS boot menu", "1"),
        ("choose", "Boot Debian?", "d"),
        ("choose", "Make Debian the default?", "y"),
        *_signed(),
        *after,
        ("choose", "No default boot entry", "b"),
    ]


def _save_default(*after: Step) -> list[Step]:
    return [*_saving_default(*after), *power_off(MAIN)]


def _no_default(**given: object) -> FakePlatform:
    return FakePlatform(
        checks=[GOOD_CHECK],
        default_facts=DefaultFacts(none_saved=True),
        **given,  # type: ignore[arg-type]
    )


def test_saving_a_default_offers_the_setup_and_yes_runs_it() -> None:
    platform = _no_default()
    final, ui = run_machine(
        platform,
        _save_default(
            ("choose", OFFER, "y"),
            *_set_up_steps("1"),
        ),
    )
    assert final is State.POWER_OFF
    offer = ui.shown[ui.titles().index(OFFER)]
    assert "/dev/vda3, /dev/vda4" in offer.text
    assert "set_up_disk_unlock /dev/vda3 wipe=False" in platform.calls
    signings = [c for c in platform.calls if c.startswith("sign_boot")]
    assert signings == ["sign_boot default=Debian", "sign_boot default=None disk_unlock"]


def test_no_to_the_offer_changes_nothing() -> None:
    platform = _no_default()
    final, _ = run_machine(platform, _save_default(("choose", OFFER, "n")))
    assert final is State.POWER_OFF
    assert not [c for c in platform.calls if c.startswith(("check_disks", "set_up_disk"))]


def test_the_offer_is_not_made_when_it_could_not_or_need_not_be_set_up() -> None:
    cases: list[dict[str, object]] = [
        {"disk_unlock_is_listed": True},  # a DUK is set up already
        {"disk_containers_found": ()},  # nothing encrypted
        {"owned": False},  # no TPM owner to seal with
        {"start_facts": StartFacts("Test board", "Brand", disk_unlock=False)},
    ]
    for given in cases:
        platform = _no_default(**given)
        final, ui = run_machine(platform, _save_default())
        assert final is State.POWER_OFF, given
        assert OFFER not in ui.titles(), given
        assert "check_disks" not in " ".join(platform.calls), given


# --- a TPM reset ------------------------------------------------------------


@pytest.mark.parametrize(
    ("listed", "disks", "words"),
    [
        (True, True, "The Disk Unlock Key sealed in it is gone too"),
        (False, True, "If a Disk Unlock Key was set up, it is gone too"),
        (False, False, ""),
    ],
)
def test_a_tpm_reset_says_what_it_knows_of_the_duk(listed: bool, disks: bool, words: str) -> None:
    from tests.unit.state.test_boot_flow import (
        reset_with_own_passphrase,
        secret_shown_then_power_off,
    )

    platform = FakePlatform(
        owned=False,
        totp_results=[failed_totp(), GOOD_TOTP],
        checks=[GOOD_CHECK],
        disk_unlock_is_listed=listed,
        **({} if disks else {"disk_containers_found": ()}),  # type: ignore[arg-type]
    )
    _, ui = run_machine(
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
    reset = ui.shown[ui.titles().index("The TPM was reset")]
    assert words in reset.text
    assert ("Disk Unlock Key" in reset.text) is bool(words)


# --- a verified boot --------------------------------------------------------


def _ready(**given: object) -> FakePlatform:
    return FakePlatform(
        checks=[GOOD_CHECK],
        disk_unlock_facts=DiskUnlockFacts(DiskUnlock.READY),
        boot_results=[None],
        **given,  # type: ignore[arg-type]
    )


def test_the_key_goes_to_the_boot_and_is_wiped_after() -> None:
    platform = _ready()
    final, ui = run_machine(
        platform, [("choose", MAIN, "d"), ("ask", "Disk Unlock Key", b"duk passphrase")]
    )
    assert final is State.HANDOVER
    assert platform.calls[-1] == "boot Debian unsafe=False disk_key"
    given = platform.boot_disk_keys[-1]
    assert given is not None and given == bytearray(len(given))  # wiped
    prompt = ui.shown[ui.titles().index("Disk Unlock Key")]
    assert "TOTP:" in prompt.text and "Attempt 1 of 3" in prompt.text


def test_wrong_passphrases_are_bounded_then_the_boot_goes_on_without_the_key() -> None:
    wrong = DiskKeyFacts(problem="The TPM refused the passphrase.", wrong_passphrase=True)
    platform = _ready(disk_key_results=[wrong, wrong, wrong])
    final, ui = run_machine(
        platform,
        [
            ("choose", MAIN, "d"),
            ("ask", "Disk Unlock Key", b"a"),
            ("ask", "Disk Unlock Key", b"b"),
            ("ask", "Disk Unlock Key", b"c"),
            ("choose", "Boot without the Disk Unlock Key?", "y"),
        ],
    )
    assert final is State.HANDOVER
    assert platform.calls.count("disk_key") == 3
    assert platform.calls[-1] == "boot Debian unsafe=False"
    last = ui.shown[ui.titles().index("Boot without the Disk Unlock Key?")]
    assert "refused 3 times" in last.text and "recovery passphrase" in last.text


def test_a_changed_pcr_is_named_and_nothing_more_is_asked() -> None:
    changed = DiskKeyFacts(problem="The Disk Unlock Key stays sealed: PCR 7 changed since ...")
    platform = _ready(disk_key_results=[changed])
    final, ui = run_machine(
        platform,
        [
            ("choose", MAIN, "d"),
            ("ask", "Disk Unlock Key", b"duk passphrase"),
            ("choose", "Boot without the Disk Unlock Key?", "b"),
            *power_off(MAIN),
        ],
    )
    assert final is State.POWER_OFF
    assert "PCR 7 changed" in ui.shown[ui.titles().index("Boot without the Disk Unlock Key?")].text
    assert not any(c.startswith("boot ") for c in platform.calls)


def test_a_changed_header_keeps_the_key_sealed_with_the_reason() -> None:
    platform = FakePlatform(
        checks=[GOOD_CHECK],
        disk_unlock_facts=DiskUnlockFacts(
            DiskUnlock.REFUSED, "The encryption (LUKS) header of /dev/vda3 differs from the one"
        ),
    )
    _, ui = run_machine(
        platform,
        [
            ("choose", MAIN, "d"),
            ("choose", "Boot without the Disk Unlock Key?", "b"),
            *power_off(MAIN),
        ],
    )
    refusal = ui.shown[ui.titles().index("Boot without the Disk Unlock Key?")]
    assert "/dev/vda3" in refusal.text and refusal.tone is Tone.ERROR
    assert "disk_key" not in platform.calls
    assert not any(c.startswith("boot ") for c in platform.calls)


def test_setup_refuses_a_boot_that_does_not_verify_before_anything() -> None:
    platform = FakePlatform(checks=[refused_check("files modified: vmlinuz-6.1")])
    run_machine(
        platform,
        [
            *_to_setup(),
            ("show", "/boot is not what you signed", None),
            *_back_to_main(),
            *power_off(MAIN),
        ],
    )
    assert not any("disk" in c for c in platform.calls)


SEALED = "The Disk Unlock Key stays sealed: PCR 9 changed since it was set up (...)."
WITHOUT = "Boot without the Disk Unlock Key?"


def test_a_changed_firmware_offers_setting_the_key_up_again_from_the_refusal() -> None:
    platform = FakePlatform(
        checks=[GOOD_CHECK],
        disk_unlock_facts=DiskUnlockFacts(DiskUnlock.UNAVAILABLE, SEALED, set_up_again=True),
    )
    final, ui = run_machine(
        platform,
        [
            ("choose", MAIN, "d"),
            ("choose", WITHOUT, "s"),
            *_set_up_steps("a"),
            *power_off(MAIN),  # back to the menu: this power-on boots without it
        ],
    )
    assert final is State.POWER_OFF
    refusal = ui.shown[ui.titles().index(WITHOUT)]
    assert "PCR 9 changed" in refusal.text and "used from the next power-on" in refusal.text
    assert "set_up_disk_unlock /dev/vda3 /dev/vda4 wipe=False" in platform.calls
    assert not any(c.startswith("boot ") for c in platform.calls)


def test_without_a_trusted_totp_the_key_is_not_set_up_again_from_the_refusal() -> None:
    platform = FakePlatform(
        checks=[GOOD_CHECK],
        totp_results=[failed_totp()],
        disk_unlock_facts=DiskUnlockFacts(DiskUnlock.UNAVAILABLE, SEALED, set_up_again=True),
    )
    final, ui = run_machine(
        platform,
        [
            ("choose", "TOTP code cannot be shown", "i"),
            ("choose", MAIN, "d"),
            ("choose", WITHOUT, "b"),
            *power_off(MAIN),
        ],
    )
    assert final is State.POWER_OFF
    refusal = ui.shown[ui.titles().index(WITHOUT)]
    assert "seal a new TOTP/HOTP secret first" in refusal.text
    assert "Set the key up again" not in refusal.text


def test_a_key_set_up_in_this_power_on_is_said_and_the_boot_goes_on_without_it() -> None:
    platform = FakePlatform(
        checks=[GOOD_CHECK],
        disk_unlock_facts=DiskUnlockFacts(DiskUnlock.LATER, "Used from the next power-on."),
        boot_results=[None],
    )
    _, ui = run_machine(platform, [("choose", MAIN, "d"), ("show", "Disk Unlock Key", None)])
    notice = ui.shown[ui.titles().index("Disk Unlock Key")]
    assert "next power-on" in notice.text and notice.tone is Tone.NORMAL
    assert "boot Debian unsafe=False" in platform.calls and "disk_key" not in platform.calls


def test_without_a_trusted_totp_the_setup_is_not_offered_and_warns_when_chosen() -> None:
    platform = _no_default(totp_results=[failed_totp()])
    final, ui = run_machine(
        platform,
        [
            ("choose", "TOTP code cannot be shown", "i"),
            *_saving_default(),
            # chosen from the options anyway: said plainly, and No changes nothing
            *_to_setup(),
            ("choose", "No TOTP code vouched for this firmware", "n"),
            *_back_to_main(),
            *power_off(MAIN),
        ],
    )
    assert final is State.POWER_OFF
    assert OFFER not in ui.titles()
    assert "disk_containers" not in platform.calls
