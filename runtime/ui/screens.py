"""The menu's screens as urwid widgets, with no terminal I/O (tests render them to text).

Everything shown is plain ASCII except what callers pass in: serial terminals may have
no Unicode, and the end-to-end tests read the screen back as text. Focus is shown by a
'>' marker as well as reverse video, so it is visible on a monochrome terminal and in a
screen dump without attributes.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import urwid


class MenuChoice(enum.StrEnum):
    """What the user picked in the main menu."""

    SYSTEM_INFO = "system-info"
    MEASUREMENTS = "measurements"
    REBOOT = "reboot"
    POWER_OFF = "power-off"


@dataclass(frozen=True)
class SystemInfo:
    """The system information screen: a title and (label, value) rows."""

    title: str
    rows: tuple[tuple[str, str], ...]


# Menu order; an entry's number is its position + 1, and that digit selects it.
MENU_ENTRIES: tuple[tuple[MenuChoice, str], ...] = (
    (MenuChoice.SYSTEM_INFO, "System information"),
    (MenuChoice.MEASUREMENTS, "Measurements (event log replay)"),
    (MenuChoice.REBOOT, "Reboot"),
    (MenuChoice.POWER_OFF, "Power off"),
)
MENU_HINT = f"Up/Down or 1-{len(MENU_ENTRIES)} to choose, Enter to select"
BACK_HINT = "Esc or q: back"
INFO_HEADING = "System information"
MEASUREMENTS_HEADING = "Measurements (event log replay)"
FOCUS_MARKER = "> "

# (name, 16-colour foreground, background, monochrome). "standout" is SGR 7, reverse
# video on the terminal's own colours, so it reads the same on colour and mono terminals.
PALETTE: list[tuple[str, str, str, str]] = [
    ("header", "default,bold", "default", "bold"),
    ("focus", "default,standout", "default", "standout"),
]


class MenuEntry(urwid.WidgetWrap):  # type: ignore[misc]
    """One numbered menu line; drawn with the '>' marker and reverse video when focused."""

    def __init__(self, number: int, label: str, choice: MenuChoice) -> None:
        self.choice = choice
        line = f"{number}  {label}"
        # Both texts have the same width, so they wrap to the same number of rows.
        self._focused = urwid.AttrMap(urwid.Text(FOCUS_MARKER + line), "focus")
        super().__init__(urwid.Text(" " * len(FOCUS_MARKER) + line))

    def selectable(self) -> bool:
        return True

    def keypress(self, size: tuple[int], key: str) -> str:
        return key  # the ListBox moves the focus; the controller acts on Enter

    def render(self, size: tuple[int], focus: bool = False) -> Any:
        if focus:
            return self._focused.render(size, focus=True)
        return super().render(size, focus=False)


class MainMenu(urwid.WidgetWrap):  # type: ignore[misc]
    """Title, optional status line, the numbered entries, and the key hint."""

    def __init__(self, title: str, status: str = "") -> None:
        self._entries = [
            MenuEntry(number, label, choice)
            for number, (choice, label) in enumerate(MENU_ENTRIES, start=1)
        ]
        self._list = urwid.ListBox(urwid.SimpleFocusListWalker(self._entries))
        parts: list[Any] = []
        if status:
            parts += [("pack", urwid.Text(status)), ("pack", urwid.Divider())]
        parts.append(self._list)  # the Pile focuses it: the only selectable part
        super().__init__(_framed(title, urwid.Pile(parts), MENU_HINT))

    @property
    def focused_choice(self) -> MenuChoice:
        entry: MenuEntry = self._list.focus
        return entry.choice

    def focus_number(self, number: int) -> MenuChoice | None:
        """Move the focus to entry ``number`` (1-based); its choice, or None if out of range."""
        if not 1 <= number <= len(self._entries):
            return None
        self._list.set_focus(number - 1)
        return self._entries[number - 1].choice


def info_screen(info: SystemInfo) -> Any:
    """The system information rows as "label: value" lines, scrollable."""
    return text_screen(INFO_HEADING, [f"{label}: {value}" for label, value in info.rows])


def measurements_screen(summary: str, rows: Sequence[tuple[str, str]]) -> Any:
    """The measurement summary, a blank line, then one "label: value" line per row."""
    return text_screen(MEASUREMENTS_HEADING, [summary, "", *(f"{k}: {v}" for k, v in rows)])


def text_screen(heading: str, lines: Sequence[str]) -> Any:
    """A titled, scrollable list of wrapped lines with the "back" hint."""
    # Text wraps at spaces and breaks words longer than the width (64-hex-digit PCRs).
    texts = [urwid.Text(line) for line in lines] or [urwid.Text("(nothing to show)")]
    return _framed(heading, urwid.ListBox(urwid.SimpleFocusListWalker(texts)), BACK_HINT)


def _framed(heading: str, body: Any, hint: str) -> Any:
    header = urwid.Pile([urwid.AttrMap(urwid.Text(heading), "header"), urwid.Divider("-")])
    footer = urwid.Pile([urwid.Divider("-"), urwid.Text(hint)])
    return urwid.Frame(body, header=header, footer=footer)
