"""The runtime's first start waits for /init's recovery-key window to close
before it takes the console (runtime/state/recovery_window.py)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from runtime.state import recovery_window
from runtime.state.recovery_window import WINDOW_VARIABLE, wait_for_recovery_window


def test_without_the_variable_there_is_no_window() -> None:
    assert wait_for_recovery_window({}) == 0.0
    assert wait_for_recovery_window({WINDOW_VARIABLE: ""}) == 0.0


def test_a_window_already_closed_does_not_wait(tmp_path: Path) -> None:
    closed = tmp_path / "closed"
    closed.touch()
    assert wait_for_recovery_window({WINDOW_VARIABLE: str(closed)}) < 0.5


def test_it_waits_until_init_closes_the_window(tmp_path: Path) -> None:
    closed = tmp_path / "closed"
    timer = threading.Timer(0.3, closed.touch)
    timer.start()
    try:
        started = time.monotonic()
        wait_for_recovery_window({WINDOW_VARIABLE: str(closed)})
        assert time.monotonic() - started >= 0.25
        assert closed.exists()
    finally:
        timer.cancel()


def test_a_window_that_never_closes_is_not_waited_for_forever(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(recovery_window, "LONGEST_WAIT_SECONDS", 0.2)
    waited = wait_for_recovery_window({WINDOW_VARIABLE: str(tmp_path / "never")})
    assert 0.2 <= waited < 2.0
