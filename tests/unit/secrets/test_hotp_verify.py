"""verify_with_token and enrol_token, branch by branch: the software token
in-process on a pty (the real guest and host code) and a fake counter store."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from runtime.secrets.hotp import (
    CounterStoreError,
    HotpCheck,
    TokenStatus,
    enrol_token,
    verify_with_token,
)
from runtime.secrets.hotp.counter import refuse_backwards
from runtime.secrets.hotp.serial_token import SerialToken
from runtime.secrets.hotp.verify import _probe_offsets
from runtime.secrets.totp import hotp_code
from tests.leakcheck import LeakWatch, secret_forms
from tests.support.token_pty import TokenPty
from tools.soft_token import SoftToken, TokenState

SECRET = bytearray(b"12345678901234567890")
OTHER = bytearray(b"another secret, 20 b")
B32 = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
PIN = bytearray(b"12345678")


class FakeStore:
    """A CounterStore in memory that remembers every move."""

    def __init__(self, value: int, fail_read: bool = False, fail_advance: bool = False) -> None:
        self.value = value
        self.moves: list[int] = []
        self.fail_read = fail_read
        self.fail_advance = fail_advance

    def read(self) -> int:
        if self.fail_read:
            raise CounterStoreError("The TPM holds no HOTP counter.")
        return self.value

    def advance_to(self, value: int) -> None:
        refuse_backwards(self.value, value)
        if self.fail_advance:
            raise CounterStoreError("The TPM is locked out.")
        self.value = value
        self.moves.append(value)


class Rig(TokenPty):
    """A software token at a given state on a pty, and the runtime's side of the line."""

    def __init__(self, state: TokenState | None) -> None:
        self.soft = None if state is None else SoftToken(state=state)
        super().__init__(None if self.soft is None else self.soft.serve)
        self.token = SerialToken(self.path, hello_timeout=0.1, reply_timeout=1.0)

    @property
    def token_counter(self) -> int:
        assert self.soft is not None
        return self.soft.state.counter

    def close(self) -> None:
        self.token.close()
        super().close()


@pytest.fixture
def rigs() -> Iterator[list[Rig]]:
    made: list[Rig] = []
    yield made
    for rig in made:
        rig.close()


def rig_at(rigs: list[Rig], counter: int | None, secret: str = B32, pin: str = "12345678") -> Rig:
    """A token at ``counter`` (None: no token answers; "" secret: not programmed)."""
    state = (
        None
        if counter is None
        else TokenState(secret_base32=secret, counter=counter, admin_pin=pin)
    )
    made = Rig(state)
    rigs.append(made)
    return made


def verify(store: FakeStore, rig: Rig, **kwargs: int) -> TokenStatus:
    return verify_with_token(SECRET, store, rig.token, retry_pause=0, **kwargs)


def test_no_token_leaves_the_counter_alone(rigs: list[Rig]) -> None:
    rig, store = rig_at(rigs, None), FakeStore(7)
    for _ in range(10):  # Heads drifts a step per boot here; this must not
        status = verify(store, rig)
        assert status.result is HotpCheck.ABSENT
    assert store.value == 7 and store.moves == []


def test_success_moves_both_counters_together(rigs: list[Rig]) -> None:
    rig, store = rig_at(rigs, 7), FakeStore(7)
    for expected in (8, 9, 10):
        status = verify(store, rig)
        assert status.result is HotpCheck.SUCCESS and "accepted" in status.message
        assert store.value == rig.token_counter == expected
    assert store.moves == [8, 9, 10]


def test_a_token_behind_within_its_lookahead_catches_up(rigs: list[Rig]) -> None:
    # Only after a token was set back: the computer is ahead by 9.
    rig, store = rig_at(rigs, 11), FakeStore(20)
    assert verify(store, rig).ok
    assert store.value == rig.token_counter == 21


@pytest.mark.parametrize("lead", [1, 5, 9])
def test_a_token_ahead_is_resynchronised(rigs: list[Rig], lead: int) -> None:
    rig, store = rig_at(rigs, 30 + lead), FakeStore(30)
    status = verify(store, rig)
    assert status.result is HotpCheck.SUCCESS and "both agree again" in status.message
    assert store.value == rig.token_counter == 40  # met at the end of the window
    assert store.moves == [40]
    assert verify(store, rig).ok and store.value == rig.token_counter == 41


@pytest.mark.parametrize("lead", [10, 50])
def test_a_token_further_ahead_is_refused_and_nothing_moves(rigs: list[Rig], lead: int) -> None:
    rig, store = rig_at(rigs, 30 + lead), FakeStore(30)
    status = verify(store, rig)
    assert status.result is HotpCheck.INVALID and "more than 9 codes ahead" in status.message
    assert store.value == 30 and store.moves == []
    assert rig.token_counter == 30 + lead


def test_more_resync_windows_reach_further(rigs: list[Rig]) -> None:
    rig, store = rig_at(rigs, 45), FakeStore(30)
    assert verify(store, rig, resync_windows=2).ok
    assert store.value == rig.token_counter == 50
    assert _probe_offsets(10, 2) == [0, 9, 19]
    assert _probe_offsets(1, 3) == [0, 1, 2]
    assert _probe_offsets(0, 1) == [0]


def test_a_wrong_secret_is_invalid_and_nothing_moves(rigs: list[Rig]) -> None:
    rig, store = rig_at(rigs, 3), FakeStore(3)
    status = verify_with_token(OTHER, store, rig.token, retry_pause=0)
    assert status.result is HotpCheck.INVALID and "Do not trust this boot" in status.message
    assert store.value == 3 and rig.token_counter == 3


def test_an_unprogrammed_token_is_reported(rigs: list[Rig]) -> None:
    rig, store = rig_at(rigs, 0, secret=""), FakeStore(3)
    status = verify(store, rig)
    assert status.result is HotpCheck.NOT_PROGRAMMED and store.moves == []


def test_the_code_never_appears_in_a_message(rigs: list[Rig]) -> None:
    for counter, store_value in ((5, 5), (90, 5), (None, 5)):
        rig, store = rig_at(rigs, counter), FakeStore(store_value)
        status = verify(store, rig)
        for c in range(store_value, store_value + 20):
            assert hotp_code(SECRET, c) not in status.message + status.detail


def test_an_unreadable_store_is_an_error_and_nothing_is_sent(rigs: list[Rig]) -> None:
    rig, store = rig_at(rigs, 3), FakeStore(3, fail_read=True)
    status = verify(store, rig)
    assert status.result is HotpCheck.ERROR and "no HOTP counter" in status.message
    assert rig.token_counter == 3


def test_a_store_that_cannot_move_still_reports_the_success(rigs: list[Rig]) -> None:
    rig, store = rig_at(rigs, 3), FakeStore(3, fail_advance=True)
    status = verify(store, rig)
    assert status.result is HotpCheck.SUCCESS and "was not saved" in status.message
    # Next boot: the token is one ahead, and resynchronisation covers it.
    store.fail_advance = False
    assert verify(store, rig).ok and store.value == rig.token_counter


@dataclass
class ScriptedToken:
    """A token whose answers are given in advance (for the retry branches)."""

    answers: list[HotpCheck]
    name: str = "scripted token"
    lookahead: int = 10
    checks: list[str] = field(default_factory=list)
    is_present: bool = True

    def present(self) -> bool:
        return self.is_present

    def why_absent(self) -> TokenStatus:
        return TokenStatus(HotpCheck.ABSENT, "gone")

    def check(self, code: str) -> TokenStatus:
        self.checks.append(code)
        return TokenStatus(self.answers.pop(0), "said so.")

    def program(self, secret: bytearray, counter: int, admin_pin: bytearray) -> TokenStatus:
        return TokenStatus(self.answers.pop(0), "programmed.")


def test_errors_are_retried_with_the_same_code() -> None:
    token = ScriptedToken([HotpCheck.ERROR, HotpCheck.ERROR, HotpCheck.SUCCESS])
    store = FakeStore(4)
    assert verify_with_token(SECRET, store, token, attempts=3, retry_pause=0).ok
    assert token.checks == [hotp_code(SECRET, 4)] * 3 and store.value == 5


def test_errors_stop_after_the_attempts_and_nothing_moves() -> None:
    token = ScriptedToken([HotpCheck.ERROR] * 3)
    store = FakeStore(4)
    status = verify_with_token(SECRET, store, token, attempts=3, retry_pause=0)
    assert status.result is HotpCheck.ERROR and "3 tries" in status.message
    assert "insert the scripted token" in status.message
    assert len(token.checks) == 3 and store.moves == []


def test_a_lost_yes_then_a_retry_is_caught_by_resync(rigs: list[Rig]) -> None:
    """The token accepted but its answer was lost; the retry of the same code is
    refused (used up) and the next probe meets it."""
    rig, store = rig_at(rigs, 6), FakeStore(5)  # as if hotp(5) was consumed unseen
    assert verify(store, rig).ok and store.value == rig.token_counter


def test_a_token_gone_during_the_check_stops_the_probes() -> None:
    token = ScriptedToken([HotpCheck.ABSENT, HotpCheck.SUCCESS])
    store = FakeStore(4)
    assert verify_with_token(SECRET, store, token, retry_pause=0).result is HotpCheck.ABSENT
    assert len(token.checks) == 1 and store.moves == []


def test_the_counter_never_decreases() -> None:
    store = FakeStore(10)
    with pytest.raises(CounterStoreError, match="cannot go back"):
        store.advance_to(9)
    store.advance_to(10)  # standing still is allowed
    assert store.value == 10


def test_enrolment_programs_at_the_stores_counter_and_checks(rigs: list[Rig]) -> None:
    rig, store = rig_at(rigs, 0, secret=""), FakeStore(1234)
    status = enrol_token(SECRET, store, rig.token, PIN, retry_pause=0)
    assert status.result is HotpCheck.SUCCESS and "accepted its first code" in status.message
    assert rig.soft is not None and rig.soft.state.secret_base32 == B32
    assert store.value == rig.token_counter == 1235
    assert verify(store, rig).ok
    assert bytes(PIN) == b"12345678"  # the caller wipes it


def test_enrolment_with_a_wrong_pin_changes_nothing(rigs: list[Rig]) -> None:
    rig, store = rig_at(rigs, 0, secret=""), FakeStore(8)
    status = enrol_token(SECRET, store, rig.token, bytearray(b"bad"), retry_pause=0)
    assert status.result is HotpCheck.INVALID and "admin PIN" in status.message
    assert store.moves == [] and rig.soft is not None and rig.soft.state.secret_base32 == ""


def test_enrolment_without_a_token_or_a_store(rigs: list[Rig]) -> None:
    assert (
        enrol_token(SECRET, FakeStore(0), rig_at(rigs, None).token, PIN, retry_pause=0).result
        is HotpCheck.ABSENT
    )
    status = enrol_token(
        SECRET, FakeStore(0, fail_read=True), rig_at(rigs, 0).token, PIN, retry_pause=0
    )
    assert status.result is HotpCheck.ERROR


def test_enrolment_that_is_not_confirmed_is_an_error() -> None:
    token = ScriptedToken([HotpCheck.SUCCESS, HotpCheck.INVALID])
    store = FakeStore(2)
    status = enrol_token(SECRET, store, token, PIN, retry_pause=0)
    assert status.result is HotpCheck.ERROR and "did not accept its first code" in status.message
    assert store.moves == []


def test_secret_pin_and_codes_escape_nowhere(rigs: list[Rig]) -> None:
    rig, store = rig_at(rigs, 0, secret="", pin="pin of the token"), FakeStore(50)
    secret, pin = bytearray(os.urandom(20)), bytearray(b"pin of the token")
    with LeakWatch() as watch:
        assert enrol_token(secret, store, rig.token, pin, retry_pause=0).ok
        assert verify_with_token(secret, store, rig.token, retry_pause=0).ok
        assert not verify_with_token(OTHER, store, rig.token, retry_pause=0).ok
    watch.assert_clean(secret_forms(secret) + secret_forms(pin))
    assert watch.findings([hotp_code(secret, c).encode() for c in (50, 51, 52)]) == []
