"""Which line the recovery listener gets, and the main menu's words when it
gets none (runtime/devices/serial_line.py; /init's side in
tests/unit/config/test_init_settings.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runtime.devices.serial_line import build_refusal, recovery_serial_problem

SERIAL = next((f"/dev/ttyS{n}" for n in range(4) if os.path.exists(f"/dev/ttyS{n}")), None)


def _consoles(tmp_path: Path, text: str) -> str:
    path = tmp_path / "active"
    path.write_text(text + "\n")
    return str(path)


def problem(
    device: str | None, consoles: str, *, owner_key: bool = True, token: str | None = None
) -> str:
    return recovery_serial_problem(
        device, owner_key=owner_key, token_device=token, consoles=consoles
    )


def test_none_asked_is_no_problem(tmp_path: Path) -> None:
    assert problem(None, _consoles(tmp_path, "ttyS0")) == ""
    assert problem("", _consoles(tmp_path, "ttyS0"), owner_key=False) == ""


@pytest.mark.parametrize(
    ("device", "words"),
    [
        ("/dev/sda", "not a serial line"),
        ("/dev/tty1", "not a serial line"),
        ("/dev/ttyS0/../sda", "not a serial line"),
        ("/dev/tty S0", "not a serial line"),
        ("/dev/ttyS0;reboot", "not a serial line"),
        ("/dev/ttyS99", "no such line"),
    ],
)
def test_a_line_that_is_refused_is_said(tmp_path: Path, device: str, words: str) -> None:
    assert words in problem(device, _consoles(tmp_path, "tty0"))


def test_without_an_owner_key_nobody_could_be_authenticated() -> None:
    """The gate asks nobody then: a root shell for anyone on the line."""
    assert "no owner key" in build_refusal("/dev/ttyS1", False, None)
    assert build_refusal("/dev/ttyS1", True, None) == ""


def test_the_hotp_tokens_line_is_refused() -> None:
    assert "HOTP token's line" in build_refusal("/dev/ttyS1", True, "/dev/ttyS1")
    assert build_refusal("/dev/ttyS2", True, "/dev/ttyS1") == ""


@pytest.mark.skipif(SERIAL is None, reason="this host has no /dev/ttyS* to stand in")
def test_the_console_itself_is_refused(tmp_path: Path) -> None:
    assert SERIAL is not None
    name = SERIAL.removeprefix("/dev/")
    assert problem(SERIAL, _consoles(tmp_path, "tty0")) == ""
    assert "the console the menus use" in problem(SERIAL, _consoles(tmp_path, f"tty0 {name}"))
    assert "cannot be read" in problem(SERIAL, str(tmp_path / "unreadable"))
