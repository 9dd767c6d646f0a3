"""tests/fakes_ui.ScriptedUi, the Ui other tests drive the state machine with."""

from __future__ import annotations

import pytest

from runtime.state.view import Choice, Menu, Page, Progress, Prompt, Tone, Ui
from tests.fakes_ui import ScriptedUi

MAIN = Menu(
    "qemu | heads-runtime Boot Menu",
    ("TOTP: 123456",),
    (
        Choice("d", "Default boot", "default-boot"),
        Choice("o", "Options -->", "options"),
        Choice("F", "OEM Factory Reset", "oem-reset"),
    ),
    live=lambda: ("12:00:00",),
)
TOTP_FAILED = Menu(
    "ERROR: TOTP Generation Failed!",
    ("The secret did not unseal.",),
    (Choice("g", "Generate new TOTP secret", "generate"), Choice("i", "Ignore error", "ignore")),
    tone=Tone.ERROR,
    back_event="ignore",
)
AUTO = Menu(
    "Automatic boot",
    (),
    (Choice("m", "Menu", "menu"), Choice("d", "Boot", "boot")),
    timeout=5,
    timeout_event="boot",
)
PASSPHRASE = Prompt("Owner passphrase", (), "Passphrase", secret=True, min_length=8)


def machine(ui: Ui) -> list[object]:
    answers: list[object] = []
    answers.append(ui.choose(TOTP_FAILED))
    ui.progress(Progress("Checking", "Checking the event log..."))
    answers.append(ui.choose(MAIN))
    answers.append(ui.ask(PASSPHRASE))
    answers.append(ui.ask(Prompt("Hostname", (), "Name")))
    ui.show(Page("Integrity report", ("All PCRs match.",)))
    answers.append(ui.choose(AUTO))
    return answers


def test_a_script_in_keys_drives_the_machine_and_records_what_was_shown() -> None:
    ui = ScriptedUi(
        [
            ("choose", "TOTP", "esc"),
            ("choose", "Boot Menu", "F"),
            ("ask", "Owner", b"correct horse"),
            ("ask", "Hostname", "box"),
            ("show", "Integrity", None),
            ("choose", "Automatic", "timeout"),
        ]
    )
    answers = machine(ui)
    ui.assert_finished()
    assert answers == ["ignore", "oem-reset", bytearray(b"correct horse"), "box", "boot"]
    assert isinstance(answers[2], bytearray) and isinstance(answers[3], str)
    assert ui.titles() == [
        "ERROR: TOTP Generation Failed!",
        "Checking",
        MAIN.title,
        "Owner passphrase",
        "Hostname",
        "Integrity report",
        "Automatic boot",
    ]
    assert ui.titles("progress") == ["Checking"]
    assert ui.shown[0].tone is Tone.ERROR and ui.shown[2].tone is Tone.NORMAL
    assert "The secret did not unseal." in ui.texts()[0]
    assert "12:00:00" in ui.texts()[2]  # live lines, as shown
    assert "F  OEM Factory Reset" in ui.texts()[2]


def test_enter_takes_the_focused_choice() -> None:
    ui = ScriptedUi([("choose", "Boot Menu", "enter"), ("choose", "Automatic", "enter")])
    assert ui.choose(MAIN) == "default-boot"
    assert ui.choose(AUTO) == "boot"  # the countdown's choice has the focus


@pytest.mark.parametrize(
    ("step", "menu", "message"),
    [
        (("choose", "Boot Menu", "x"), MAIN, "no choice has the key 'x'"),
        (("choose", "Boot Menu", "f"), MAIN, "no choice has the key 'f'"),  # case matters
        (("choose", "Boot Menu", "esc"), MAIN, "Esc does nothing"),
        (("choose", "Boot Menu", "timeout"), MAIN, "no countdown"),
        (("choose", "Options", "d"), MAIN, "expected choose 'Options'"),
        (("ask", "Boot Menu", "d"), MAIN, "expected ask 'Boot Menu'"),
    ],
)
def test_a_step_that_does_not_match_fails_and_says_what_was_shown(
    step: tuple[str, str, object], menu: Menu, message: str
) -> None:
    ui = ScriptedUi([step])
    with pytest.raises(AssertionError, match=message) as failure:
        ui.choose(menu)
    assert "Default boot" in str(failure.value)  # the screen is in the message


def test_an_answer_the_real_ui_would_refuse_fails() -> None:
    with pytest.raises(AssertionError, match="shorter than min_length=8"):
        ScriptedUi([("ask", "Owner", b"short")]).ask(PASSPHRASE)
    assert ScriptedUi([("ask", "Owner", None)]).ask(PASSPHRASE) is None


def test_running_out_of_script_fails_and_leftover_steps_are_reported() -> None:
    with pytest.raises(AssertionError, match="no more steps"):
        ScriptedUi([]).choose(MAIN)
    ui = ScriptedUi([("show", "Report", None)])
    with pytest.raises(AssertionError, match="stopped before"):
        ui.assert_finished()


def test_a_live_callback_that_raises_is_recorded_as_unavailable() -> None:
    def broken() -> tuple[str, ...]:
        raise OSError("no TPM")

    ui = ScriptedUi([("choose", "Clock", "d")])
    menu = Menu("Clock", (), MAIN.choices, live=broken)
    assert ui.choose(menu) == "default-boot"
    assert ui.shown[0].live == ("(unavailable)",)
