"""One verdict about this machine, from all the evidence of this power-on.

The title bar, the main menu, the integrity report and the boot refusal all
show what `verdict` returns, so they cannot disagree. VERIFIED (green) only
when the firmware's measurements match, the sealed secret unsealed (and the
HOTP token agreed, where one is configured) and /boot verified against the
owner's pinned key. Every other state has its own words, and a way forward
where there is one: absence (no disk, not signed yet) is not an attack, and
the user's own recovery shell is not tampering. With the rollback check
turned off (CONFIG_IGNORE_ROLLBACK) a /boot that verified is ROLLBACK CHECK
OFF, never VERIFIED: its signature says nothing about whether it is the
latest one.

Pure: facts in, words out (tests/unit/state/test_verdict.py is the truth table).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from runtime.state.view import Tone

VERIFIED = "VERIFIED"
#: all checked but /boot's freshness: the owner turned the rollback check off
ROLLBACK_OFF = "ROLLBACK CHECK OFF"
BASIC_MODE = "BASIC MODE"


class BootState(enum.StrEnum):
    """What the last check of /boot found."""

    NO_DISK = "no disk"
    NO_BOOT = "no /boot"  # disks, but no partition with a boot configuration
    NOT_CHECKED = "not checked"
    NOT_SIGNED = "not signed yet"
    NO_OWNER_KEY = "no owner key"  # the firmware holds no key to check with
    UNKNOWN_SIGNER = "signed by another key"
    BAD_SIGNATURE = "signature does not match"  # the signed lists were changed
    ROLLED_BACK = "older signed copy"
    CHANGED = "changed since signed"
    VERIFIED = "verified"


class Secret(enum.StrEnum):
    """What became of the sealed TOTP/HOTP secret."""

    SHOWN = "shown"  # unsealed: a code is on the screen
    NONE_SEALED = "none sealed"
    REFUSED = "refused"  # the TPM refused it: the measurements differ
    RECOVERY = "recovery"  # refused because this boot opened a recovery shell
    ERROR = "error"  # the TPM could not be asked


class Token(enum.StrEnum):
    NOT_CONFIGURED = "not configured"
    SUCCESS = "success"
    INVALID = "invalid"  # the token refused the code
    UNVERIFIED = "unverified"  # no token, not programmed, an error


@dataclass(frozen=True)
class Evidence:
    tpm: bool
    measurements_match: bool  # firmware log + the runtime's own extends vs the PCRs
    recovery_opened: bool  # this power-on opened the authenticated recovery shell
    secret: Secret
    token: Token
    boot: BootState
    changed: tuple[str, ...] = ()  # what changed on /boot, as shown
    rollback_problem: bool = False  # the TPM counter and /boot disagree
    config_problems: bool = False
    rollback_off: bool = False  # CONFIG_IGNORE_ROLLBACK: /boot's counter is never read
    basic: bool = False  # CONFIG_BASIC: nothing is checked, by the owner's choice
    root_changed: bool = False  # the root file system differs from its signed list


@dataclass(frozen=True)
class Verdict:
    word: str  # the title bar's word: VERIFIED, TAMPERED?, NOT SIGNED YET, ...
    tone: Tone
    headline: str  # one line: what it means, and what to do where there is something
    reasons: tuple[str, ...] = ()

    @property
    def line(self) -> str:
        return f"{self.word}: {self.headline}"

    @property
    def unattended(self) -> bool:
        """The default entry may boot with nobody watching: VERIFIED, or all of
        it but the rollback check the owner turned off (Heads' automatic boot
        does not look at that setting either)."""
        return self.word in (VERIFIED, ROLLBACK_OFF)


def _changed(files: tuple[str, ...]) -> str:
    shown = ", ".join(files[:4]) + (", ..." if len(files) > 4 else "")
    return f" ({shown})" if shown else ""


def verdict(e: Evidence) -> Verdict:
    """Worst first: no TPM, an attack's signs, then what is missing; the
    reasons name everything that stands between this boot and VERIFIED."""
    if e.basic and e.measurements_match:
        # the owner turned the checks off: no verdict on what was not checked,
        # but the event log that does not explain the PCRs still says so
        return Verdict(
            BASIC_MODE,
            Tone.WARNING,
            "no tamper evidence: no TOTP/HOTP, and /boot's signature is not checked",
            ("Basic mode (CONFIG_BASIC)",),
        )
    found = _worst(e)
    return Verdict(found.word, found.tone, found.headline, tuple(_reasons(e)))


def _reasons(e: Evidence) -> list[str]:
    reasons = []
    if e.secret is not Secret.SHOWN:
        reasons.append("no TOTP code")
    if not e.measurements_match:
        reasons.append("the measurements do not match the event logs")
    if e.token in (Token.INVALID, Token.UNVERIFIED):
        reasons.append("HOTP not verified")
    if e.boot is not BootState.VERIFIED:
        reasons.append(f"/boot: {e.boot}")
    if e.rollback_problem:
        reasons.append("TPM rollback state inconsistent")
    if e.config_problems:
        reasons.append("configuration problems")
    if e.rollback_off and e.tpm:
        reasons.append("/boot's rollback counter not checked")
    if e.root_changed:
        reasons.append("the root file system changed")
    return reasons


def _worst(e: Evidence) -> Verdict:
    if not e.tpm:
        return Verdict("NO TPM", Tone.ERROR, "nothing on this boot can be verified")
    # Signs of an attack come before the owner's recovery shell: the shell
    # explains PCR 4 (its extends are in the runtime's log), nothing else.
    if not e.measurements_match:
        return Verdict("TAMPERED?", Tone.ERROR, "the event log does not match the TPM")
    if e.token is Token.INVALID:
        return Verdict("TAMPERED?", Tone.ERROR, "the HOTP token refused the code")
    if e.boot is BootState.ROLLED_BACK:
        return Verdict("TAMPERED?", Tone.ERROR, "/boot is an older signed copy (rollback)")
    if e.boot is BootState.UNKNOWN_SIGNER:
        return Verdict("TAMPERED?", Tone.ERROR, "/boot is signed by a key that is not yours")
    if e.boot is BootState.BAD_SIGNATURE:
        return Verdict("TAMPERED?", Tone.ERROR, "/boot's hash lists do not match your signature")
    if e.secret is Secret.RECOVERY:
        return Verdict(
            "RECOVERY SHELL OPENED", Tone.WARNING, "secrets stay sealed until the next power-on"
        )
    if e.secret is Secret.REFUSED:
        return Verdict(
            "TAMPERED?", Tone.ERROR, "the measurements differ from when the secret was sealed"
        )
    missing = _missing(e)
    if missing is not None:
        return missing
    if e.rollback_off:
        return Verdict(
            ROLLBACK_OFF,
            Tone.WARNING,
            "/boot is signed by you, but nothing shows it is your latest",
        )
    return Verdict(VERIFIED, Tone.GOOD, "compare the TOTP code with your phone")


def _missing(e: Evidence) -> Verdict | None:
    """Something that stops a verified boot without a sign of an attack."""
    if e.rollback_problem:
        # the start stops attesting there: say why, not what is missing after it
        return Verdict("UNVERIFIED", Tone.WARNING, "the TPM rollback state is inconsistent")
    if e.secret is Secret.NONE_SEALED:
        return Verdict("UNVERIFIED", Tone.WARNING, "no TOTP secret is sealed: generate one")
    if e.secret is not Secret.SHOWN:
        return Verdict("UNVERIFIED", Tone.WARNING, "no TOTP code was shown")
    boot = {
        BootState.NO_DISK: ("NO DISK", "no disk was found: there is nothing to boot"),
        BootState.NO_BOOT: ("NO /BOOT", "no partition holds a boot configuration"),
        BootState.NOT_CHECKED: ("UNVERIFIED", "/boot was not checked"),
        BootState.NOT_SIGNED: ("NOT SIGNED YET", "/boot was never signed: sign it now"),
        BootState.NO_OWNER_KEY: ("NO OWNER KEY", "the firmware holds no key to check /boot"),
        BootState.CHANGED: ("CHANGED", "/boot changed since you signed it" + _changed(e.changed)),
    }.get(e.boot)
    if boot is not None:
        return Verdict(boot[0], Tone.WARNING, boot[1])
    if e.token is Token.UNVERIFIED:
        return Verdict("UNVERIFIED", Tone.WARNING, "the HOTP token did not verify the code")
    if e.root_changed:
        # an OS update does this as well as an attacker: the owner looks
        return Verdict(
            "ROOT CHANGED", Tone.WARNING, "the root file system differs from your signed list"
        )
    if e.config_problems:
        return Verdict("UNVERIFIED", Tone.WARNING, "the configuration has problems")
    return None
