"""Issue 25 on a real swtpm: a wrong owner passphrase, a damaged sealed blob,
a missing counter are said in plain words (no NV index, no response code,
no TSS2 text), and the HOTP token is programmed before anything is sealed:
a token that refuses (a wrong admin PIN, no token) leaves the TPM's secret
exactly as it was, and the facts say why and whether a retry makes sense.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime.config import Settings
from runtime.error_detail import recent_details
from runtime.integrity.tpm_counter import CounterFailure, TpmCounter
from runtime.secrets.enrol import generate_and_seal
from runtime.secrets.hotp.counter import CounterStoreError, TpmCounterStore
from runtime.secrets.hotp_check import verify_hotp
from runtime.secrets.totp import unseal_totp
from runtime.state.platform import HotpCheck
from runtime.tpm import handles, nv
from runtime.tpm.connection import Tpm
from runtime.tpm.pcrs import read_pcrs
from tests.support.board import TEST_BOARD as BOARD
from tests.support.plain_words import assert_plain
from tests.support.token_pty import PtySettings, TokenPty
from tests.tpm.conftest import OWNER
from tests.tpm.test_attestation_secrets import PIN
from tools.soft_token import SoftToken, TokenState

pytestmark = pytest.mark.usefixtures("scratch_log")


@pytest.fixture
def soft() -> SoftToken:
    return SoftToken(state=TokenState())


@pytest.fixture
def wire(soft: SoftToken) -> Iterator[TokenPty]:
    link = TokenPty(soft.serve)
    yield link
    link.close()


def sealed_blob(tpm: Tpm) -> bytes | None:
    """The TOTP/HOTP secret's NV index as it is (None: not defined)."""
    if not nv.exists(tpm, handles.TOTP_SEALED_NV):
        return None
    return nv.read(tpm, handles.TOTP_SEALED_NV)


# -- plain words ----------------------------------------------------------------------


def test_a_wrong_owner_passphrase_is_plain_and_says_try_again(tpm: Tpm) -> None:
    enrolled = generate_and_seal(tpm, BOARD, None, bytearray(b"not the owner"), None, Settings({}))
    assert enrolled.secret is None and enrolled.wrong_passphrase
    assert_plain(enrolled.problem)
    assert "refused the owner passphrase" in enrolled.problem and "try again" in enrolled.problem
    assert "wrong TPM owner passphrase" in recent_details()[-1]


def test_a_rollback_counter_made_with_a_wrong_passphrase_is_plain(tpm: Tpm) -> None:
    """The issue's "Defining NV index 0x010a0af4 failed: wrong TPM owner passphrase"."""
    with pytest.raises(CounterFailure) as info:
        TpmCounter(tpm, b"not the owner").create()
    assert_plain(str(info.value))
    assert "try again" in str(info.value)
    assert "Defining NV index 0x01" in recent_details()[-1]


def test_the_hotp_counter_made_with_a_wrong_passphrase_is_plain(tpm: Tpm) -> None:
    with pytest.raises(CounterStoreError) as info:
        TpmCounterStore.open_or_create(tpm, b"not the owner")
    assert_plain(info.value.message)
    assert "owner passphrase" in info.value.message


def test_a_damaged_sealed_secret_is_plain(tpm: Tpm) -> None:
    nv.define(
        tpm, handles.TOTP_SEALED_NV, nv.SEALED_BLOB_CAPACITY, nv.SEALED_BLOB_ATTRIBUTES, OWNER
    )
    nv.write(tpm, handles.TOTP_SEALED_NV, b"\x00\x40" + b"garbage!" * 8, owner_auth=OWNER)
    result = unseal_totp(tpm, BOARD.runtime_pcr)
    assert result.code is None and result.failure == "tpm-error"
    assert_plain(result.message)


def test_a_secret_without_a_storage_key_is_plain(bare_tpm: Tpm) -> None:
    result = unseal_totp(bare_tpm, BOARD.runtime_pcr)
    assert result.code is None
    assert_plain(result.message)


# -- the HOTP token first, then the seal ----------------------------------------------


def test_a_wrong_admin_pin_seals_nothing(tpm: Tpm, wire: TokenPty, soft: SoftToken) -> None:
    kept = generate_and_seal(tpm, BOARD, read_pcrs(tpm, [4]), bytearray(OWNER), None, Settings({}))
    assert kept.secret is not None, kept.problem
    before = sealed_blob(tpm)
    refused = generate_and_seal(
        tpm,
        BOARD,
        read_pcrs(tpm, [4]),
        bytearray(OWNER),
        bytearray(b"87654321"),
        PtySettings(wire.path),
    )
    assert refused.secret is None and refused.sealed_pcrs == ()
    assert refused.token_refused and refused.wrong_pin and not refused.wrong_passphrase
    assert_plain(refused.problem)
    assert "admin PIN" in refused.problem and "try again" in refused.problem
    assert "Nothing was sealed" in refused.problem
    assert sealed_blob(tpm) == before  # the secret the phone knows still unseals
    assert unseal_totp(tpm, BOARD.runtime_pcr).code is not None
    assert soft.state.secret_base32 == ""  # and the token holds nothing new

    # the retry with the right PIN programs the token, then seals
    again = generate_and_seal(
        tpm, BOARD, read_pcrs(tpm, [4]), bytearray(OWNER), bytearray(PIN), PtySettings(wire.path)
    )
    assert again.secret is not None, again.problem
    assert not again.token_refused and "accepted its first code" in again.hotp_message
    assert sealed_blob(tpm) != before
    assert verify_hotp(tpm, BOARD.runtime_pcr, PtySettings(wire.path)).outcome is HotpCheck.SUCCESS


def test_no_token_seals_nothing_and_is_no_pin_typo(tpm: Tpm, tmp_path: Path) -> None:
    refused = generate_and_seal(
        tpm,
        BOARD,
        read_pcrs(tpm, [4]),
        bytearray(OWNER),
        bytearray(PIN),
        PtySettings(str(tmp_path / "no-tty")),
    )
    assert refused.secret is None and refused.token_refused and not refused.wrong_pin
    assert_plain(refused.problem)
    assert sealed_blob(tpm) is None
    # going on without the token (no PIN) seals
    alone = generate_and_seal(
        tpm,
        BOARD,
        read_pcrs(tpm, [4]),
        bytearray(OWNER),
        None,
        PtySettings(str(tmp_path / "no-tty")),
    )
    assert alone.secret is not None and alone.hotp_message == ""


def test_a_wrong_owner_passphrase_stops_before_the_token(
    tpm: Tpm, wire: TokenPty, soft: SoftToken
) -> None:
    refused = generate_and_seal(
        tpm,
        BOARD,
        read_pcrs(tpm, [4]),
        bytearray(b"not the owner"),
        bytearray(PIN),
        PtySettings(wire.path),
    )
    assert refused.secret is None and refused.wrong_passphrase and not refused.token_refused
    assert soft.state.secret_base32 == "" and soft.state.pin_tries == 3  # never asked
    assert sealed_blob(tpm) is None
