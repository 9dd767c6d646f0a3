"""The TOTP line of the main menu: the code with the seconds its window has
left, a new unseal only when the window turns and the TPM is free."""

from __future__ import annotations

import time

from runtime.state.startup import StartState, refresh_totp


def test_the_line_counts_down_the_window() -> None:
    state = StartState(totp_code="123456", totp_step=0)
    assert state.totp_line(now=60).startswith("TOTP 123456  (30 s left)")
    assert state.totp_line(now=89).startswith("TOTP 123456  ( 1 s left)")


def test_without_a_code_the_line_is_the_reason() -> None:
    state = StartState(totp_message="TOTP secret refused: PCR 9 changed")
    assert state.totp_line() == "TOTP secret refused: PCR 9 changed"
    assert refresh_totp(state, tpm_free=True) is False  # nothing to count down


def test_a_busy_tpm_postpones_the_new_code() -> None:
    state = StartState(totp_code="123456", totp_step=int(time.time()) // 30 - 1)
    assert refresh_totp(state, tpm_free=False) is True  # the countdown still moves
    assert state.totp_code == "123456"  # no TPM access while the background work runs
