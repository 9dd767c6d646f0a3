"""The main menu says why CONFIG_BOOT_RECOVERY_SERIAL has no listener, by
/init's rules (tests/unit/test_init_settings.py runs those)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runtime.devices.serial_line import recovery_serial_problem

SERIAL = next((f"/dev/ttyS{n}" for n in range(4) if os.path.exists(f"/dev/ttyS{n}")), None)


def _consoles(tmp_path: Path, text: str) -> str:
    path = tmp_path / "active"
    path.write_text(text + "\n")
    return str(path)


def test_none_asked_is_no_problem(tmp_path: Path) -> None:
    assert recovery_serial_problem(None, _consoles(tmp_path, "ttyS0")) == ""
    assert recovery_serial_problem("", _consoles(tmp_path, "ttyS0")) == ""


@pytest.mark.parametrize(("device", "words"), [
    ("/dev/sda", "not a serial line"), ("/dev/tty1", "not a serial line"),
    ("/dev/ttyS0/../sda", "not a serial line"), ("/dev/ttyS99", "no such line"),
])
def test_a_line_init_refuses_is_said(tmp_path: Path, device: str, words: str) -> None:
    assert words in recovery_serial_problem(device, _consoles(tmp_path, "tty0"))


@pytest.mark.skipif(SERIAL is None, reason="this host has no /dev/ttyS* to stand in")
def test_the_console_itself_is_refused(tmp_path: Path) -> None:
    assert SERIAL is not None
    name = SERIAL.removeprefix("/dev/")
    assert recovery_serial_problem(SERIAL, _consoles(tmp_path, "tty0")) == ""
    assert "the console the menus use" in recovery_serial_problem(
        SERIAL, _consoles(tmp_path, f"tty0 {name}"))
