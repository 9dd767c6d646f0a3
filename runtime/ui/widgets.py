"""The pieces every screen is built from: palette, header, footer, scrolling
text, menu lines, and the layout that splits a menu between text and choices.

Frames are ASCII ('-' dividers) so a screen dump reads the same everywhere.
Focus is a '>' marker as well as reverse video, and a tone is a word as well
as a colour: both survive a monochrome terminal and a dump without attributes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

import urwid

from runtime.state.view import Choice, Tone

FOCUS_MARKER = "> "
NO_MARKER = "  "
MORE_ABOVE = "(more above: PgUp)"
MORE_BELOW = "(more below: PgDn)"

#: The word shown after the title: the colour alone says nothing on a mono terminal.
TONE_WORDS = {Tone.GOOD: "OK", Tone.WARNING: "WARNING", Tone.ERROR: "ERROR"}
_TONE_ATTRS = {
    Tone.NORMAL: "header",
    Tone.GOOD: "good",
    Tone.WARNING: "warning",
    Tone.ERROR: "error",
}

# (name, 16-colour foreground, background, monochrome). Background colours are
# the eight a 16-colour terminal (TERM=linux) allows, hence "brown" for yellow.
# Only the header line and the QR code are coloured: the rest keeps the
# terminal's own colours so it reads on any terminal.
PALETTE: list[tuple[str, str, str, str]] = [
    ("header", "default,bold", "default", "bold"),
    ("focus", "default,standout", "default", "standout"),
    ("good", "black", "dark green", "standout"),
    ("warning", "black", "brown", "standout"),
    ("error", "white,bold", "dark red", "standout"),
    # Dark modules on a light ground whatever the terminal's colours: phone
    # scanners expect that polarity, and a quiet zone that is light.
    ("qr", "black", "light gray", "standout"),
    ("qr dark", "black", "black", "default"),
]

# Characters a QR code from runtime.secrets.otp_enrol.qr_text is made of.
_QR_CHARS = frozenset(" #\u2580\u2584\u2588")
_QR_MIN_WIDTH = 21  # the smallest QR code (version 1) has 21 modules a side


def header(title: str, tone: Tone = Tone.NORMAL) -> Any:
    """The title line (the tone's word at its right, the tone's colour) and a divider."""
    word = TONE_WORDS.get(tone)
    line: Any = urwid.Text(title)
    if word is not None:
        line = urwid.Columns([line, ("pack", urwid.Text("  " + word))])
    return urwid.Pile([urwid.AttrMap(line, _TONE_ATTRS[tone]), urwid.Divider("-")])


def footer(*lines: str) -> Any:
    """A divider and the key hint(s) under it."""
    return urwid.Pile([urwid.Divider("-"), *(urwid.Text(line) for line in lines)])


def paragraphs(texts: Iterable[str]) -> list[Any]:
    """Wrapped texts (a word longer than the width is broken, as a hash must be)."""
    return [urwid.Text(text) for text in texts]


class ScrollBody(urwid.ListBox):  # type: ignore[misc]
    """Texts that scroll (arrows, PgUp/PgDn, Home/End) and say when more is
    hidden above or below. Remembers the size it was last drawn at, because a
    ListBox needs it to scroll and keys reach it without one."""

    def __init__(self, widgets: Iterable[Any]) -> None:
        super().__init__(urwid.SimpleFocusListWalker(list(widgets)))
        self.last_size: tuple[int, int] | None = None

    def scroll(self, key: str) -> None:
        if self.last_size is not None:
            self.keypress(self.last_size, key)

    def render(self, size: tuple[int, int], focus: bool = False) -> Any:
        self.last_size = size
        canvas = super().render(size, focus)
        maxcol, maxrow = size
        if maxrow < 3:  # no room for a marker beside what it marks
            return canvas
        ends = self.ends_visible(size)
        marks = [
            (text, row)
            for text, row, end in ((MORE_ABOVE, 0, "top"), (MORE_BELOW, maxrow - 1, "bottom"))
            if end not in ends
        ]
        if not marks:
            return canvas
        canvas = urwid.CompositeCanvas(canvas)
        for text, row in marks:
            # Over the right end of the row only: a QR code at the left stays whole.
            width = min(len(text), maxcol)
            mark = urwid.CompositeCanvas(urwid.Text(text, wrap="clip").render((width,)))
            canvas.overlay(mark, maxcol - width, row)
        return canvas


class ChoiceLine(urwid.WidgetWrap):  # type: ignore[misc]
    """'  k  Label', or '> k  Label' in reverse video when focused. A label that
    wraps continues under itself, not under the key."""

    def __init__(self, choice: Choice) -> None:
        self.choice = choice
        self._focused = urwid.AttrMap(self._line(FOCUS_MARKER), "focus")
        super().__init__(self._line(NO_MARKER))

    def _line(self, marker: str) -> Any:
        key = urwid.Text(f"{marker}{self.choice.key}  ", wrap="clip")
        return urwid.Columns([("pack", key), urwid.Text(self.choice.label)])

    def selectable(self) -> bool:
        return True

    def keypress(self, size: tuple[int], key: str) -> str:
        return key  # the ListBox moves the focus; the menu acts on Enter

    def render(self, size: tuple[int], focus: bool = False) -> Any:
        if focus:
            return self._focused.render(size, focus=True)
        return super().render(size, focus=False)


def choice_list(choices: Sequence[Choice], focus: int = 0) -> Any:
    lines = [ChoiceLine(choice) for choice in choices]
    walker = urwid.SimpleFocusListWalker(lines)
    if lines:
        walker.set_focus(focus)
    return urwid.ListBox(walker)


class SplitBox(urwid.Widget):  # type: ignore[misc]
    """Scrolling text above a list (a menu's choices, a prompt's field).

    When both fit, the list follows the text and blank rows fill the rest.
    When they do not, the list keeps what it needs up to two thirds of the
    rows and the text scrolls in the remainder: the choices must stay visible.
    """

    _sizing = frozenset(["box"])
    _selectable = True
    # The split depends on the size, and the sizes are remembered for keys.
    no_cache: ClassVar[list[str]] = ["render"]

    def __init__(self, top: ScrollBody, bottom: Any) -> None:
        super().__init__()
        self.top = top
        self.bottom = bottom
        self.bottom_size: tuple[int, int] | None = None

    def split(self, size: tuple[int, int]) -> tuple[int, int]:
        """(rows for the text, rows for the list) at ``size``."""
        maxcol, maxrow = size
        want_top = _rows(self.top.body, maxcol)
        want_bottom = _rows(self.bottom.body, maxcol)
        if want_top + want_bottom <= maxrow:
            return want_top, want_bottom
        bottom = min(want_bottom, max(maxrow - want_top, maxrow - maxrow // 3))
        return maxrow - bottom, bottom

    def render(self, size: tuple[int, int], focus: bool = False) -> Any:
        maxcol, maxrow = size
        top, bottom = self.split(size)
        self.bottom_size = (maxcol, bottom) if bottom else None
        parts = []
        if top:
            parts.append((self.top.render((maxcol, top), focus=False), None, False))
        if bottom:
            parts.append((self.bottom.render((maxcol, bottom), focus=focus), None, True))
        if maxrow - top - bottom:
            fill = urwid.SolidFill(" ").render((maxcol, maxrow - top - bottom))
            parts.append((fill, None, False))
        if not parts:
            return urwid.SolidCanvas(" ", maxcol, maxrow)
        return urwid.CanvasCombine(parts)

    def keypress_bottom(self, key: str) -> None:
        if self.bottom_size is not None:
            self.bottom.keypress(self.bottom_size, key)


def _rows(widgets: Iterable[Any], maxcol: int) -> int:
    return sum(widget.rows((maxcol,)) for widget in widgets)


def preformatted(lines: Sequence[str]) -> list[Any]:
    """Lines shown as they are: clipped, never wrapped, so a QR code or a table
    keeps its shape. The rows of a QR code are drawn dark-on-light."""
    qr = qr_rows(lines)
    return [
        _qr_line(line) if index in qr else urwid.Text(line, wrap="clip")
        for index, line in enumerate(lines)
    ]


def qr_rows(lines: Sequence[str]) -> frozenset[int]:
    """Indexes of the lines that are a QR code drawn by otp_enrol.qr_text: runs
    of at least two lines of one width (21 or more) made only of its characters.
    Page carries no "this is a QR code" flag, and these runs are unmistakable."""
    found: set[int] = set()
    start = 0
    for end in range(1, len(lines) + 1):
        if (
            end < len(lines)
            and _qr_like(lines[start])
            and _qr_like(lines[end])
            and len(lines[end]) == len(lines[start])
        ):
            continue
        run = range(start, end)
        if len(run) >= 2 and _qr_like(lines[start]) and any(lines[i].strip() for i in run):
            found.update(run)
        start = end
    return frozenset(found)


def _qr_like(line: str) -> bool:
    return len(line) >= _QR_MIN_WIDTH and set(line) <= _QR_CHARS


def _qr_line(line: str) -> Any:
    # Half blocks draw dark modules in the foreground colour; in the ASCII
    # form ('##' a module) the dark cells are given a dark background as well.
    markup = [("qr dark" if char == "#" else "qr", char) for char in line]
    return urwid.Text(markup, wrap="clip")
