"""The verdict's truth table: every combination of the evidence, and the
rules a user relies on (VERIFIED only when everything checked; absence and the
owner's own recovery shell never read as an attack)."""

from __future__ import annotations

import itertools

from runtime.state.verdict import BootState, Evidence, Secret, Token, verdict
from runtime.state.view import Tone
from tests.support.verdict_oracle import everything_checked

ATTACK_SIGNS = {"TAMPERED?"}
WORDS = {
    "VERIFIED",
    "TAMPERED?",
    "NO TPM",
    "RECOVERY SHELL OPENED",
    "UNVERIFIED",
    "NO DISK",
    "NO /BOOT",
    "NOT SIGNED YET",
    "NO OWNER KEY",
    "CHANGED",
    "ROLLBACK CHECK OFF",
    "BASIC MODE",
    "ROOT CHANGED",
}
FLAGS = (True, False)


def every_evidence() -> list[Evidence]:
    return [
        Evidence(
            tpm,
            match,
            recovery,
            secret,
            token,
            boot,
            ("vmlinuz",),
            rollback,
            config,
            rollback_off,
            basic,
            root_changed,
        )
        for (
            tpm,
            match,
            recovery,
            rollback,
            config,
            rollback_off,
            basic,
            root_changed,
        ) in itertools.product(FLAGS, repeat=8)
        for secret, token, boot in itertools.product(Secret, Token, BootState)
    ]


def test_verified_exactly_when_everything_was_checked() -> None:
    table = every_evidence()
    assert len(table) == 2 * 2 * 2 * len(Secret) * len(Token) * len(BootState) * 2**5
    for e in table:
        found = verdict(e)
        assert found.word in WORDS, found
        assert (found.word == "VERIFIED") is everything_checked(e), e
        assert (found.tone is Tone.GOOD) is everything_checked(e), e
        if e.tpm:  # without a TPM, the verdict says so, whatever else is missing
            assert bool(found.reasons) is not everything_checked(e), e


def test_signs_of_an_attack_and_only_they_read_as_one() -> None:
    for e in every_evidence():
        found = verdict(e)
        sign = (
            e.secret is Secret.REFUSED
            or e.token is Token.INVALID
            or e.boot in (BootState.ROLLED_BACK, BootState.UNKNOWN_SIGNER, BootState.BAD_SIGNATURE)
            or not e.measurements_match
        )
        # with a TPM: TAMPERED? exactly on a sign, whatever else (a recovery
        # shell opened this boot hides none); Basic mode checked nothing but
        # the event log, whose disagreement it still says
        basic_says = e.basic and e.measurements_match
        assert (found.word in ATTACK_SIGNS) is (e.tpm and sign and not basic_says), e
        if found.word in ATTACK_SIGNS:
            assert found.tone is Tone.ERROR


def test_absence_is_never_an_attack_and_names_its_way_forward() -> None:
    base = Evidence(True, True, False, Secret.SHOWN, Token.NOT_CONFIGURED, BootState.VERIFIED)
    for boot, word, hint in (
        (BootState.NO_DISK, "NO DISK", "no disk"),
        (BootState.NO_BOOT, "NO /BOOT", "boot configuration"),
        (BootState.NOT_SIGNED, "NOT SIGNED YET", "sign it now"),
        (BootState.CHANGED, "CHANGED", "vmlinuz"),
    ):
        found = verdict(Evidence(**{**base.__dict__, "boot": boot, "changed": ("vmlinuz",)}))
        assert (found.word, found.tone) == (word, Tone.WARNING) and hint in found.headline
    found = verdict(Evidence(**{**base.__dict__, "secret": Secret.NONE_SEALED}))
    assert found.word == "UNVERIFIED" and "generate" in found.headline


def test_the_owners_recovery_shell_is_said_plainly() -> None:
    e = Evidence(True, True, True, Secret.RECOVERY, Token.NOT_CONFIGURED, BootState.VERIFIED)
    found = verdict(e)
    assert found.word == "RECOVERY SHELL OPENED" and found.tone is Tone.WARNING
    assert "next power-on" in found.headline
