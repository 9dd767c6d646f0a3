"""The first UI's main menu (runtime.ui.app, screens): widgets rendered to text,
keys fed to the controller, and one run on a pty. Dead once startup uses run_ui."""

from __future__ import annotations

import os
import select
import termios
import threading
import time

import pyte
import pytest
import urwid
import urwid.raw_display

from runtime.ui import MenuChoice, MenuController, SystemInfo, prepare_console, run_main_menu
from runtime.ui.screens import MainMenu, info_screen, measurements_screen

TITLE = "heads-runtime 0.1.0 - board qemu-swtpm"
PCR_HEX = "3d458cfe55cc03ea1f443f1562beec8df51c75e14a9fcf9a7234a13f198e7969"
INFO = SystemInfo(
    title=TITLE,
    rows=(
        ("Kernel", "6.1.0-13-amd64"),
        ("Memory", "512 MiB"),
        ("TPM", "2.0, swtpm"),
        *((f"PCR {n}", PCR_HEX) for n in range(10)),
        ("Uptime", "3.2 s"),
    ),
)
MEASUREMENTS = ("All 10 PCRs match the event log.", [("PCR 9", "matches the event log")])
STATUS = "All measurements match the TPM."
ENTRIES = [
    "1  System information",
    "2  Measurements (event log replay)",
    "3  Reboot",
    "4  Power off",
]


def screen_text(widget: object, size: tuple[int, int] = (80, 24), focus: bool = True) -> str:
    canvas = widget.render(size, focus=focus)  # type: ignore[attr-defined]
    lines = [line.decode() for line in canvas.text]
    assert len(lines) == size[1]
    assert all(len(line) == size[0] for line in lines)
    return "\n".join(line.rstrip() for line in lines)


def controller(status: str = STATUS) -> MenuController:
    return MenuController(INFO, MEASUREMENTS, status)


def press(ctl: MenuController, *keys: str) -> MenuChoice | None:
    result = None
    for key in keys:
        result = ctl.keypress(key)
    return result


def focused_line(text: str) -> str:
    marked = [line for line in text.splitlines() if line.startswith("> ")]
    assert len(marked) == 1, text
    return marked[0][2:]


# --- rendering ---------------------------------------------------------------


def test_main_menu_shows_title_status_entries_and_hint() -> None:
    text = screen_text(MainMenu(TITLE, STATUS))
    lines = text.splitlines()
    assert lines[0] == TITLE
    assert STATUS in text
    for entry in ENTRIES:
        assert entry in text
    assert lines[-1] == "Up/Down or 1-4 to choose, Enter to select"
    assert text.index(STATUS) < text.index(ENTRIES[0])
    assert focused_line(text) == ENTRIES[0]
    text.encode("ascii")  # nothing but what the caller gave is outside ASCII


def test_unfocused_render_and_no_status_line() -> None:
    text = screen_text(MainMenu(TITLE), focus=False)
    assert "> " not in text
    assert text.splitlines()[2] == "  " + ENTRIES[0]


def test_non_ascii_title_renders() -> None:
    assert "board" in screen_text(MainMenu("heads-runtime 0.1.0 — board qemu-swtpm"))


def test_long_values_wrap() -> None:
    text = screen_text(info_screen(INFO), (40, 12))
    assert "PCR 0: " + PCR_HEX[:33] in text
    assert PCR_HEX[33:] in text
    huge = SystemInfo("t", (("Blob", "x" * 2000), ("Words", "word " * 500)))
    screen_text(info_screen(huge), (80, 24))


@pytest.mark.parametrize("size", [(40, 12), (20, 4), (1, 1), (80, 3)])
def test_small_sizes_render(size: tuple[int, int]) -> None:
    for widget in (MainMenu(TITLE, STATUS * 5), info_screen(INFO)):
        screen_text(widget, size)
    text = screen_text(MainMenu(TITLE, STATUS), (40, 12))
    for entry in ENTRIES:
        assert entry in text


def test_empty_screens_render() -> None:
    assert "(nothing to show)" in screen_text(info_screen(SystemInfo("t", ())))
    assert "Nothing measured" in screen_text(measurements_screen("Nothing measured", []))


# --- keys --------------------------------------------------------------------


def test_enter_on_entry_1_opens_system_info_and_q_returns() -> None:
    ctl = controller()
    assert press(ctl, "enter") is None
    text = screen_text(ctl.widget)
    assert text.splitlines()[0] == "System information"
    assert "Kernel: 6.1.0-13-amd64" in text
    assert "Memory: 512 MiB" in text
    assert "PCR 0: " + PCR_HEX in text
    assert text.splitlines()[-1] == "Esc or q: back"
    assert press(ctl, "q") is None
    assert ctl.on_main_menu
    assert focused_line(screen_text(ctl.widget)) == ENTRIES[0]


def test_down_up_and_vi_keys_move_the_focus() -> None:
    ctl = controller()
    press(ctl, "down")
    assert focused_line(screen_text(ctl.widget)) == ENTRIES[1]
    press(ctl, "up")
    assert focused_line(screen_text(ctl.widget)) == ENTRIES[0]
    press(ctl, "j", "j", "k")
    assert focused_line(screen_text(ctl.widget)) == ENTRIES[1]
    press(ctl, "up", "up", "up")  # stops at the top
    assert focused_line(screen_text(ctl.widget)) == ENTRIES[0]


def test_down_enter_opens_measurements_and_every_back_key_returns() -> None:
    ctl = controller()
    for back in ("esc", "q", "backspace"):
        assert press(ctl, "down", "enter") is None
        text = screen_text(ctl.widget)
        assert text.splitlines()[0] == "Measurements (event log replay)"
        assert "All 10 PCRs match the event log." in text
        assert "PCR 9: matches the event log" in text
        press(ctl, back)
        assert ctl.on_main_menu
        press(ctl, "up")


def test_digits_jump_and_select() -> None:
    ctl = controller()
    assert press(ctl, "2") is None
    assert "PCR 9: matches the event log" in screen_text(ctl.widget)
    press(ctl, "q")
    assert focused_line(screen_text(ctl.widget)) == ENTRIES[1]  # focus kept on the entry
    assert press(ctl, "1") is None
    assert "Kernel: 6.1.0-13-amd64" in screen_text(ctl.widget)


def test_4_powers_off_and_3_reboots() -> None:
    assert press(controller(), "4") is MenuChoice.POWER_OFF
    assert press(controller(), "3") is MenuChoice.REBOOT
    assert press(controller(), "down", "down", "enter") is MenuChoice.REBOOT
    assert press(controller(), "down", "down", "down", "enter") is MenuChoice.POWER_OFF


def test_other_keys_are_ignored() -> None:
    ctl = controller()
    for key in ("0", "5", "9", "q", "esc", "x", "f1", "left", "²"):
        assert press(ctl, key) is None
        assert ctl.on_main_menu
    assert focused_line(screen_text(ctl.widget)) == ENTRIES[0]
    press(ctl, "1")
    assert press(ctl, "4", "3", "enter") is None  # digits do not select from a sub-screen
    assert not ctl.on_main_menu


def test_sub_screen_scrolls_and_reopens_at_the_top() -> None:
    rows = tuple((f"Row {n}", "value") for n in range(60))
    ctl = MenuController(SystemInfo(TITLE, rows), MEASUREMENTS, STATUS)
    press(ctl, "1")
    assert "Row 0: value" in screen_text(ctl.widget)
    press(ctl, *["j"] * 50)
    text = screen_text(ctl.widget)
    assert "Row 0: value" not in text
    assert "Row 59: value" in text
    press(ctl, "q", "1")
    assert "Row 0: value" in screen_text(ctl.widget)


def test_choice_values() -> None:
    assert str(MenuChoice.POWER_OFF) == "power-off"
    assert isinstance(MenuChoice.REBOOT, str)
    assert MenuChoice("reboot") is MenuChoice.REBOOT
    assert {c.value for c in MenuChoice} >= {"system-info", "measurements", "power-off", "reboot"}


# --- the real loop on a pty --------------------------------------------------

STEP_TIMEOUT = 10.0
Script = list[tuple[str, bytes]]


class PtyTerminal:
    """A pty whose far end is read into pyte by a thread, which types as the screen asks.

    Each step waits until its text is on the emulated screen, then sends its keys, as the
    end-to-end tests do over the serial line. A step that times out sends "q4" so the loop
    still ends (with POWER_OFF) and the test fails instead of hanging.
    """

    def __init__(self, script: Script) -> None:
        self.master, self.slave = os.openpty()
        prepare_console(self.slave, 80, 24)
        self.display = pyte.Screen(80, 24)
        self.timed_out: str | None = None
        self._stream = pyte.ByteStream(self.display)
        self._script = list(script)
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def shows(self, text: str) -> bool:
        return any(text in line for line in self.display.display)

    def _drain(self) -> None:
        deadline = time.monotonic() + STEP_TIMEOUT
        while True:
            ready, _, _ = select.select([self.master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(self.master, 4096)
                except OSError:  # EIO once the slave side is closed
                    return
                self._stream.feed(chunk)
            if self._script and self.shows(self._script[0][0]):
                os.write(self.master, self._script.pop(0)[1])
                deadline = time.monotonic() + STEP_TIMEOUT
            elif self._script and time.monotonic() > deadline:
                self.timed_out = self._script[0][0]
                self._script.clear()
                os.write(self.master, b"q4")

    def close(self) -> None:
        os.close(self.slave)
        self._thread.join(STEP_TIMEOUT)
        os.close(self.master)


def run_on_pty(
    monkeypatch: pytest.MonkeyPatch, script: Script
) -> tuple[MenuChoice | Exception, PtyTerminal]:
    """run_main_menu on a pty; the choice or the exception it raised, and the terminal."""
    monkeypatch.setenv("TERM", "linux")
    term = PtyTerminal(script)
    before = termios.tcgetattr(term.slave)
    result: MenuChoice | Exception
    try:
        with open(term.slave, "w", encoding="utf-8", closefd=False) as tty:
            screen = urwid.raw_display.Screen(input=tty, output=tty)
            result = run_main_menu(INFO, MEASUREMENTS, STATUS, screen=screen)
    except Exception as exc:
        result = exc
    after = termios.tcgetattr(term.slave)
    term.close()
    assert after == before  # the terminal is given back as it was (cooked mode, echo)
    assert term.timed_out is None, f"never shown: {term.timed_out!r}"
    return result, term


def test_run_main_menu_on_a_pty(monkeypatch: pytest.MonkeyPatch) -> None:
    script = [
        ("Enter to select", b"1"),
        ("Kernel: 6.1.0-13-amd64", b"\x1b"),  # a lone Esc: urwid waits briefly for more
        ("Enter to select", b"\x1b[B\x1b[B"),  # Down, Down
        ("> 3  Reboot", b"\r"),
    ]
    result, term = run_on_pty(monkeypatch, script)
    assert result is MenuChoice.REBOOT
    lines = [line.rstrip() for line in term.display.display]
    assert lines[0] == TITLE
    assert lines[-1] == "Up/Down or 1-4 to choose, Enter to select"
    row = lines.index("> 3  Reboot")
    assert term.display.buffer[row][0].reverse  # reverse video as well as the marker
    assert not term.display.buffer[row + 1][0].reverse


def test_run_main_menu_restores_the_terminal_on_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: MenuController, key: str, size: object = None) -> None:
        raise RuntimeError("broken key handler")

    monkeypatch.setattr(MenuController, "keypress", broken)
    result, _ = run_on_pty(monkeypatch, [("Enter to select", b"4")])
    assert isinstance(result, RuntimeError)
    assert str(result) == "broken key handler"


def test_update_refreshes_the_menu_and_an_open_page() -> None:
    ctl = MenuController(INFO, ("Checking...", ()), "Loading drivers...")
    ctl.keypress("2")  # the measurements page, still empty
    assert "Checking..." in screen_text(ctl.widget)
    ctl.update(measurements=("All match.", (("PCR 9", "matches the logs"),)), status="Ready.")
    page = screen_text(ctl.widget)
    assert "All match." in page and "PCR 9: matches the logs" in page
    ctl.keypress("esc")
    menu = screen_text(ctl.widget)
    assert "Ready." in menu and "Loading drivers" not in menu
    assert "> 2  Measurements" in menu  # the focus stayed where it was
