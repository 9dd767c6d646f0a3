"""CONFIG_IGNORE_ROLLBACK (issue 15, item 2): as in Heads, the setting skips
the rollback counter in the preflight and in the verification of /boot; the
verdict then never says VERIFIED (a signature says nothing about freshness),
every main menu warns, and the automatic boot still runs after the HOTP
check's Success (Heads' automatic boot does not look at the setting)."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import pytest

from runtime.config.settings import LoadedSettings, Settings
from runtime.integrity.verify_boot import BootReport
from runtime.state import platform_boot
from runtime.state.boot_side import BootSide
from runtime.state.device_platform import DevicePlatform
from runtime.state.machine import State
from runtime.state.platform import BootCheck, StartFacts
from runtime.state.session import ROLLBACK_OFF_WARNING
from runtime.state.verdict import (
    ROLLBACK_OFF,
    VERIFIED,
    BootState,
    Evidence,
    Secret,
    Token,
    verdict,
)
from runtime.state.view import Menu, Tone
from tests.fakes_platform import FakePlatform, run_machine
from tests.fakes_ui import ScriptedUi, power_off
from tests.support.verdict_oracle import everything_checked

MAIN = "boot menu"
COUNTDOWN = "Automatic boot"
#: what the device answers for a replayed older signed /boot, counter unread
REPLAYED_UNCHECKED = BootCheck(
    True, counter=None, signer="ABCD", notes=(platform_boot.ROLLBACK_OFF_NOTE,)
)
#: and with the check on
REPLAYED_REFUSED = BootCheck(
    False,
    (
        "an older signed /boot (rollback): /boot was signed when "
        "the counter was 7; the TPM counter is now 8.",
    ),
    frozenset({"an older signed /boot (rollback)"}),
    counter=8,
)


def started(**fields: object) -> StartFacts:
    return StartFacts("Test board", "Brand", **fields)  # type: ignore[arg-type]


def main_menu(ui: ScriptedUi) -> Menu:
    menus = [s.description for s in ui.shown if s.title.endswith(MAIN)]
    assert menus and isinstance(menus[-1], Menu)
    return menus[-1]


# -- the verdict ---------------------------------------------------------------


def _all_else_checked(e: Evidence) -> bool:
    """Everything but /boot's rollback counter was checked and passed."""
    return everything_checked(dataclasses.replace(e, rollback_off=False))


def test_never_verified_with_the_check_off() -> None:
    for tpm, match, recovery, secret, token, boot, rollback, config in itertools.product(
        (True, False),
        (True, False),
        (True, False),
        Secret,
        Token,
        BootState,
        (True, False),
        (True, False),
    ):
        e = Evidence(
            tpm,
            match,
            recovery,
            secret,
            token,
            boot,
            ("vmlinuz",),
            rollback,
            config,
            rollback_off=True,
        )
        found = verdict(e)
        assert found.word != VERIFIED and found.tone is not Tone.GOOD, e
        # all else checked: its own yellow word, and the unattended boot as Heads
        assert (found.word == ROLLBACK_OFF) is _all_else_checked(e), e
        assert found.unattended is _all_else_checked(e), e
        if tpm:
            assert "/boot's rollback counter not checked" in found.reasons, e


def test_the_same_evidence_with_the_check_on_is_verified() -> None:
    e = Evidence(True, True, False, Secret.SHOWN, Token.SUCCESS, BootState.VERIFIED)
    assert verdict(e).word == VERIFIED and verdict(e).unattended
    off = verdict(dataclasses.replace(e, rollback_off=True))
    assert (off.word, off.tone) == (ROLLBACK_OFF, Tone.WARNING)
    assert "latest" in off.headline


# -- the machine, through the fake platform -------------------------------------


def test_with_the_setting_a_replayed_boot_verifies_with_the_warning() -> None:
    platform = FakePlatform(
        start_facts=started(rollback_check_off=True),
        checks=[REPLAYED_UNCHECKED],
        boot_results=[None],
    )
    final, ui = run_machine(platform, [("choose", MAIN, "d")])
    assert final is State.HANDOVER
    assert [c for c in platform.calls if c.startswith("boot ")] == ["boot Debian unsafe=False"]
    menu = main_menu(ui)
    assert menu.tone is Tone.WARNING and menu.body[0].startswith(ROLLBACK_OFF + ":")
    assert ROLLBACK_OFF_WARNING in menu.body
    assert "Rollback check off (CONFIG_IGNORE_ROLLBACK)" in ROLLBACK_OFF_WARNING
    assert "Boot refused" not in ui.titles()


def test_without_the_setting_the_replayed_boot_is_refused_as_rollback() -> None:
    platform = FakePlatform(checks=[REPLAYED_REFUSED])
    final, ui = run_machine(
        platform, [("choose", MAIN, "d"), ("choose", "older signed /boot", "m"), *power_off(MAIN)]
    )
    assert final is State.POWER_OFF
    assert not [c for c in platform.calls if c.startswith("boot ")]
    menu = main_menu(ui)
    assert menu.tone is Tone.ERROR and menu.body[0].startswith("TAMPERED?")
    assert ROLLBACK_OFF_WARNING not in menu.body


def test_the_countdown_runs_after_hotp_success_and_says_the_check_is_off() -> None:
    platform = FakePlatform(
        start_facts=started(auto_boot_timeout=5, hotp_configured=True, rollback_check_off=True),
        checks=[REPLAYED_UNCHECKED],
    )
    final, ui = run_machine(platform, [("choose", COUNTDOWN, "esc"), *power_off(MAIN)])
    assert final is State.POWER_OFF
    countdown = ui.shown[ui.titles().index(COUNTDOWN)].description
    assert isinstance(countdown, Menu) and countdown.tone is Tone.WARNING
    assert countdown.body[0].startswith(ROLLBACK_OFF + ":")
    assert ROLLBACK_OFF_WARNING in countdown.body


# -- the device side: one switch for both checks ---------------------------------


def _device(ignore: bool) -> DevicePlatform:
    platform = DevicePlatform()
    texts = {"CONFIG_IGNORE_ROLLBACK": "y" if ignore else "n"}
    platform.loaded = LoadedSettings(Settings(texts), [], {})
    return platform


@pytest.mark.parametrize("ignore", [False, True])
def test_the_device_platform_passes_the_setting_to_the_verification(
    monkeypatch: pytest.MonkeyPatch, ignore: bool
) -> None:
    asked: list[bool] = []

    def verify(
        side: object, tpm: object, progress: object, *, check_rollback: bool = True
    ) -> BootCheck:
        asked.append(check_rollback)
        return BootCheck(True)

    monkeypatch.setattr(platform_boot, "verify", verify)
    _device(ignore).verify_boot(lambda _: None)
    assert asked == [not ignore]


def test_the_preflight_asks_nothing_with_the_setting() -> None:
    platform = _device(True)
    platform.boot_device = "/dev/vda1"
    platform.tpm = object()  # type: ignore[assignment]  # touching it would fail
    assert platform.rollback_preflight() == ""


@pytest.mark.parametrize("check_rollback", [False, True])
def test_device_verify_reads_no_counter_with_the_check_off(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, scratch_log: Path, check_rollback: bool
) -> None:
    readers: list[object] = []

    def fake_verify(boot_dir: str, owner_key: str, read_counter: object, **_: object) -> BootReport:
        readers.append(read_counter)
        return BootReport()

    monkeypatch.setattr(platform_boot, "verify_boot", fake_verify)
    side = BootSide(boot_dir=str(tmp_path), device=str(tmp_path / "no-device"))
    check = platform_boot.verify(side, object(), lambda _: None, check_rollback=check_rollback)
    assert check.ok
    assert (readers[0] is None) is not check_rollback
    assert (platform_boot.ROLLBACK_OFF_NOTE in check.notes) is not check_rollback
    assert f"rollback_checked={check_rollback}" in scratch_log.read_text()


def test_the_signing_question_says_the_counter_stays() -> None:
    """With CONFIG_IGNORE_ROLLBACK signing leaves the counter: the question
    before it must not promise that older copies stop verifying."""
    from tests.fakes_platform import GOOD_CHECK, FakePlatform, run_machine
    from tests.fakes_ui import power_off

    for off in (False, True):
        platform = FakePlatform(
            checks=[GOOD_CHECK],
            start_facts=StartFacts("Test board", "Brand", rollback_check_off=off),
        )
        _, ui = run_machine(
            platform,
            [
                ("choose", "boot menu", "o"),
                ("choose", "Options", "u"),
                ("choose", "Update checksums and sign /boot", "n"),
                ("choose", "Options", "b"),
                *power_off("boot menu"),
            ],
        )
        text = ui.texts()[ui.titles().index("Update checksums and sign /boot")]
        assert ("stays where it is" in text) is off
        assert ("stop verifying" in text) is not off
