"""The start of the power-on: early init, measuring, /boot, rollback
preflight, the ROM keyring, and their failure screens."""

from __future__ import annotations

import dataclasses

from runtime import bootlog
from runtime.state.keys import OEM_RESET, POWER_OFF, REBOOT, RECOVERY, RESET_TPM
from runtime.state.machine import Event
from runtime.state.steps.boot import problem_screen, usb_boot
from runtime.state.steps.context import Context
from runtime.state.steps.report import integrity_report
from runtime.state.view import Choice, Page, Progress, Tone


def early_init(ctx: Context) -> Event:
    ctx.ui.progress(Progress("Starting", "Reading the board configuration and the TPM..."))
    start = ctx.session.start = ctx.platform.start()
    if start.fatal:
        return Event.FATAL
    return Event.NO_TPM if start.tpm_problem else Event.OK


def fatal(ctx: Context) -> Event:
    return Event(
        ctx.problem_menu(
            "The runtime cannot start",
            ctx.session.start.fatal,
            "Without its configuration the runtime cannot tell what to measure or check, "
            "so it will not boot anything.",
            "Rebuild the firmware image; the recovery shell lets you look around.",
            (RECOVERY, POWER_OFF, REBOOT),
        )
    )


def no_tpm(ctx: Context) -> Event:
    return Event(
        ctx.problem_menu(
            "ERROR: no TPM",
            ctx.session.start.tpm_problem,
            "Without a TPM nothing is measured or sealed: no TOTP code can prove the firmware "
            "is unchanged, and no disk key can be released.",
            "Check the TPM in the firmware setup. Continuing boots with no proof at all.",
            (
                Choice("c", "Continue without a TPM (nothing is verified)", Event.CONTINUE),
                RECOVERY,
                POWER_OFF,
            ),
        )
    )


def early_totp(ctx: Context) -> Event:
    """The TOTP code as soon as the TPM answers, shown while the drivers load:
    its secret is sealed to the firmware's PCRs, which are final now, not to
    the drivers' PCR. Only a code is kept; a failure is judged by the TOTP
    state, with what the checks found."""
    session = ctx.session
    if session.start.basic or session.start.clock_problem:
        # Basic mode attests nothing; a clock known to be wrong gives a wrong
        # code, which the main menu explains next to it
        return Event.DONE
    ctx.ui.progress(Progress("TOTP", "Unsealing the TOTP secret from the TPM..."))
    session.early_totp = ctx.platform.early_totp()
    live = session.early_totp_live()
    if live is not None:
        ctx.ui.progress(Progress("TOTP", "Checking the drivers and /boot next...", live=live))
        bootlog.stage("totp-shown")
    return Event.DONE


def measure(ctx: Context) -> Event:
    def progress(text: str) -> None:
        ctx.ui.progress(Progress("Measuring", text, live=ctx.session.early_totp_live()))

    if ctx.session.tpm_present:
        progress("Loading drivers (each is measured into the TPM first)...")
    else:
        progress("Loading drivers (no TPM: nothing is measured)...")
    ctx.session.measure = ctx.platform.measure(progress)
    return Event.DONE


def find_boot(ctx: Context) -> Event:
    ctx.ui.progress(
        Progress(
            "Looking for /boot",
            "Probing disks and partitions...",
            live=ctx.session.early_totp_live(),
        )
    )
    boot = ctx.session.boot = ctx.platform.find_boot()
    return Event.FOUND if boot.device else Event.MISSING


def no_boot(ctx: Context) -> Event:
    boot = ctx.session.boot
    what = boot.problem if boot and boot.problem else "No partition with a boot configuration."
    if boot and boot.encrypted_seen:
        what += (
            " An encrypted (LUKS) partition was seen: /boot must be a separate, "
            "unencrypted partition."
        )
    while True:
        # Heads' u/b/m/x: b is Heads' choice here, not Back (Esc does nothing, as before)
        event = problem_screen(
            ctx,
            "ERROR: no /boot partition found",
            what,
            "The kernel to boot and its signed hash lists live on /boot; without it only "
            "the attestation (TOTP/HOTP) can be done.",
            "Attach the disk and retry, or continue to the menu.",
            (
                Choice("r", "Retry: probe the disks again", Event.RETRY),
                Choice("u", "Boot from USB", "usb"),
                Choice("b", "Boot options -->", Event.BOOT_OPTIONS),
                Choice("m", "Continue to the main menu", Event.CONTINUE),
                RECOVERY,
            ),
            back_event=None,
            tone=Tone.WARNING,
        )
        if event != "usb":
            return Event(event)
        usb_boot(ctx)


def rollback_preflight(ctx: Context) -> Event:
    if ctx.session.start.basic:
        return Event.BASIC
    if not ctx.session.tpm_present:
        return Event.OK
    ctx.session.preflight_problem = ctx.platform.rollback_preflight()
    return Event.FAILED if ctx.session.preflight_problem else Event.OK


def tpm_inconsistent(ctx: Context) -> Event:
    event = ctx.problem_menu(
        "ERROR: TPM state inconsistent",
        ctx.session.preflight_problem,
        "The TPM's rollback counter protects /boot's signed state against an older copy "
        "being put back. If it does not agree with /boot, a replayed /boot cannot be told "
        "apart from a legitimate one.",
        "If you reset or replaced the TPM yourself: continue to the main menu and sign "
        "/boot again (Options > Update checksums), which makes a new counter; reset the "
        "TPM first if its other secrets are gone too. If you did not, treat this machine "
        "as tampered with.",
        # Heads' i/o/t/m
        (
            Choice("i", "Show the integrity report", "report"),
            Choice("r", "Check again", Event.RETRY),
            dataclasses.replace(RESET_TPM, key="t"),
            dataclasses.replace(OEM_RESET, key="o"),
            Choice("m", "Continue to the main menu (no attestation)", Event.CONTINUE),
            RECOVERY,
        ),
    )
    if event == "report":
        return Event.AGAIN if integrity_report(ctx) == Event.BACK else Event.RECOVERY
    if event == Event.CONTINUE:
        ctx.session.attestation_skipped = True
    return Event(event)


def keyring_check(ctx: Context) -> Event:
    if ctx.session.start.basic:
        return Event.BASIC
    ctx.session.keyring = keyring = ctx.platform.keyring()
    return Event.OK if keyring.fingerprints else Event.EMPTY


def keyring_empty(ctx: Context) -> Event:
    keyring = ctx.session.keyring
    what = "The firmware holds no owner key."
    if keyring and keyring.problem:
        what += " " + keyring.problem
    event = ctx.problem_menu(
        "ERROR: no owner key in the firmware",
        what,
        "Signatures over /boot are checked against this key, and the recovery shell "
        "asks for it; without one /boot cannot be verified.",
        "Add your public key to the firmware image (build with --owner-key) and flash it, "
        "or do an OEM factory reset.",
        # Heads' g/F/i/x
        (
            Choice("g", "Add a key to the firmware", "add-key"),
            OEM_RESET,
            Choice("i", "Ignore and continue", Event.CONTINUE),
            RECOVERY,
        ),
    )
    if event == "add-key":
        ctx.ui.show(
            Page(
                "Add a key to the firmware",
                (
                    "The owner key is part of the firmware image, so adding one means flashing a "
                    "new image. This board has no flash chip to write (QEMU): rebuild the image "
                    "with `build_initrd.py --owner-key KEY.asc` on the host and boot it.",
                ),
            )
        )
        return Event.AGAIN
    return Event(event)
