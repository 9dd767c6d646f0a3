"""Attestation to the user: the TOTP code (phone), the HOTP code (USB token),
and the automatic boot that only follows a successful attestation."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from runtime.state.keys import BACK, POWER_OFF, REBOOT, RECOVERY, RESET_TPM
from runtime.state.machine import Event
from runtime.state.platform import HotpCheck, TotpFailure
from runtime.state.steps.boot import check_boot
from runtime.state.steps.context import Context
from runtime.state.steps.lockout import locked_out, lockout_menu
from runtime.state.steps.report import integrity_report
from runtime.state.steps.root import check_root_at_boot
from runtime.state.view import Choice, Menu, Progress, Tone


def totp(ctx: Context) -> Event:
    if ctx.session.start.basic:
        return Event.BASIC  # from a new secret or the clock: Basic mode attests nothing
    if not ctx.session.tpm_present:
        return Event.NO_TPM
    session = ctx.session
    ctx.ui.progress(
        Progress(
            "TOTP", "Unsealing the TOTP secret from the TPM...", live=session.early_totp_live()
        )
    )
    result = session.totp = ctx.platform.unseal_totp()
    # From here the menus show this attestation's code: the early one never again
    # (a refresh after a new secret or a recovery shell must not bring it back).
    session.early_totp = None
    # Each refresh is a new attestation: the token is asked again too.
    ctx.session.hotp = None
    return Event.SHOWN if result.code is not None else Event.FAILED


# Why the secret did not unseal, and what the user can do, by cause.
_TOTP_ADVICE: dict[TotpFailure, tuple[str, str]] = {
    TotpFailure.MISSING: (
        "No TOTP secret has been sealed in this TPM yet (a new machine, or the TPM was reset).",
        "Generate a secret and enrol it in your phone's authenticator app.",
    ),
    TotpFailure.PCRS_CHANGED: (
        "The TPM refused the secret because a measurement changed since it was sealed. "
        "Likely causes: a firmware update, a changed firmware configuration or initramfs, "
        "a changed kernel command line - or tampering.",
        "If you changed one of these yourself, look at the integrity report, then generate "
        "a new secret. If you did not, do not trust this machine: use the recovery shell "
        "or power off and investigate.",
    ),
    TotpFailure.RECOVERY_USED: (
        "A recovery shell was opened during this boot: that extended PCR 4, so nothing "
        "sealed to a normal boot can be unsealed until the machine restarts.",
        "Reboot to see the TOTP code again.",
    ),
    TotpFailure.NOT_BOUND: (
        "The sealed secret is not bound to the measurement of this runtime, so a code "
        "from it would prove nothing.",
        "Generate a new secret.",
    ),
    TotpFailure.NO_PRIMARY: (
        "The TPM has no storage key: it was reset or never taken into use.",
        "Reset the TPM (sets the owner passphrase), then generate a secret.",
    ),
    TotpFailure.TPM_ERROR: (
        "The TPM reported an error while unsealing.",
        "Reboot and look again; if it persists, reset the TPM.",
    ),
}


_TOTP_WHY = (
    "The TOTP code on your phone is how you check that the firmware was not "
    "changed; without it this boot proves nothing."
)
# Heads' g/p/i/x: p is Heads' Reset the TPM here, so power off moves to P
_TOTP_REPORT = Choice("s", "Show the integrity report", "report")
_TOTP_RESET = dataclasses.replace(RESET_TPM, key="p")
_TOTP_CONTINUE = Choice("i", "Ignore and continue to the main menu", Event.CONTINUE)
_TOTP_POWER_OFF = dataclasses.replace(POWER_OFF, key="P")


def totp_failed(ctx: Context) -> Event:
    result = ctx.session.totp
    assert result is not None
    if result.failure is TotpFailure.TPM_ERROR and (lockout := locked_out(ctx)):
        # anything that can give the TPM wrong passphrases (the OS, with a key of its
        # own) can cause this: clearing it keeps the secret, a reset would not
        while True:
            event = lockout_menu(
                ctx,
                "ERROR: the TPM is locked out, no TOTP code",
                "The sealed TOTP secret cannot be loaded.",
                _TOTP_WHY + " A lockout says nothing about the firmware: the operating "
                "system can cause one with a key of its own.",
                lockout,
                (_TOTP_REPORT, _TOTP_RESET, _TOTP_CONTINUE, REBOOT, _TOTP_POWER_OFF, RECOVERY),
            )
            if event == "cleared":
                return Event.RETRY  # unseal again, then the HOTP check
            if event != "report":
                return Event(event)
            if integrity_report(ctx) == Event.RECOVERY:
                return Event.RECOVERY
    cause, todo = _TOTP_ADVICE.get(result.failure, _TOTP_ADVICE[TotpFailure.TPM_ERROR])
    what = result.message + ("\n" + cause if cause else "")
    while True:
        event = ctx.problem_menu(
            "ERROR: the TOTP code cannot be shown",
            what,
            _TOTP_WHY,
            todo,
            (
                _TOTP_REPORT,
                Choice("g", "Generate a new TOTP/HOTP secret", Event.GENERATE),
                _TOTP_RESET,
                _TOTP_CONTINUE,
                REBOOT,
                _TOTP_POWER_OFF,
                RECOVERY,
            ),
        )
        if event != "report":
            return Event(event)
        if integrity_report(ctx) == Event.RECOVERY:
            return Event.RECOVERY


def hotp(ctx: Context) -> Event:
    if not ctx.session.start.hotp_configured:
        return Event.NOT_CONFIGURED
    ctx.ui.progress(Progress("HOTP", "Checking the HOTP code with the USB token..."))
    result = ctx.session.hotp = ctx.platform.verify_hotp()
    return Event.VERIFIED if result.outcome is HotpCheck.SUCCESS else Event.FAILED


def hotp_failed(ctx: Context) -> Event:
    result = ctx.session.hotp
    assert result is not None
    invalid = result.outcome is HotpCheck.INVALID
    why = (
        "The token holds the same secret as the TPM: a code it refuses means the "
        "firmware could not unseal the secret, or the token belongs to another machine."
        if invalid
        else "Without the token's check, only the TOTP code on your phone attests this boot."
    )
    todo = {
        HotpCheck.ABSENT: "Insert the token and retry, or continue with the TOTP code alone.",
        HotpCheck.NOT_PROGRAMMED: "Generate a new secret: it programs the token too.",
        HotpCheck.INVALID: "Compare the TOTP code with your phone. If it differs too, do "
        "not trust this machine.",
    }.get(result.outcome, "Retry; if it keeps failing, reinsert the token.")
    if result.outcome in (HotpCheck.ERROR, HotpCheck.NO_SECRET) and (lockout := locked_out(ctx)):
        # the HOTP counter or the secret is refused while the TPM is locked out
        event = lockout_menu(
            ctx,
            "WARNING: the TPM is locked out, HOTP not verified",
            result.message,
            why,
            lockout,
            (
                Choice("r", "Check the token again", Event.RETRY),
                Choice("i", "Ignore and continue to the main menu", Event.CONTINUE),
                RECOVERY,
            ),
            Tone.WARNING,
        )
        return Event.RETRY if event == "cleared" else Event(event)
    return Event(
        ctx.problem_menu(
            "ERROR: HOTP code invalid" if invalid else "WARNING: HOTP not verified",
            result.message,
            why,
            todo,
            # Heads' letters for every outcome (r/g/i/x)
            (
                Choice("r", "Retry", Event.RETRY),
                Choice("g", "Generate a new TOTP/HOTP secret", Event.GENERATE),
                Choice("i", "Ignore and continue to the main menu", Event.CONTINUE),
                RECOVERY,
            ),
            tone=Tone.ERROR if invalid else Tone.WARNING,
        )
    )


def autoboot(ctx: Context) -> Event:
    session = ctx.session
    if not session.may_autoboot():
        return Event.NOT_ALLOWED
    session.autoboot_offered = True
    # Nobody may be watching: only a machine the verdict calls VERIFIED, /boot
    # included, counts down (or all of it but the rollback check the owner
    # turned off, as in Heads). Anything less stops at the main menu, which says why.
    if session.boot_check is None and session.boot is not None and session.boot.device:
        check_boot(ctx, "Checking /boot")
    found = session.verdict()
    if not found.unattended or not check_root_at_boot(ctx):
        return Event.NOT_ALLOWED
    timeout = session.start.auto_boot_timeout
    assert timeout
    event = ctx.choose(
        Menu(
            "Automatic boot",
            (
                found.line,
                *session.setting_warnings(),
                "The default entry boots when the countdown ends.",
            ),
            (
                Choice(BACK, "Stop: go to the main menu", Event.INTERRUPTED),
                Choice("d", "Boot the default entry now", Event.TIMEOUT),
            ),
            tone=found.tone,
            live=totp_live(ctx),
            timeout=timeout,
            timeout_event=Event.TIMEOUT,
            back_event=Event.INTERRUPTED,
        )
    )
    if event == Event.TIMEOUT and not session.verdict().unattended:
        return Event.INTERRUPTED  # the code refreshed during the countdown did not unseal
    return Event(event)


def totp_live(ctx: Context) -> Callable[[], tuple[str, ...]]:
    """The clock and the current TOTP code, for a menu's live lines: a new code
    at each period boundary, unsealed again as Heads does (the secret is in RAM
    only while one code is computed). Runs while the machine waits for the
    choice, so the TPM is free."""
    session, platform = ctx.session, ctx.platform

    def live() -> tuple[str, ...]:
        if session.tpm_present and session.totp_window_turned():
            session.totp = platform.unseal_totp()
            if session.totp.code is None:
                # a HOTP Success proves nothing about a firmware whose secret
                # no longer unseals (Heads' issue #1343)
                session.hotp = None
        return (platform.now_text(), f"{session.totp_line()}    HOTP: {session.hotp_status()}")

    return live
