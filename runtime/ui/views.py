"""What a view is (a widget, and what keys and seconds do to it), and the two
simplest: a Page to read and a Progress line.

A view is pure: it is given key names and ticks and says when it is done.
No terminal and no loop, so tests drive it directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import urwid

from runtime.state.keys import BACK
from runtime.state.view import Page, Progress
from runtime.ui.widgets import ScrollBody, footer, header, paragraphs, preformatted

#: vi keys, for terminals whose arrow-key escape sequences get mangled on the way.
VI_KEYS = {"k": "up", "j": "down"}
SCROLL_KEYS = frozenset({"up", "down", "page up", "page down", "home", "end"})
PAGE_LEAVE_KEYS = frozenset({"enter", "esc", BACK, "q", "Q"})
_PAGE_ALIASES = {" ": "page down", **VI_KEYS}  # Space pages down, as in less


@dataclass(frozen=True)
class Done:
    """The answer a view gives back to the caller of the Ui (None is an answer:
    a cancelled prompt, a page left)."""

    value: str | bytearray | None


class View(Protocol):
    @property
    def widget(self) -> Any:
        """The box widget drawn for this view."""
        ...

    def keypress(self, key: str) -> Done | None:
        """Handle one urwid key name; Done once the view has its answer."""
        ...

    def tick(self) -> Done | None:
        """Called once a second while the view waits for an answer."""
        ...


class PageView:
    """Text to read: scrolls with the arrows, j/k, PgUp/PgDn (Space too),
    Home/End; Enter, Esc, b or q leaves it."""

    def __init__(self, page: Page) -> None:
        lines = preformatted(page.lines) if page.preformatted else paragraphs(page.lines)
        self._body = ScrollBody(lines or [urwid.Text("(nothing to show)")])
        self._widget = urwid.Frame(
            self._body, header=header(page.title, page.tone), footer=footer(page.footer)
        )

    @property
    def widget(self) -> Any:
        return self._widget

    def keypress(self, key: str) -> Done | None:
        if key in PAGE_LEAVE_KEYS:
            return Done(None)
        key = _PAGE_ALIASES.get(key, key)
        if key in SCROLL_KEYS:
            self._body.scroll(key)
        return None

    def tick(self) -> Done | None:
        return None


class ProgressView:
    """Shown while a step runs. Every key is dropped: one typed now must not
    act on the screen that comes next."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._live = urwid.Text("") if progress.live is not None else None
        texts = paragraphs((progress.text, *progress.lines))
        body = ScrollBody(texts + ([self._live] if self._live is not None else []))
        self._widget = urwid.Frame(body, header=header(progress.title))
        self.tick()

    @property
    def widget(self) -> Any:
        return self._widget

    def keypress(self, key: str) -> Done | None:
        return None

    def tick(self) -> Done | None:
        if self._live is not None and self._progress.live is not None:
            try:
                text = "\n".join(self._progress.live())
            except Exception:  # a clock failing must not end the start
                text = ""
            self._live.set_text(text)
        return None
