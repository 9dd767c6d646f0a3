"""The views, without a loop: keys and ticks fed in, widgets drawn to text."""

from __future__ import annotations

import itertools

import pytest

from runtime.secrets.otp_enrol import otpauth_uri, qr_text
from runtime.state.view import Choice, Menu, Page, Progress, Prompt, Tone
from runtime.ui import render_text
from runtime.ui.bridge import Description, make_view
from runtime.ui.menu_view import MenuView
from runtime.ui.prompt_view import MISMATCH, PromptView
from runtime.ui.views import Done, PageView, ProgressView, View
from runtime.ui.widgets import MORE_BELOW, qr_rows

PCR_HEX = "3d458cfe55cc03ea1f443f1562beec8df51c75e14a9fcf9a7234a13f198e7969"
MAIN = Menu(
    title="qemu-swtpm | heads-runtime Boot Menu",
    body=("2026-07-20 12:00:00 UTC",),
    choices=(
        Choice("d", "Default boot", "default-boot"),
        Choice("r", "Refresh TOTP/HOTP", "refresh"),
        Choice("o", "Options -->", "options"),
        Choice("s", "System Info", "system-info"),
        Choice("p", "Power Off", "power-off"),
    ),
)
OPTIONS = Menu(
    title="Options",
    body=(),
    choices=(
        Choice("f", "Flash/Update the BIOS", "flash"),
        Choice("F", "OEM Factory Reset / Re-Ownership", "oem-reset"),
        Choice("1", "One", "one"),
        Choice("j", "Jump", "jump"),
        Choice("r", "<-- Return to main menu", "back"),
    ),
    back_event="back",
)
LONG_BODY = tuple(f"Paragraph {n}: " + "word " * 40 for n in range(12))
SIZES = [(80, 24), (40, 12), (20, 6), (10, 3), (1, 1)]


def screen(view: object, cols: int = 80, rows: int = 24) -> str:
    lines = render_text(view.widget, cols, rows)  # type: ignore[attr-defined]
    assert len(lines) == rows
    assert all(len(line) == cols for line in lines)
    return "\n".join(line.rstrip() for line in lines)


def press(view: View, *keys: str) -> Done | None:
    result = None
    for key in keys:
        result = view.keypress(key)
    return result


def focused_line(text: str) -> str:
    marked = [line for line in text.splitlines() if line.startswith("> ")]
    assert len(marked) == 1, text
    return marked[0]


def counter_live() -> tuple[itertools.count[int], Menu]:
    count = itertools.count()
    return count, Menu("Clock", ("Body",), MAIN.choices, live=lambda: (f"tick {next(count)}",))


# --- every description fits ------------------------------------------------------

ALL: list[Description] = [
    MAIN,
    Menu(
        "Long",
        LONG_BODY,
        OPTIONS.choices * 4,
        tone=Tone.ERROR,
        live=lambda: ("live " * 30,),
        timeout=10,
        timeout_event="flash",
        back_event="back",
    ),
    Prompt(
        "Owner passphrase",
        LONG_BODY,
        "Passphrase",
        secret=True,
        confirm=True,
        min_length=8,
        tone=Tone.WARNING,
    ),
    Page("Report", ("PCR 0: " + PCR_HEX, *LONG_BODY), tone=Tone.GOOD),
    Page("Table", ("x" * 200, "", "y"), preformatted=True),
    Page("Empty", ()),
    Progress("Sealing", "Sealing the secret to PCRs 0-7...", LONG_BODY),
]


@pytest.mark.parametrize("description", ALL, ids=lambda d: f"{type(d).__name__}-{d.title}")
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_every_description_renders_at_every_size(
    description: Description, size: tuple[int, int]
) -> None:
    view = make_view(description)
    screen(view, *size)
    press(view, "down", "page down", "end", "x")  # keys, then a redraw: still fits
    screen(view, *size)


def test_menu_layout_at_80x24() -> None:
    lines = screen(MenuView(MAIN)).splitlines()
    assert lines[0] == MAIN.title
    assert lines[1] == "-" * 80
    assert lines[2] == "2026-07-20 12:00:00 UTC"
    assert lines[4:9] == [
        "> d  Default boot",
        "  r  Refresh TOTP/HOTP",
        "  o  Options -->",
        "  s  System Info",
        "  p  Power Off",
    ]
    assert lines[-2] == "-" * 80
    assert lines[-1] == "Up/Down and Enter, or the key on the left: choose"
    assert "Esc" in screen(MenuView(OPTIONS)).splitlines()[-1]


def test_menu_at_40x12_shows_the_title_and_every_choice() -> None:
    text = screen(MenuView(MAIN), 40, 12)
    assert text.splitlines()[0] == MAIN.title
    for choice in MAIN.choices:
        assert f"{choice.key}  {choice.label}" in text


@pytest.mark.parametrize(
    ("tone", "word"), [(Tone.GOOD, "OK"), (Tone.WARNING, "WARNING"), (Tone.ERROR, "ERROR")]
)
def test_a_tone_is_a_word_in_the_header_and_a_colour(tone: Tone, word: str) -> None:
    for description in (
        Menu("TOTP failed", (), MAIN.choices, tone=tone),
        Page("TOTP failed", ("x",), tone=tone),
        Prompt("TOTP failed", (), "Code", tone=tone),
    ):
        view = make_view(description)
        header = screen(view).splitlines()[0]
        assert header.startswith("TOTP failed") and header.endswith(word)
        canvas = view.widget.render((80, 24), focus=True)
        attrs = {attr for attr, _cs, _run in next(iter(canvas.content()))}
        assert attrs == {tone.value}


def test_a_normal_tone_has_no_word() -> None:
    assert screen(MenuView(MAIN)).splitlines()[0] == MAIN.title


def test_everything_drawn_by_the_ui_is_ascii() -> None:
    menu = Menu("t", ("b",), MAIN.choices, tone=Tone.ERROR, timeout=3, back_event="b")
    for view in (
        MenuView(menu),
        PromptView(Prompt("t", ("b",), "l", min_length=2)),
        PageView(Page("t", ("a",) * 50)),
        ProgressView(Progress("t", "x")),
    ):
        for size in ((80, 24), (40, 12)):
            screen(view, *size).encode("ascii")


# --- menu keys ---------------------------------------------------------------------


def test_hot_keys_choose_at_once_and_case_matters() -> None:
    assert press(MenuView(MAIN), "p") == Done("power-off")
    assert press(MenuView(OPTIONS), "f") == Done("flash")
    assert press(MenuView(OPTIONS), "F") == Done("oem-reset")
    assert press(MenuView(MAIN), "P") is None


def test_arrows_and_vi_keys_move_and_enter_chooses() -> None:
    view = MenuView(MAIN)
    screen(view)  # keys that scroll need the size the list was drawn at
    assert press(view, "down", "down") is None
    assert focused_line(screen(view)) == "> o  Options -->"
    press(view, "k")
    assert focused_line(screen(view)) == "> r  Refresh TOTP/HOTP"
    press(view, "up", "up", "up")  # stops at the top
    assert focused_line(screen(view)) == "> d  Default boot"
    press(view, "end")
    assert focused_line(screen(view)) == "> p  Power Off"
    assert press(view, "home", "j", "enter") == Done("refresh")


def test_a_hot_key_beats_its_vi_meaning() -> None:
    assert press(MenuView(OPTIONS), "j") == Done("jump")


def test_digits_are_keys_only_when_a_choice_has_them() -> None:
    assert press(MenuView(OPTIONS), "1") == Done("one")
    view = MenuView(MAIN)
    for key in ("1", "2", "0", "x", "f1", "left", "q", " ", "tab"):
        assert press(view, key) is None
    assert focused_line(screen(view)) == "> d  Default boot"


def test_esc_returns_the_back_event_only_when_there_is_one() -> None:
    assert press(MenuView(OPTIONS), "esc") == Done("back")
    assert press(MenuView(MAIN), "esc") is None


def test_the_back_letter_is_esc_on_every_menu_that_has_a_back_event() -> None:
    assert press(MenuView(OPTIONS), "b") == Done("back")
    assert press(MenuView(MAIN), "b") is None
    assert "Esc or b: back" in screen(MenuView(OPTIONS))


def test_the_focus_shows_without_attributes_and_in_reverse_video() -> None:
    view = MenuView(MAIN)
    canvas = view.widget.render((80, 24), focus=True)
    rows = [
        (b"".join(run for _a, _c, run in row).decode(), {a for a, _c, _r in row})
        for row in canvas.content()
    ]
    focused = [attrs for text, attrs in rows if text.startswith("> d")]
    assert focused == [{"focus"}]
    assert all("focus" not in attrs for text, attrs in rows if text.startswith("  r"))


def test_a_long_body_scrolls_and_the_choices_stay_visible() -> None:
    view = MenuView(Menu("Long", LONG_BODY, MAIN.choices))
    first = screen(view)
    assert "Paragraph 0" in first and MORE_BELOW in first
    for choice in MAIN.choices:
        assert choice.label in first
    press(view, "page down", "page down")
    scrolled = screen(view)
    assert "Paragraph 0" not in scrolled and "(more above: PgUp)" in scrolled
    assert focused_line(scrolled) == "> d  Default boot"  # PgDn scrolls, it does not move
    small = screen(view, 40, 12)
    assert "> d  Default boot" in small


def test_many_choices_scroll_at_40x12() -> None:
    choices = tuple(Choice(chr(ord("a") + n), f"Choice {n}", f"e{n}") for n in range(14))
    view = MenuView(Menu("Many", ("Some text.",), choices))
    screen(view, 40, 12)
    press(view, *["down"] * 13)
    assert focused_line(screen(view, 40, 12)) == "> n  Choice 13"
    assert press(view, "enter") == Done("e13")


# --- countdown -----------------------------------------------------------------------

AUTO = Menu(
    "Automatic boot",
    ("Booting the default entry.",),
    MAIN.choices,
    timeout=3,
    timeout_event="default-boot",
    back_event="back",
)


def test_countdown_reaches_the_timeout_event_with_no_key() -> None:
    view = MenuView(AUTO)
    assert "Default boot in 3 s. Press any key to stop." in screen(view)
    assert view.tick() is None
    assert "Default boot in 2 s." in screen(view)
    assert view.tick() is None
    assert view.tick() == Done("default-boot")


def test_countdown_names_no_choice_when_its_event_is_none_of_them() -> None:
    view = MenuView(Menu("m", (), MAIN.choices, timeout=5, timeout_event="timeout"))
    assert "Automatic choice in 5 s." in screen(view)


@pytest.mark.parametrize("key", ["x", "esc", " ", "f1"])
def test_any_other_key_only_stops_the_countdown(key: str) -> None:
    view = MenuView(AUTO)
    assert press(view, key) is None
    assert not view.counting_down
    assert "Press any key" not in screen(view)
    assert all(view.tick() is None for _ in range(10))
    assert press(view, "esc") == Done("back")  # once stopped, keys act as usual


def test_enter_and_hot_keys_act_during_the_countdown() -> None:
    focus_on_auto = Menu("m", (), MAIN.choices, timeout=3, timeout_event="system-info")
    assert focused_line(screen(MenuView(focus_on_auto))) == "> s  System Info"
    assert press(MenuView(focus_on_auto), "enter") == Done("system-info")
    assert press(MenuView(AUTO), "p") == Done("power-off")
    view = MenuView(AUTO)
    screen(view)
    assert press(view, "down") is None  # moves, and stops the countdown
    assert not view.counting_down
    assert focused_line(screen(view)) == "> r  Refresh TOTP/HOTP"


def test_a_zero_timeout_ends_at_the_first_tick() -> None:
    view = MenuView(Menu("m", (), MAIN.choices, timeout=0, timeout_event="t"))
    assert view.tick() == Done("t")


# --- live lines ------------------------------------------------------------------------


def test_live_lines_are_shown_and_refreshed_each_tick() -> None:
    _, menu = counter_live()
    view = MenuView(menu)
    assert "tick 0" in screen(view)
    assert view.tick() is None
    text = screen(view)
    assert "tick 1" in text and "tick 0" not in text


def test_a_live_callback_that_raises_shows_unavailable_and_the_menu_goes_on() -> None:
    calls = itertools.count()

    def live() -> tuple[str, ...]:
        if next(calls) == 1:
            raise OSError("TPM busy")
        return ("TOTP 123456",)

    view = MenuView(Menu("m", (), MAIN.choices, live=live))
    assert "TOTP 123456" in screen(view)
    assert view.tick() is None
    assert "(unavailable)" in screen(view)
    view.tick()
    assert "TOTP 123456" in screen(view)
    assert press(view, "d") == Done("default-boot")


# --- prompts -----------------------------------------------------------------------------


def test_a_plain_prompt_returns_a_str() -> None:
    view = PromptView(Prompt("Hostname", ("Name this machine.",), "Name"))
    press(view, *"box")
    assert "Name: box" in screen(view)
    press(view, "backspace", "left", "X")  # a plain field is a normal editor
    assert press(view, "enter") == Done("bXo")


def test_a_secret_is_masked_returned_as_bytearray_and_the_field_is_emptied() -> None:
    view = PromptView(Prompt("Owner passphrase", (), "Passphrase", secret=True))
    press(view, *"hunter2é")
    text = screen(view)
    assert "Passphrase: ********" in text and "hunter" not in text
    assert view.field.edit_text == "*" * 8  # the Edit holds only the mask
    done = press(view, "enter")
    assert done == Done(bytearray("hunter2é".encode()))
    assert isinstance(done.value, bytearray)
    assert view.field.edit_text == "" and view.field.length == 0
    assert not any(view.field._buffer)  # wiped in place


def test_backspace_in_a_secret_removes_whole_characters() -> None:
    view = PromptView(Prompt("p", (), "PIN", secret=True))
    press(view, *"aé€", "backspace", "backspace", "b", "left", "home")
    assert view.field.edit_text == "**"
    assert press(view, "enter") == Done(bytearray(b"ab"))
    view = PromptView(Prompt("p", (), "PIN", secret=True))
    assert press(view, "backspace", "enter") == Done(bytearray())


def test_max_length_is_enforced() -> None:
    for secret in (False, True):
        view = PromptView(Prompt("p", (), "PIN", secret=secret, max_length=4))
        done = press(view, *"123456", "enter")
        assert done is not None and done.value in ("1234", bytearray(b"1234"))


def test_min_length_is_explained_and_asked_again() -> None:
    view = PromptView(Prompt("New PIN", (), "PIN", secret=True, min_length=6))
    assert "At least 6 characters." in screen(view)
    assert press(view, *"123", "enter") is None
    text = screen(view)
    assert "That is 3 characters; at least 6 are needed. Try again." in text
    assert "PIN:" in text.splitlines() and view.field.edit_text == ""  # emptied
    assert press(view, *"123456", "enter") == Done(bytearray(b"123456"))


def test_confirm_asks_twice_and_repeats_until_both_match() -> None:
    view = PromptView(Prompt("New passphrase", (), "Passphrase", secret=True, confirm=True))
    assert press(view, *"abc", "enter") is None
    assert "Passphrase (again):" in screen(view).splitlines()
    assert press(view, *"abd", "enter") is None
    text = screen(view)
    assert MISMATCH in text and "Passphrase:" in text.splitlines() and "(again)" not in text
    assert press(view, *"xyz", "enter") is None
    assert press(view, *"xyz", "enter") == Done(bytearray(b"xyz"))


def test_confirm_of_a_plain_answer() -> None:
    view = PromptView(Prompt("Label", (), "Label", confirm=True))
    assert press(view, *"ab", "enter", *"ab", "enter") == Done("ab")


def test_esc_cancels_and_wipes_a_first_entry() -> None:
    view = PromptView(Prompt("p", (), "PIN", secret=True, confirm=True))
    press(view, *"1234", "enter")
    first = view._first
    assert isinstance(first, bytearray) and first == b"1234"
    assert press(view, *"12", "esc") == Done(None)
    assert not any(first) and view.field.edit_text == ""


def test_a_long_prompt_text_scrolls_and_the_field_stays() -> None:
    view = PromptView(Prompt("p", LONG_BODY, "PIN"))
    for size in ((80, 24), (40, 12)):
        assert "PIN:" in screen(view, *size).splitlines()
    press(view, "page down")
    assert "Paragraph 0" not in screen(view)


# --- pages and progress ----------------------------------------------------------------------


def test_page_wraps_lines_and_scrolls() -> None:
    view = PageView(Page("System information", tuple(f"PCR {n}: {PCR_HEX}" for n in range(40))))
    text = screen(view, 40, 12)
    assert "PCR 0: " + PCR_HEX[:33] in text and PCR_HEX[33:] in text  # wrapped
    assert text.splitlines()[-1] == "Enter or Esc: continue"
    press(view, *["j"] * 200)
    assert "PCR 39" in screen(view, 40, 12)
    press(view, "home")
    assert "PCR 0:" in screen(view, 40, 12)
    press(view, " ", "page down", "end")
    assert "PCR 39" in screen(view, 40, 12)


@pytest.mark.parametrize("key", ["enter", "esc", "b", "q", "Q"])
def test_page_is_left_with(key: str) -> None:
    assert press(PageView(Page("p", ("x",))), key) == Done(None)
    assert press(PageView(Page("p", ("x",))), "x") is None


def test_preformatted_lines_are_clipped_not_wrapped() -> None:
    view = PageView(Page("Table", ("a" * 100, "b"), preformatted=True, footer="Done: Enter"))
    lines = screen(view).splitlines()
    assert lines[2] == "a" * 80 and lines[3] == "b"
    assert lines[-1] == "Done: Enter"


@pytest.mark.parametrize("unicode", [True, False])
def test_a_qr_code_is_drawn_whole_and_dark_on_light(unicode: bool) -> None:
    qr = qr_text(otpauth_uri(b"\x01" * 20, "owner"), unicode=unicode)
    lines = ("Scan this with your phone:", *qr, "", "Or type: ABCD EFGH")
    assert qr_rows(lines) == frozenset(range(1, len(qr) + 1))
    view = PageView(Page("Enrol", lines, preformatted=True))
    canvas = view.widget.render((80, 60), focus=True)
    rows = list(canvas.content())
    shown = [b"".join(r for _a, _c, r in row).decode().rstrip() for row in rows]
    start = shown.index(qr[1].rstrip())
    for offset, line in enumerate(qr[1:], start=1):
        row = rows[start + offset - 1]
        assert shown[start + offset - 1] == line.rstrip()
        assert {a for a, _c, _r in row} <= {"qr", "qr dark", None}
        assert row[0][0] in ("qr", "qr dark")


def test_qr_rows_ignores_text_and_tables() -> None:
    assert qr_rows(("#" * 30,)) == frozenset()  # one line is no code
    assert qr_rows((" " * 30, " " * 30)) == frozenset()  # blank lines neither
    assert qr_rows(("| a | b |", "| c | d |")) == frozenset()
    assert qr_rows(("## " * 10, "#" * 30, "short")) == frozenset({0, 1})


def test_progress_drops_every_key() -> None:
    view = ProgressView(Progress("Sealing", "Sealing the TOTP secret...", ("PCR 7",)))
    text = screen(view)
    assert text.splitlines()[0] == "Sealing"
    assert "Sealing the TOTP secret..." in text and "PCR 7" in text
    for key in ("enter", "esc", "d", "q", " "):
        assert view.keypress(key) is None
    assert view.tick() is None


def test_passphrase_limits_are_said_first_and_typing_past_them_is_refused_visibly() -> None:
    view = PromptView(
        Prompt("New passphrase", (), "Passphrase:", secret=True, min_length=8, max_length=10)
    )
    assert "8 to 10 characters." in screen(view)
    press(view, *"0123456789")
    assert "that key was not taken" not in screen(view)
    press(view, "x")
    assert "At most 10 characters: that key was not taken" in screen(view)
    assert view.field.length == 10
    press(view, "backspace")
    assert "8 to 10 characters." in screen(view)
    answer = press(view, "enter")
    assert answer is not None and answer.value == bytearray(b"012345678")


def test_a_byte_limit_refuses_a_letter_that_would_pass_it_visibly() -> None:
    view = PromptView(
        Prompt("Owner passphrase", (), "Passphrase:", secret=True, max_length=4, max_bytes=4)
    )
    press(view, *"abc", "\u00e9")  # an accented letter takes two bytes: 5 > 4
    assert "4 bytes" in screen(view) and view.field.length == 3
    answer = press(view, "enter")
    assert answer is not None and answer.value == bytearray(b"abc")


def test_a_progress_screen_refreshes_its_live_lines_and_ignores_keys() -> None:
    count = itertools.count()
    view = ProgressView(
        Progress("Measuring", "Loading drivers...", live=lambda: (f"TOTP left {next(count)}",))
    )
    assert "TOTP left 0" in screen(view)
    assert view.tick() is None
    text = screen(view)
    assert "TOTP left 1" in text and "TOTP left 0" not in text
    assert press(view, "enter") is None


def test_a_progress_live_line_that_fails_leaves_the_screen_up() -> None:
    def live() -> tuple[str, ...]:
        raise OSError("no clock")

    view = ProgressView(Progress("Measuring", "Loading drivers...", live=live))
    assert "Loading drivers" in screen(view)
    assert view.tick() is None
