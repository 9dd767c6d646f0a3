"""A Menu: text, live lines, choices, and an optional countdown.

Keys: Up/Down (j/k when they are not hot keys) and Home/End move the focus,
Enter takes the focused choice, a hot key takes its choice at once (case
matters: 'f' and 'F' differ), PgUp/PgDn scroll a long text, Esc and the
Back letter (runtime.state.keys) give the back event when the menu has one.
Digits are hot keys only if a choice says so.

Countdown: the first key stops it. Enter, a hot key or a move also acts as
usual (Enter takes the focused choice now, which starts on the automatic one);
any other key, Esc included, only stops it, so someone pressing "any key" to
stay is never sent elsewhere.
"""

from __future__ import annotations

from typing import Any

import urwid

from runtime.state.keys import BACK
from runtime.state.view import Choice, Menu
from runtime.ui.views import VI_KEYS, Done
from runtime.ui.widgets import ScrollBody, SplitBox, choice_list, footer, header, paragraphs

UNAVAILABLE = "(unavailable)"
_MOVE_KEYS = frozenset({"up", "down", "home", "end"})
_PAGE_KEYS = frozenset({"page up", "page down"})


def menu_hint(menu: Menu) -> str:
    hint = "Up/Down and Enter, or the key on the left: choose"
    return hint + (f"   Esc or {BACK}: back" if menu.back_event is not None else "")


class MenuView:
    def __init__(self, menu: Menu) -> None:
        self._menu = menu
        # The first of two choices with one key wins, as the first line is the one seen.
        self._hot: dict[str, str] = {}
        for choice in menu.choices:
            self._hot.setdefault(choice.key, choice.event)
        self._live = urwid.Text("") if menu.live is not None else None
        texts = paragraphs(menu.body) + ([self._live] if self._live is not None else [])
        if texts:
            texts.append(urwid.Divider())
        self._choices = choice_list(menu.choices, _first_focus(menu))
        self._split = SplitBox(ScrollBody(texts), self._choices)
        self._left = max(menu.timeout, 0) if menu.timeout is not None else None
        self._countdown = urwid.Text(self._countdown_text())
        self._footer = footer(menu_hint(menu))
        if self._left is not None:
            self._footer.contents.insert(0, (self._countdown, self._footer.options()))
        self._widget = urwid.Frame(
            self._split, header=header(menu.title, menu.tone), footer=self._footer
        )
        self.refresh_live()

    @property
    def widget(self) -> Any:
        return self._widget

    @property
    def counting_down(self) -> bool:
        return self._left is not None

    @property
    def focused(self) -> Choice | None:
        line = self._choices.focus
        return None if line is None else line.choice  # type: ignore[no-any-return]

    def keypress(self, key: str) -> Done | None:
        if self._left is not None:
            self._stop_countdown()
            if key not in self._hot and key != "enter" and _move(key) not in _MOVE_KEYS:
                return None
        if key in self._hot:
            return Done(self._hot[key])
        if key == "enter":
            focused = self.focused
            return None if focused is None else Done(focused.event)
        if key in ("esc", BACK):  # the key scheme: Back is Esc or one letter everywhere
            return None if self._menu.back_event is None else Done(self._menu.back_event)
        key = _move(key)
        if key in _MOVE_KEYS:
            self._split.keypress_bottom(key)
        elif key in _PAGE_KEYS:
            self._split.top.scroll(key)
        return None

    def tick(self) -> Done | None:
        self.refresh_live()
        if self._left is None:
            return None
        self._left -= 1
        if self._left <= 0:
            return Done(self._menu.timeout_event)
        self._countdown.set_text(self._countdown_text())
        return None

    def refresh_live(self) -> None:
        if self._live is None or self._menu.live is None:
            return
        try:
            text = "\n".join(self._menu.live())
        except Exception:  # a clock or a TPM read failing must not end the menu
            text = UNAVAILABLE
        self._live.set_text(text)

    def _stop_countdown(self) -> None:
        self._left = None
        del self._footer.contents[0]

    def _countdown_text(self) -> str:
        automatic = next(
            (c for c in self._menu.choices if c.event == self._menu.timeout_event), None
        )
        what = "Automatic choice" if automatic is None else automatic.label
        return f"{what} in {self._left} s. Press any key to stop."


def _move(key: str) -> str:
    return VI_KEYS.get(key, key)


def _first_focus(menu: Menu) -> int:
    """The automatic choice when there is a countdown (Enter takes it now), else the first."""
    if menu.timeout is not None:
        for index, choice in enumerate(menu.choices):
            if choice.event == menu.timeout_event:
                return index
    return 0
