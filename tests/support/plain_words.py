"""The check that a message meant for the screen is plain words: no traceback, command
line, errno, TSS2 code or path of a program reached it."""

from __future__ import annotations

BANNED = ("Traceback", "Command '[", "returned non-zero", "0x0", "Errno", "TSS2", "/usr/bin/")


def assert_plain(text: str) -> None:
    assert text, "a failure must say something"
    for banned in BANNED:
        assert banned not in text, f"{banned!r} reached the screen: {text}"
