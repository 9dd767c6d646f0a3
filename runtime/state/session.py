"""What this power-on has found so far, and the verdicts drawn from it.

Filled in by the steps; read by the screens. Pure: the integrity verdict and
whether the automatic boot is allowed are decided here, from facts alone.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from runtime.integrity.boot_report import ProblemKind
from runtime.secrets.totp import PERIOD as TOTP_PERIOD
from runtime.state.platform import (
    BootCheck,
    BootFacts,
    HotpCheck,
    HotpFacts,
    KeyringFacts,
    MeasureFacts,
    RootFacts,
    StartFacts,
    TotpFacts,
    TotpFailure,
)
from runtime.state.verdict import BootState, Evidence, Secret, Token, Verdict, verdict
from runtime.state.view import Tone

_SECRET = {
    TotpFailure.MISSING: Secret.NONE_SEALED,
    TotpFailure.NO_PRIMARY: Secret.NONE_SEALED,
    TotpFailure.PCRS_CHANGED: Secret.REFUSED,
    TotpFailure.NOT_BOUND: Secret.REFUSED,
    TotpFailure.RECOVERY_USED: Secret.RECOVERY,
    TotpFailure.TPM_ERROR: Secret.ERROR,
}

#: the main menu's and the countdown's lines while the owner's settings weaken a check
TOTP_ONLY_WARNING = (
    "Automatic boot on TOTP alone: nobody checks the code before it boots "
    "(CONFIG_AUTO_BOOT_TOTP_ONLY)"
)
BASIC_WARNING = (
    "Basic mode (CONFIG_BASIC): no TOTP/HOTP and no signature check on /boot; "
    "a firmware image built without it gives tamper evidence"
)
ROLLBACK_OFF_WARNING = (
    "Rollback check off (CONFIG_IGNORE_ROLLBACK): an older signed /boot would boot"
)


def window_turned(totp: TotpFacts, now: float) -> bool:
    """The 30-second window ``totp``'s code belongs to has ended."""
    return int(now) // TOTP_PERIOD != totp.step


def code_line(code: str, now: float) -> str:
    """A code with the seconds its window has left, as every screen shows it."""
    left = TOTP_PERIOD - int(now) % TOTP_PERIOD
    return f"TOTP: {code}  ({left:2d} s left)"


def early_code_lines(early: TotpFacts, now: float) -> tuple[str, ...]:
    """The early code while its window lasts, with the seconds left; nothing
    once it has turned (a stale code would look like a wrong one)."""
    if early.code is None or window_turned(early, now):
        return ()
    return (code_line(early.code, now) + "  - compare it with your phone",)


@dataclass
class Session:
    start: StartFacts = field(default_factory=lambda: StartFacts("?", "heads-runtime"))
    measure: MeasureFacts | None = None
    boot: BootFacts | None = None
    preflight_problem: str = ""
    keyring: KeyringFacts | None = None
    totp: TotpFacts | None = None
    #: the code unsealed before the drivers loaded, shown on the progress
    #: screens only: the TOTP state attests (unseals again) after the checks
    early_totp: TotpFacts | None = None
    hotp: HotpFacts | None = None
    #: The user chose to go on past a failure without attesting (Heads' "ignore").
    attestation_skipped: bool = False
    autoboot_offered: bool = False
    boot_refusal: str = ""
    #: the last check of /boot against the owner's signature (None: not yet)
    boot_check: BootCheck | None = None
    menu_shown: bool = False  # for the boot log: the first main menu
    #: the root file system against its signed list (None: not checked)
    root_check: RootFacts | None = None
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
        verified the HOTP code: the default entry boots unattended only then
        (and may_autoboot asks for the token's Success on top)."""
        totp_ok = self.totp is not None and self.totp.code is not None
        if not totp_ok or self.attestation_skipped:
            return False
        if not self.start.hotp_configured:
            return True
        return self.hotp is not None and self.hotp.outcome is HotpCheck.SUCCESS

    @property
    def hotp_succeeded(self) -> bool:
        """The token verified this power-on's code: a check nobody has to read."""
        return (
            self.start.hotp_configured
            and self.hotp is not None
            and self.hotp.outcome is HotpCheck.SUCCESS
        )

    @property
    def totp_only_autoboot(self) -> bool:
        """The owner let the countdown follow a TOTP code alone, and it would:
        no token is configured, so none is checked."""
        start = self.start
        return (
            bool(start.auto_boot_timeout)
            and start.auto_boot_totp_only
            and not start.hotp_configured
        )

    def may_autoboot(self) -> bool:
        """As Heads: only after the HOTP check's Success, as a TOTP code nobody
        compared proves nothing to a machine booting by itself (firmware
        replaced wholesale can draw any code); TOTP alone only where the owner
        chose it."""
        timeout = self.start.auto_boot_timeout
        automatic = self.hotp_succeeded or self.totp_only_autoboot
        return bool(timeout) and self.attested and not self.autoboot_offered and automatic

    def autoboot_withheld(self) -> str:
        """Why the configured countdown does not run for want of the HOTP check
        (one line for the main menu); empty when that is not the reason."""
        if not self.start.auto_boot_timeout or self.hotp_succeeded or self.totp_only_autoboot:
            return ""
        if self.start.basic:
            return "No automatic boot: Basic mode checks nothing, so nothing boots by itself."
        if not self.start.hotp_configured:
            return (
                "No automatic boot: no HOTP token checks this boot's code "
                "(CONFIG_AUTO_BOOT_TOTP_ONLY=y would boot on TOTP alone)."
            )
        return f"No automatic boot: the HOTP check did not succeed ({self.hotp_status()})."

    def setting_warnings(self) -> tuple[str, ...]:
        """The owner's settings that weaken what this boot checks, one line each."""
        lines = []
        if self.start.basic:
            lines.append(BASIC_WARNING)
        if self.totp_only_autoboot:
            lines.append(TOTP_ONLY_WARNING)
        if self.start.rollback_check_off:
            lines.append(ROLLBACK_OFF_WARNING)
        return tuple(lines)

    def evidence(self) -> Evidence:
        """This power-on's facts, as the verdict takes them."""
        totp = self.totp
        secret = (
            Secret.SHOWN
            if totp is not None and totp.code is not None
            else _SECRET.get(totp.failure, Secret.ERROR)
            if totp is not None
            else Secret.ERROR
        )
        if not self.start.hotp_configured:
            token = Token.NOT_CONFIGURED
        elif self.hotp is not None and self.hotp.outcome is HotpCheck.SUCCESS:
            token = Token.SUCCESS
        elif self.hotp is not None and self.hotp.outcome is HotpCheck.INVALID:
            token = Token.INVALID
        else:
            token = Token.UNVERIFIED
        check = self.boot_check
        return Evidence(
            tpm=self.tpm_present,
            measurements_match=self.measure is None or self.measure.measurements_match,
            recovery_opened=totp is not None and totp.failure is TotpFailure.RECOVERY_USED,
            secret=secret,
            token=token,
            boot=self.boot_state(),
            changed=check.changed if check is not None else (),
            rollback_problem=bool(self.preflight_problem),
            config_problems=bool(self.start.config_problems),
            rollback_off=self.start.rollback_check_off,
            basic=self.start.basic,
            root_changed=self.root_check is not None
            and not self.root_check.problem
            and not self.root_check.ok,
        )

    def boot_state(self) -> BootState:
        boot, check = self.boot, self.boot_check
        if boot is None or not boot.device:
            return BootState.NO_BOOT if boot is not None and boot.disk_seen else BootState.NO_DISK
        if self.keyring is not None and not self.keyring.fingerprints:
            return BootState.NO_OWNER_KEY
        if check is None or not self.tpm_present:
            return BootState.NOT_CHECKED  # without a TPM no rollback counter is read
        if check.ok:
            return BootState.VERIFIED
        if check.unsigned:
            return BootState.NOT_SIGNED
        kinds = check.kinds
        if ProblemKind.OTHER_SIGNER in kinds:
            return BootState.UNKNOWN_SIGNER
        if ProblemKind.LISTS_CHANGED in kinds:
            return BootState.BAD_SIGNATURE
        if ProblemKind.ROLLED_BACK in kinds:
            return BootState.ROLLED_BACK
        return BootState.CHANGED

    def verdict(self) -> Verdict:
        return verdict(self.evidence())

    def integrity(self) -> tuple[Tone, str]:
        """The verdict's colour and line (the main menu, the reports)."""
        found = self.verdict()
        return found.tone, found.line

    def root_line(self) -> str:
        """The root file system's check, one line for the menus (empty: none)."""
        check = self.root_check
        if check is None:
            return ""
        if check.problem:
            return "Root file system: not checked (" + check.problem.rstrip(".") + ")."
        if check.ok:
            return f"Root file system: matches your signed list ({check.checked} files)."
        differ = len(check.changed) + len(check.missing) + len(check.added)
        return (
            f"Root file system: CHANGED ({differ} files differ from your signed list; "
            "Options > Root file system hashes)."
        )

    def hotp_status(self) -> str:
        if not self.start.hotp_configured:
            return "N/A"
        if self.hotp is None:
            return "Unverified"
        return {
            HotpCheck.SUCCESS: "Success",
            HotpCheck.INVALID: "Invalid code",
            HotpCheck.NOT_PROGRAMMED: "Token not programmed",
            HotpCheck.ABSENT: "No token",
            HotpCheck.ERROR: "Error",
            HotpCheck.NO_SECRET: "No secret",
        }[self.hotp.outcome]

    def totp_line(self, now: float | None = None) -> str:
        totp = self.totp
        if not self.tpm_present:
            return "TOTP: NO TPM"
        if totp is None or totp.code is None:
            return "TOTP: none (" + (totp.message if totp else "not unsealed yet") + ")"
        return code_line(totp.code, time.time() if now is None else now)

    def early_totp_live(self) -> Callable[[], tuple[str, ...]] | None:
        """The early code's line for the progress screens, refreshed by the UI
        each second; None once the TOTP state has attested (its own code is on
        the menus then). The closure holds the facts, not the session: it runs
        in the UI's thread."""
        early = self.early_totp
        if early is None or early.code is None:
            return None
        return lambda: early_code_lines(early, time.time())

    def totp_window_turned(self, now: float | None = None) -> bool:
        if self.totp is None or self.totp.code is None:
            return False
        return window_turned(self.totp, time.time() if now is None else now)
