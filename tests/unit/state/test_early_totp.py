"""The TOTP code shown while the drivers load: on the progress screens of the
start while its window lasts, never taken as the attestation (the TOTP state
unseals again after the checks and judges a failure), never in Basic mode,
and never before the drivers on a board that seals to their PCR."""

from __future__ import annotations

import dataclasses
import time

import pytest

from runtime.state.device_platform import DevicePlatform
from runtime.state.machine import State
from runtime.state.platform import StartFacts, TotpFacts, TotpFailure
from runtime.state.session import Session, early_code_lines
from tests.fakes_platform import GOOD_CHECK, GOOD_TOTP, FakePlatform, failed_totp, run_machine
from tests.fakes_ui import ScriptedUi, power_off
from tests.support.board import TEST_BOARD

MAIN = "boot menu"


def progress_texts(ui: ScriptedUi) -> list[str]:
    return [s.text for s in ui.shown if s.kind == "progress"]


def test_the_early_code_is_on_every_progress_screen_until_the_totp_state(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(time, "time", lambda: 1_800_000_005.0)  # one window throughout
    early = TotpFacts("654321", message="TOTP secret unsealed")
    platform = FakePlatform(checks=[GOOD_CHECK], early_totp_result=early)
    final, ui = run_machine(platform, power_off(MAIN))
    assert final is State.POWER_OFF
    titles = [s.title for s in ui.shown if s.kind == "progress"]
    texts = progress_texts(ui)
    first = next(i for i, t in enumerate(texts) if "654321" in t)
    last = len(titles) - 1 - titles[::-1].index("TOTP")  # the attesting unseal
    assert {"Measuring", "Looking for /boot"} <= set(titles[first:last])
    assert all("TOTP: 654321  (25 s left)" in t for t in texts[first : last + 1])
    # the attestation is still the TOTP state's own unseal, after the checks
    assert platform.calls.index("early_totp") < platform.calls.index("measure")
    assert platform.calls.index("unseal_totp") > platform.calls.index("keyring")
    menu = ui.shown[-2]
    assert any("TOTP: 123456" in line for line in menu.live)


def test_an_early_failure_shows_nothing_and_the_totp_state_judges_it() -> None:
    platform = FakePlatform(
        early_totp_result=None,
        totp_results=[failed_totp(TotpFailure.PCRS_CHANGED, "PCR 0 changed")],
    )
    final, ui = run_machine(
        platform, [("choose", "TOTP code cannot be shown", "i"), *power_off(MAIN)]
    )
    assert final is State.POWER_OFF
    assert not any("TOTP: " in t for t in progress_texts(ui))
    assert "unseal_totp" in platform.calls


def test_a_code_whose_window_turned_is_not_shown() -> None:
    now = time.time()
    early = TotpFacts("111111", step=int(now) // 30)
    assert early_code_lines(early, now)[0].startswith("TOTP: 111111")
    assert early_code_lines(early, now + 30) == ()


def test_the_progress_line_counts_down_and_goes_when_the_window_turns(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The UI calls live each second while the drivers load: the seconds left
    follow the clock, and the code leaves the screen when its window ends."""
    clock = [1_800_000_005.0]
    monkeypatch.setattr(time, "time", lambda: clock[0])
    session = Session()
    session.early_totp = TotpFacts("222222", step=int(clock[0]) // 30)
    live = session.early_totp_live()
    assert live is not None
    assert "(25 s left)" in live()[0]
    clock[0] += 20
    assert "( 5 s left)" in live()[0]
    clock[0] += 10
    assert live() == ()
    session.early_totp = None
    assert session.early_totp_live() is None


def test_after_the_totp_state_the_early_code_never_comes_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(time, "time", lambda: 1_800_000_005.0)  # one window throughout
    platform = FakePlatform(checks=[GOOD_CHECK], early_totp_result=TotpFacts("654321"))
    final, ui = run_machine(platform, [("choose", MAIN, "r"), *power_off(MAIN)])
    assert final is State.POWER_OFF
    refreshes = [i for i, s in enumerate(ui.shown) if s.title == "TOTP" and s.kind == "progress"]
    last_refresh = ui.shown[refreshes[-1]]
    assert "Unsealing" in last_refresh.text and "654321" not in last_refresh.text


def test_a_clock_known_to_be_wrong_shows_no_early_code() -> None:
    start = StartFacts("Test board", "Brand", clock_problem="The clock is before the build.")
    platform = FakePlatform(start_facts=start, early_totp_result=GOOD_TOTP)
    run_machine(platform, power_off(MAIN))
    assert "early_totp" not in platform.calls


def test_no_tpm_unseals_nothing_early() -> None:
    start = StartFacts("Test board", "Brand", tpm_problem="No TPM answered.")
    platform = FakePlatform(start_facts=start, early_totp_result=GOOD_TOTP)
    run_machine(platform, [("choose", "ERROR: no TPM", "c"), *power_off(MAIN)])
    assert "early_totp" not in platform.calls


def test_a_platform_without_a_tpm_gives_no_early_code() -> None:
    """The start closes a TPM that failed the identity check and keeps none."""
    platform = DevicePlatform()
    platform.board = TEST_BOARD
    platform.tpm = None
    assert platform.early_totp() is None


def test_basic_mode_unseals_nothing_early() -> None:
    start = StartFacts("Test board", "Brand", basic=True)
    platform = FakePlatform(start_facts=start, early_totp_result=GOOD_TOTP)
    run_machine(platform, power_off(MAIN))
    assert "early_totp" not in platform.calls


class _NoTpmCalls:
    """Stands in for the TPM: any use of it fails the test."""

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"the TPM was used ({name}) before the drivers were measured")


@pytest.mark.parametrize("sealed_to_modules", [True, False])
def test_a_board_sealing_to_the_drivers_pcr_waits_for_them(
    sealed_to_modules: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    board = TEST_BOARD
    seal = (*board.seal_pcrs, board.modules_pcr) if sealed_to_modules else board.seal_pcrs
    platform = DevicePlatform()
    platform.board = dataclasses.replace(board, seal_pcrs=seal)
    platform.tpm = _NoTpmCalls()  # type: ignore[assignment]
    unsealed: list[bool] = []

    def unseal() -> TotpFacts:
        unsealed.append(True)
        return GOOD_TOTP

    monkeypatch.setattr(platform, "unseal_totp", unseal)
    found = platform.early_totp()
    assert (found is None) is sealed_to_modules
    assert bool(unsealed) is not sealed_to_modules
