"""A Prompt: a one-line answer, asked twice when it must be confirmed.

Enter accepts, Esc cancels (None), PgUp/PgDn scroll a long text, every other
key edits the field. A secret is taken out of the field as a bytearray the
moment Enter is pressed; the field then shows nothing, and a first entry kept
for confirmation is wiped when the second differs or the prompt is left.
"""

from __future__ import annotations

from typing import Any

import urwid

from runtime.state.view import Prompt
from runtime.ui.fields import make_field
from runtime.ui.views import Done
from runtime.ui.widgets import ScrollBody, SplitBox, footer, header, paragraphs

PROMPT_HINT = "Enter: accept   Esc: cancel"
MISMATCH = "The two entries differ, try again."
AGAIN = "Type it again to confirm."


def caption(label: str) -> str:
    return f"{label} " if label.endswith((":", "?")) else f"{label}: "


#: A maximum at or above this is no limit a person meets: it is not stated.
STATED_MAX_LENGTH = 256


def too_long(prompt: Prompt) -> str:
    limit = f"At most {prompt.max_length} characters"
    if prompt.max_bytes is not None:
        limit += f" ({prompt.max_bytes} bytes: an accented letter takes two)"
    return f"{limit}: that key was not taken. Enter accepts what is typed."


def too_short(prompt: Prompt, length: int) -> str:
    return f"That is {length} characters; at least {prompt.min_length} are needed. Try again."


class PromptView:
    def __init__(self, prompt: Prompt) -> None:
        self._prompt = prompt
        self._field = make_field(
            caption(prompt.label), prompt.secret, prompt.max_length, prompt.max_bytes
        )
        self._message = urwid.Text(self._rule())
        # The first entry while the second is typed (confirm only).
        self._first: str | bytearray | None = None
        walker = urwid.SimpleFocusListWalker([urwid.Divider(), self._field, self._message])
        walker.set_focus(1)  # the field: it draws the cursor
        self._split = SplitBox(ScrollBody(paragraphs(prompt.body)), urwid.ListBox(walker))
        self._widget = urwid.Frame(
            self._split, header=header(prompt.title, prompt.tone), footer=footer(PROMPT_HINT)
        )

    @property
    def widget(self) -> Any:
        return self._widget

    @property
    def field(self) -> Any:
        return self._field

    def keypress(self, key: str) -> Done | None:
        if key == "esc":
            self._field.wipe()
            self._forget_first()
            return Done(None)
        if key == "enter":
            return self._enter()
        if key in ("page up", "page down"):
            self._split.top.scroll(key)
            return None
        width = self._split.bottom_size[0] if self._split.bottom_size else 80
        before = self._field.length
        self._field.keypress((width,), key)
        if self._field.length == before and len(key) == 1 and key.isprintable():
            self._message.set_text(too_long(self._prompt))  # never cut off without a word
        elif self._field.length < before and self._message.text == too_long(self._prompt):
            self._message.set_text(self._rule() if self._first is None else AGAIN)
        return None

    def tick(self) -> Done | None:
        return None

    def _enter(self) -> Done | None:
        length = self._field.length
        if self._first is None and length < self._prompt.min_length:
            if self._prompt.secret:
                self._field.wipe()
            self._message.set_text(too_short(self._prompt, length))
            return None
        answer: str | bytearray = self._field.take()
        if not self._prompt.confirm:
            return Done(answer)
        if self._first is None:
            self._first = answer
            self._field.set_caption(caption(f"{self._prompt.label} (again)"))
            self._message.set_text(AGAIN)
            return None
        first, self._first = self._first, None
        self._field.set_caption(caption(self._prompt.label))
        if _same(first, answer):
            _forget(answer)
            return Done(first)
        _forget(first)
        _forget(answer)
        self._message.set_text(MISMATCH)
        return None

    def _rule(self) -> str:
        """The limits, said before the first key."""
        low, high = self._prompt.min_length, self._prompt.max_length
        if high < STATED_MAX_LENGTH:
            return f"{low} to {high} characters." if low else f"At most {high} characters."
        if low:
            return f"At least {low} characters."
        return ""

    def _forget_first(self) -> None:
        if self._first is not None:
            _forget(self._first)
            self._first = None


def _same(first: str | bytearray, second: str | bytearray) -> bool:
    if isinstance(first, bytearray) and isinstance(second, bytearray):
        import hmac  # here, not at the top: only a confirmed secret needs it

        return hmac.compare_digest(first, second)
    return first == second


def _forget(value: str | bytearray) -> None:
    if isinstance(value, bytearray):
        from runtime.secrets.ram import wipe_buffer

        wipe_buffer(value)
