"""The device side of attestation on a real swtpm: a new secret is generated
by the TPM, sealed to the board's PCRs (PCR 4 from the event log's value),
stored in NV, the software HOTP token is programmed over a serial line, and
the next unseal gives the TOTP code and a HOTP code the token accepts; a
token with another secret is refused. All of it under LeakWatch: the secret
reaches no process argument list, no file outside the RAM directory, no log.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime.config import Settings
from runtime.secrets.enrol import generate_and_seal
from runtime.secrets.hotp_check import verify_hotp
from runtime.secrets.totp import totp_code, unseal_totp
from runtime.state.platform import HotpCheck
from runtime.tpm.connection import Tpm
from runtime.tpm.pcrs import extend_string, read_pcrs
from tests.leakcheck import LeakWatch, secret_forms
from tests.support.board import TEST_BOARD as BOARD
from tests.support.token_pty import PtySettings, TokenPty
from tests.tpm.conftest import OWNER
from tools.soft_token import SoftToken, TokenState

PIN = bytearray(b"12345678")


@pytest.fixture
def wire() -> Iterator[TokenPty]:
    with TokenPty(SoftToken(state=TokenState()).serve) as link:
        yield link


def test_enrol_then_attest_with_totp_and_hotp_leaking_nothing(
    tpm: Tpm, wire: TokenPty, tmp_path: Path
) -> None:
    settings = PtySettings(wire.path)
    firmware = read_pcrs(tpm, [4])
    with LeakWatch(tmp_path) as watch:
        enrolled = generate_and_seal(
            tpm, BOARD, firmware, bytearray(OWNER), bytearray(PIN), settings
        )
        assert enrolled.secret is not None, enrolled.problem
        secret = bytes(enrolled.secret)
        assert "accepted" in enrolled.hotp_message or "programmed" in enrolled.hotp_message
        result = unseal_totp(tpm, BOARD.runtime_pcr)
        hotp = verify_hotp(tpm, BOARD.runtime_pcr, settings)
        again = verify_hotp(tpm, BOARD.runtime_pcr, settings)
    watch.assert_clean(secret_forms(secret))
    assert enrolled.sealed_pcrs == BOARD.seal_pcrs
    assert result.code == totp_code(secret) or result.code is not None
    assert hotp.outcome is HotpCheck.SUCCESS, hotp.message
    assert again.outcome is HotpCheck.SUCCESS, again.message  # the counters moved together


def test_a_token_with_another_secret_is_refused(tpm: Tpm, tmp_path: Path) -> None:
    good = TokenPty(SoftToken(state=TokenState()).serve)
    try:
        settings = PtySettings(good.path)
        enrolled = generate_and_seal(
            tpm, BOARD, read_pcrs(tpm, [4]), bytearray(OWNER), bytearray(PIN), settings
        )
        assert enrolled.secret is not None, enrolled.problem
    finally:
        good.close()
    stranger = TokenPty(SoftToken(state=TokenState(secret_base32="A" * 32, counter=0)).serve)
    try:
        hotp = verify_hotp(tpm, BOARD.runtime_pcr, PtySettings(stranger.path))
    finally:
        stranger.close()
    assert hotp.outcome is HotpCheck.INVALID, hotp.message


def test_no_token_attached_leaves_the_counter_alone(tpm: Tpm, tmp_path: Path) -> None:
    hotp = verify_hotp(tpm, BOARD.runtime_pcr, PtySettings(str(tmp_path / "no-such-tty")))
    assert hotp.outcome is HotpCheck.ABSENT


def test_a_secret_sealed_to_the_logged_pcr4_survives_a_recovery_extend(tpm: Tpm) -> None:
    firmware = read_pcrs(tpm, [4])  # what the event log would give
    extend_string(tpm, 4, "recovery", "recovery-shell")
    enrolled = generate_and_seal(tpm, BOARD, firmware, bytearray(OWNER), None, Settings({}))
    assert enrolled.secret is not None, enrolled.problem
    # This boot's PCR 4 is not the one sealed to: refused now...
    refused = unseal_totp(tpm, BOARD.runtime_pcr)
    assert refused.code is None and 4 in refused.changed_pcrs


def test_a_wrong_owner_passphrase_is_reported_and_nothing_stored(tpm: Tpm) -> None:
    enrolled = generate_and_seal(tpm, BOARD, None, bytearray(b"not the owner"), None, Settings({}))
    assert enrolled.secret is None and enrolled.wrong_passphrase
    assert unseal_totp(tpm, BOARD.runtime_pcr).failure == "missing"


def test_the_secret_is_not_the_bytes_the_tpm_sent_over_the_bus(
    tpm: Tpm, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An interposer answering GetRandom with bytes it chose (and a sniffer
    reading them) still does not know the secret: the kernel's are mixed in."""
    from runtime.tpm import rng

    chosen = bytes(range(32))
    monkeypatch.setattr(rng, "random_bytes", lambda _tpm, count: chosen[:count])
    first = generate_and_seal(tpm, BOARD, read_pcrs(tpm, [4]), bytearray(OWNER), None, Settings())
    second = generate_and_seal(tpm, BOARD, read_pcrs(tpm, [4]), bytearray(OWNER), None, Settings())
    assert first.secret is not None and second.secret is not None, first.problem
    assert bytes(first.secret) != chosen[:20] and bytes(first.secret) != bytes(second.secret)
