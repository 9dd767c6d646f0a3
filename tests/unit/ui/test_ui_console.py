"""The console: a size for a serial tty, TERM, and whether it shows UTF-8."""

from __future__ import annotations

import fcntl
import os
import struct
import termios

import pytest

from runtime.ui import detect_unicode, ensure_term_env, prepare_console


def winsize(fd: int) -> tuple[int, int]:
    rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, bytes(8)))
    return cols, rows


def test_prepare_console_sizes_a_0x0_pty_once() -> None:
    master, slave = os.openpty()
    try:
        assert winsize(slave) == (0, 0)
        assert prepare_console(slave, 100, 30) == (100, 30)
        assert winsize(slave) == (100, 30)
        assert prepare_console(slave, 80, 24) == (100, 30)  # a size in force is kept
        assert winsize(master) == (100, 30)
    finally:
        os.close(master)
        os.close(slave)


def test_prepare_console_on_non_ttys_returns_the_given_size() -> None:
    read_end, write_end = os.pipe()
    try:
        assert prepare_console(read_end, 80, 24) == (80, 24)
        assert prepare_console(write_end, 132, 43) == (132, 43)
    finally:
        os.close(read_end)
        os.close(write_end)
    assert prepare_console(read_end, 80, 24) == (80, 24)  # closed
    assert prepare_console(-1, 80, 24) == (80, 24)
    with pytest.raises(ValueError):
        prepare_console(read_end, 0, 24)


@pytest.mark.parametrize(
    ("before", "after"), [(None, "linux"), ("dumb", "linux"), ("", "linux"), ("vt100", "vt100")]
)
def test_ensure_term_env(monkeypatch: pytest.MonkeyPatch, before: str | None, after: str) -> None:
    if before is None:
        monkeypatch.delenv("TERM", raising=False)
    else:
        monkeypatch.setenv("TERM", before)
    assert ensure_term_env() == after
    assert os.environ["TERM"] == after


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"LC_ALL": "C.UTF-8", "TERM": "linux"}, True),  # the board's serial console
        ({"LANG": "en_US.utf8", "TERM": "xterm-256color"}, True),
        ({"LC_CTYPE": "de_DE.UTF-8"}, True),
        ({"LC_ALL": "C", "LANG": "en_US.UTF-8"}, False),  # LC_ALL wins
        ({"LC_ALL": "", "LC_CTYPE": "C.UTF-8", "LANG": "C"}, True),  # empty means unset
        ({"LC_ALL": "C.UTF-8", "TERM": "vt100"}, False),
        ({"LC_ALL": "C.UTF-8", "TERM": "vt102"}, False),
        ({"LC_ALL": "C.UTF-8", "TERM": "dumb"}, False),
        ({"LANG": "POSIX"}, False),
        ({}, False),
    ],
)
def test_detect_unicode(env: dict[str, str], expected: bool) -> None:
    assert detect_unicode(env) is expected


def test_detect_unicode_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    monkeypatch.setenv("TERM", "linux")
    assert detect_unicode() is True
    monkeypatch.setenv("TERM", "vt100")
    assert detect_unicode() is False
