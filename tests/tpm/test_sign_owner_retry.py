"""Signing /boot the first time asks the TPM owner passphrase for the
rollback counter: a typo is caught by the TPM before anything is defined, and
asked again, without a dictionary-attack count."""

from __future__ import annotations

import pytest

from runtime.integrity.sign_boot import SigningError
from runtime.secrets.passphrase import OWNER_PASSPHRASE_ATTEMPTS
from runtime.state.platform_boot import _checked_owner_passphrase
from runtime.tpm import ownership
from runtime.tpm.connection import Tpm
from tests.tpm.conftest import OWNER


def test_a_typo_is_asked_again_and_the_right_one_is_returned(tpm: Tpm) -> None:
    asked: list[tuple[int, str]] = []
    answers = [bytearray(b"typo"), bytearray(OWNER)]

    def ask(attempt: int, last: str) -> bytearray | None:
        asked.append((attempt, last))
        return answers.pop(0)

    before = ownership.da_state(tpm).failures
    assert _checked_owner_passphrase(tpm, ask) == bytearray(OWNER)
    assert [a for a, _ in asked] == [1, 2] and "refused" in asked[1][1]
    assert ownership.da_state(tpm).failures == before


def test_the_tries_run_out_and_esc_gives_up(tpm: Tpm) -> None:
    with pytest.raises(SigningError, match="refused the owner passphrase"):
        _checked_owner_passphrase(tpm, lambda attempt, last: bytearray(b"wrong"))
    calls = []

    def give_up(attempt: int, last: str) -> None:
        calls.append(attempt)

    with pytest.raises(SigningError, match="no TPM owner passphrase"):
        _checked_owner_passphrase(tpm, give_up)
    assert calls == [1] and OWNER_PASSPHRASE_ATTEMPTS == 3
