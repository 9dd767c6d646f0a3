"""The one-line answer fields of a Prompt: plain text, and secrets.

A secret never exists as a Python str here (a str cannot be wiped): the
characters go from the key into a bytearray allocated once at its largest
size, so typing never reallocates it and leaves copies behind in freed memory.
The Edit itself holds only the '*'s.
"""

from __future__ import annotations

from typing import Any

import urwid

MASK = "*"
_UTF8_MAX = 4  # bytes a character may take


class TextField(urwid.Edit):  # type: ignore[misc]
    """A plain answer of at most ``max_length`` characters."""

    def __init__(self, caption: str, max_length: int) -> None:
        super().__init__(caption)
        self._max = max_length

    @property
    def length(self) -> int:
        return len(self.edit_text)

    def insert_text(self, text: str) -> None:
        room = self._max - len(self.edit_text)
        if room > 0:
            super().insert_text(text[:room])

    def take(self) -> str:
        text: str = self.edit_text
        self.set_edit_text("")
        return text

    def wipe(self) -> None:
        self.set_edit_text("")


class SecretField(urwid.Edit):  # type: ignore[misc]
    """One '*' per character typed; Backspace removes the last one. The cursor
    stays at the end: editing inside a text one cannot see helps nobody."""

    def __init__(self, caption: str, max_length: int, max_bytes: int | None = None) -> None:
        super().__init__(caption, mask=MASK)
        self._max = max_length
        self._buffer = bytearray(min(_UTF8_MAX * max_length, max_bytes or _UTF8_MAX * max_length))
        self._used = 0  # bytes
        self._count = 0  # characters

    @property
    def length(self) -> int:
        return self._count

    def keypress(self, size: tuple[int], key: str) -> str | None:
        if key == "backspace":
            self._backspace()
        elif self.valid_char(key):
            self._append(key)
        else:
            return key
        return None

    def _append(self, char: str) -> None:
        data = char.encode("utf-8")
        if self._count >= self._max or self._used + len(data) > len(self._buffer):
            return
        # A slice of the same length is written in place: the buffer never moves.
        self._buffer[self._used : self._used + len(data)] = data
        self._used += len(data)
        self._count += 1
        self._show()

    def _backspace(self) -> None:
        if not self._count:
            return
        # Back over UTF-8 continuation bytes (10xxxxxx) to the character's first byte.
        end = self._used - 1
        while end > 0 and self._buffer[end] & 0xC0 == 0x80:
            end -= 1
        self._buffer[end : self._used] = bytes(self._used - end)
        self._used = end
        self._count -= 1
        self._show()

    def _show(self) -> None:
        self.set_edit_text(MASK * self._count)
        self.set_edit_pos(self._count)

    def take(self) -> bytearray:
        """The secret typed, as a new bytearray the caller wipes; the field is emptied."""
        answer = self._buffer[: self._used]
        self.wipe()
        return answer

    def wipe(self) -> None:
        from runtime.secrets.ram import wipe_buffer  # ctypes: only once a secret is typed

        wipe_buffer(self._buffer)
        self._used = self._count = 0
        self._show()


def make_field(caption: str, secret: bool, max_length: int, max_bytes: int | None = None) -> Any:
    return SecretField(caption, max_length, max_bytes) if secret else TextField(caption, max_length)
