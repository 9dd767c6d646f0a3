"""What this power-on has found so far, and the verdicts drawn from it.

Filled in by the steps; read by the screens. Pure: the integrity verdict and
whether the automatic boot is allowed are decided here, from facts alone.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from runtime.state.platform import (
    BootCheck,
    BootFacts,
    HotpFacts,
    HotpOutcome,
    KeyringFacts,
    MeasureFacts,
    StartFacts,
    TotpFacts,
    TotpFailure,
)
from runtime.state.view import Tone

TOTP_PERIOD = 30


@dataclass
class Session:
    start: StartFacts = field(default_factory=lambda: StartFacts("?", "heads-runtime"))
    measure: MeasureFacts | None = None
    boot: BootFacts | None = None
    preflight_problem: str = ""
    keyring: KeyringFacts | None = None
    totp: TotpFacts | None = None
    hotp: HotpFacts | None = None
    #: The user chose to go on past a failure without attesting (Heads' "ignore").
    attestation_skipped: bool = False
    autoboot_offered: bool = False
    boot_refusal: str = ""
    #: the last check of /boot against the owner's signature (None: not yet)
    boot_check: BootCheck | None = None
    menu_shown: bool = False  # for the boot log: the first main menu
    #: Set by a TPM reset and used by the sealing right after it, so the new
    #: passphrase is not asked twice in a row; wiped when taken.
    _owner_passphrase: bytearray | None = None

    def keep_owner_passphrase(self, passphrase: bytearray) -> None:
        self._owner_passphrase = passphrase

    def take_owner_passphrase(self) -> bytearray | None:
        """The kept passphrase (the caller wipes it), once."""
        passphrase, self._owner_passphrase = self._owner_passphrase, None
        return passphrase

    @property
    def tpm_present(self) -> bool:
        return not self.start.tpm_problem

    @property
    def attested(self) -> bool:
        """The user has seen a TOTP code and, where a token is configured, it
        verified the HOTP code: only then may the default entry boot unattended."""
        totp_ok = self.totp is not None and self.totp.code is not None
        if not totp_ok or self.attestation_skipped:
            return False
        if not self.start.hotp_configured:
            return True
        return self.hotp is not None and self.hotp.outcome is HotpOutcome.SUCCESS

    def may_autoboot(self) -> bool:
        timeout = self.start.auto_boot_timeout
        return bool(timeout) and self.attested and not self.autoboot_offered

    def integrity(self) -> tuple[Tone, str]:
        """The main menu's verdict: colour and words."""
        if not self.tpm_present:
            return Tone.ERROR, "NO TPM: nothing on this boot can be verified"
        totp = self.totp
        if totp is not None and totp.failure in (TotpFailure.PCRS_CHANGED,
                                                 TotpFailure.RECOVERY_USED):
            return Tone.ERROR, "TAMPERED? the measurements differ from when the secret was sealed"
        if self.measure is not None and not self.measure.measurements_match:
            return Tone.ERROR, "TAMPERED? the event log does not match the TPM"
        if self.hotp is not None and self.hotp.outcome is HotpOutcome.INVALID:
            return Tone.ERROR, "TAMPERED? the HOTP token refused the code"
        problems = []
        if totp is None or totp.code is None:
            problems.append("no TOTP code")
        if self.start.hotp_configured and (self.hotp is None
                                           or self.hotp.outcome is not HotpOutcome.SUCCESS):
            problems.append("HOTP not verified")
        if self.boot is None or not self.boot.device:
            problems.append("no /boot")
        if self.preflight_problem:
            problems.append("TPM rollback state inconsistent")
        if self.start.config_problems:
            problems.append("configuration problems")
        if problems:
            return Tone.WARNING, "UNVERIFIED: " + ", ".join(problems)
        return Tone.GOOD, "VERIFIED: compare the TOTP code with your phone"

    def hotp_status(self) -> str:
        if not self.start.hotp_configured:
            return "N/A"
        if self.hotp is None:
            return "Unverified"
        return {
            HotpOutcome.SUCCESS: "Success",
            HotpOutcome.INVALID: "Invalid code",
            HotpOutcome.NOT_PROGRAMMED: "Token not programmed",
            HotpOutcome.ABSENT: "No token",
            HotpOutcome.ERROR: "Error",
            HotpOutcome.NO_SECRET: "No secret",
        }[self.hotp.outcome]

    def totp_line(self, now: float | None = None) -> str:
        totp = self.totp
        if not self.tpm_present:
            return "TOTP: NO TPM"
        if totp is None or totp.code is None:
            return "TOTP: none (" + (totp.message if totp else "not unsealed yet") + ")"
        left = TOTP_PERIOD - int(time.time() if now is None else now) % TOTP_PERIOD
        return f"TOTP: {totp.code}  ({left:2d} s left)"

    def totp_window_turned(self, now: float | None = None) -> bool:
        if self.totp is None or self.totp.code is None:
            return False
        return int(time.time() if now is None else now) // TOTP_PERIOD != self.totp.step
