"""The session's verdicts: integrity colour and words, and when the default
entry may boot unattended."""

from __future__ import annotations

from runtime.state.platform import (
    BootCheck,
    BootFacts,
    HotpCheck,
    HotpFacts,
    MeasureFacts,
    StartFacts,
    TotpFacts,
    TotpFailure,
)
from runtime.state.session import Session
from runtime.state.view import Tone

GOOD_TOTP = TotpFacts("123456", step=1)


def attested_session(**start: object) -> Session:
    facts = StartFacts("b", "brand", auto_boot_timeout=5, **start)  # type: ignore[arg-type]
    return Session(
        start=facts,
        measure=MeasureFacts(),
        boot=BootFacts("/dev/vda1", "/boot"),
        totp=GOOD_TOTP,
        boot_check=BootCheck(True),
    )


def token_checked_session() -> Session:
    """Attested, and the HOTP token's Success that lets the countdown run."""
    session = attested_session(hotp_configured=True)
    session.hotp = HotpFacts(HotpCheck.SUCCESS, "ok")
    return session


def test_all_good_is_verified() -> None:
    tone, words = attested_session().integrity()
    assert tone is Tone.GOOD and words.startswith("VERIFIED")


def test_autoboot_needs_a_totp_code() -> None:
    session = token_checked_session()
    assert session.may_autoboot()
    session.totp = TotpFacts(None, failure=TotpFailure.MISSING, message="none")
    assert not session.may_autoboot()


def test_autoboot_needs_the_hotp_token_when_one_is_configured() -> None:
    session = attested_session(hotp_configured=True)
    assert not session.may_autoboot()
    for outcome in (HotpCheck.INVALID, HotpCheck.ABSENT, HotpCheck.ERROR):
        session.hotp = HotpFacts(outcome, "x")
        assert not session.may_autoboot()
    session.hotp = HotpFacts(HotpCheck.SUCCESS, "ok")
    assert session.may_autoboot()


def test_autoboot_only_once_and_never_after_skipping_attestation() -> None:
    session = token_checked_session()
    session.autoboot_offered = True
    assert not session.may_autoboot()
    session = token_checked_session()
    session.attestation_skipped = True
    assert not session.may_autoboot()


def test_autoboot_off_without_a_timeout() -> None:
    session = token_checked_session()
    session.start = StartFacts("b", "brand", auto_boot_timeout=None, hotp_configured=True)
    assert not session.may_autoboot()


def test_changed_pcrs_are_red_and_the_owners_recovery_shell_is_not_tampering() -> None:
    session = attested_session()
    session.totp = TotpFacts(None, failure=TotpFailure.PCRS_CHANGED, message="refused")
    tone, words = session.integrity()
    assert tone is Tone.ERROR and "TAMPERED" in words
    session.totp = TotpFacts(None, failure=TotpFailure.RECOVERY_USED, message="recovery")
    session.measure = MeasureFacts(measurements_match=True)  # its extends are logged
    tone, words = session.integrity()
    assert tone is Tone.WARNING and words.startswith("RECOVERY SHELL OPENED")
    # a shell explains PCR 4, not a log that fails to replay
    session.measure = MeasureFacts(measurements_match=False)
    assert session.integrity()[1].startswith("TAMPERED?")


def test_event_log_mismatch_and_invalid_hotp_are_red() -> None:
    session = attested_session()
    session.measure = MeasureFacts(measurements_match=False)
    assert session.integrity()[0] is Tone.ERROR
    session = attested_session(hotp_configured=True)
    session.hotp = HotpFacts(HotpCheck.INVALID, "bad")
    assert session.integrity()[0] is Tone.ERROR


def test_missing_pieces_are_yellow_and_named() -> None:
    session = attested_session()
    session.boot = BootFacts(problem="none")
    session.totp = TotpFacts(None, failure=TotpFailure.MISSING, message="none")
    tone, words = session.integrity()
    assert tone is Tone.WARNING and "no TOTP secret" in words
    assert session.verdict().reasons == ("no TOTP code", "/boot: no disk")


def test_no_tpm_is_red_and_says_so() -> None:
    session = Session(start=StartFacts("b", "brand", tpm_problem="No TPM device."))
    tone, words = session.integrity()
    assert tone is Tone.ERROR and "NO TPM" in words
    assert session.totp_line() == "TOTP: NO TPM"


def test_totp_line_counts_down_and_notices_the_next_window() -> None:
    session = attested_session()
    assert session.totp_line(now=30) == "TOTP: 123456  (30 s left)"
    assert session.totp_line(now=59) == "TOTP: 123456  ( 1 s left)"
    assert not session.totp_window_turned(now=45)
    assert session.totp_window_turned(now=60)


def test_hotp_status_words() -> None:
    session = attested_session()
    assert session.hotp_status() == "N/A"
    session = attested_session(hotp_configured=True)
    assert session.hotp_status() == "Unverified"
    session.hotp = HotpFacts(HotpCheck.SUCCESS, "ok")
    assert session.hotp_status() == "Success"


def test_the_kept_owner_passphrase_is_given_once() -> None:
    session = Session()
    session.keep_owner_passphrase(bytearray(b"passphrase"))
    assert session.take_owner_passphrase() == bytearray(b"passphrase")
    assert session.take_owner_passphrase() is None


def test_a_failed_live_refresh_forgets_the_hotp_success() -> None:
    # Heads' issue #1343: "HOTP: Success" beside a TOTP that no longer unseals.
    from types import SimpleNamespace
    from typing import cast

    from runtime.state.steps.attest import totp_live
    from runtime.state.steps.context import Context
    from tests.fakes_platform import FakePlatform

    session = token_checked_session()
    session.totp = TotpFacts("123456", step=0)  # a window long gone: the refresh runs
    platform = FakePlatform(
        totp_results=[TotpFacts(None, failure=TotpFailure.PCRS_CHANGED, message="refused")]
    )
    lines = totp_live(cast(Context, SimpleNamespace(session=session, platform=platform)))()
    assert session.hotp is None and "Success" not in lines[1]
    assert not session.may_autoboot()
