"""The main menu, the options menus, and the information pages."""

from __future__ import annotations

from runtime import bootlog
from runtime.state.keys import (
    OEM_RESET,
    POWER_OFF,
    REBOOT,
    RECOVERY,
    RESET_TPM,
    UNSAFE_BOOT,
    back,
)
from runtime.state.machine import Event
from runtime.state.steps.attest import totp_live
from runtime.state.steps.boot import check_boot, usb_boot
from runtime.state.steps.context import Context
from runtime.state.steps.disk_unlock import set_up_disk_unlock
from runtime.state.steps.lockout import CLEAR_LOCKOUT, clear_lockout
from runtime.state.steps.root import check_root_at_boot
from runtime.state.view import Choice, Menu, Tone

BACK_TO_OPTIONS = back("Back to the options")
DISK_UNLOCK_CHOICE = Choice("d", "Set up the Disk Unlock Key (LUKS)", "disk-unlock")

MAIN_CHOICES = (
    Choice("d", "Default boot", Event.DEFAULT_BOOT),
    Choice("r", "Refresh TOTP/HOTP", Event.REFRESH),
    Choice("o", "Options -->", Event.OPTIONS),
    Choice("s", "System information", Event.SYSTEM_INFO),
    POWER_OFF,
)
#: Basic mode: nothing to refresh, and every boot is unverified
BASIC_MAIN_CHOICES = (
    Choice("d", "Boot an OS (Basic mode: not verified)", Event.BASIC_BOOT),
    *MAIN_CHOICES[2:],
)


def main_menu(ctx: Context) -> Event:
    session = ctx.session
    if not session.menu_shown:
        session.menu_shown = True
        from runtime.devices.memory_use import guest_memory_used_kib, peak_rss_kib

        bootlog.stage(
            "menu-shown", peak_rss_kib=peak_rss_kib(), guest_used_kib=guest_memory_used_kib()
        )
    if _boot_checkable(ctx) and session.boot_check is None:
        # the verdict speaks about /boot too: check it once, before the first menu
        check_boot(ctx, "Checking /boot")
    check_root_at_boot(ctx)
    found = session.verdict()
    tone = found.tone
    body = [found.line]
    if found.reasons and found.word != "NO TPM":
        body.append("Not verified: " + "; ".join(found.reasons) + ".")
    body += list(session.setting_warnings())
    if withheld := session.autoboot_withheld():
        body.append(withheld)
    if session.boot is not None and session.boot.device:
        body.append(f"/boot: {session.boot.device}")
    if line := session.root_line():
        body.append(line)
    if session.measure is not None:
        body += list(session.measure.problems)
    body += list(session.start.config_problems)
    if session.start.clock_problem:
        body.append(session.start.clock_problem)
    start = session.start
    if start.basic:
        return Event(
            ctx.choose(
                Menu(
                    f"{start.board_name} | {start.brand} boot menu",
                    tuple(body),
                    BASIC_MAIN_CHOICES,
                    tone=tone,
                    live=lambda: (ctx.platform.now_text(),),
                )
            )
        )
    return Event(
        ctx.choose(
            Menu(
                f"{start.board_name} | {start.brand} boot menu",
                tuple(body),
                MAIN_CHOICES,
                tone=tone,
                live=totp_live(ctx),
            )
        )
    )


def _boot_checkable(ctx: Context) -> bool:
    session = ctx.session
    keys = session.keyring is None or bool(session.keyring.fingerprints)
    return (
        not session.start.basic
        and session.tpm_present
        and keys
        and session.boot is not None
        and bool(session.boot.device)
    )


def system_info(ctx: Context) -> Event:
    rows = ctx.platform.system_info()
    ctx.page("System information", [f"{label}: {value}" for label, value in rows])
    return Event.BACK


OPTION_CHOICES = (
    Choice("o", "Boot options -->", Event.BOOT_OPTIONS),
    Choice("t", "TPM/TOTP/HOTP options -->", Event.TPM_OPTIONS),
    Choice("i", "Investigate integrity -->", Event.INTEGRITY),
    Choice("h", "Change the system time", Event.CHANGE_TIME),
    Choice("u", "Update checksums and sign /boot", Event.UPDATE_CHECKSUMS),
    Choice("c", "Configuration -->", Event.CONFIGURATION),
    Choice("g", "GPG options -->", Event.GPG_OPTIONS),
    OEM_RESET,
    RECOVERY,
    REBOOT,
    back("Back to the main menu"),
)


#: with CONFIG_ROOT_DEV set (after "Update checksums")
ROOT_HASHES_CHOICE = Choice("a", "Root file system hashes -->", Event.ROOT_HASHES)


def options(ctx: Context) -> Event:
    choices: tuple[Choice, ...] = OPTION_CHOICES
    if ctx.session.start.root_hashing:
        at = OPTION_CHOICES.index(
            next(c for c in OPTION_CHOICES if c.event == Event.UPDATE_CHECKSUMS)
        )
        choices = (*OPTION_CHOICES[: at + 1], ROOT_HASHES_CHOICE, *OPTION_CHOICES[at + 1 :])
    return Event(ctx.choose(Menu("Options", (), choices, back_event=Event.BACK)))


def boot_options(ctx: Context) -> Event:
    event = ctx.choose(
        Menu(
            "Boot options",
            (),
            (
                Choice("m", "Show the OS boot menu", Event.OS_MENU),
                Choice("e", "Boot from USB (external media)", "usb"),
                UNSAFE_BOOT,
                BACK_TO_OPTIONS,
            ),
            back_event=Event.BACK,
        )
    )
    if event == "usb":
        usb_boot(ctx)
        return Event.AGAIN
    return Event(event)


def tpm_options(ctx: Context) -> Event:
    event = ctx.choose(
        Menu(
            "TPM/TOTP/HOTP options",
            (),
            (
                Choice("g", "Generate a new TOTP/HOTP secret", Event.GENERATE),
                # before the reset: it ends a lockout too, but destroys the secrets
                Choice(
                    CLEAR_LOCKOUT.key,
                    "Clear the TPM lockout with the lockout passphrase",
                    CLEAR_LOCKOUT.event,
                ),
                RESET_TPM,
                *((DISK_UNLOCK_CHOICE,) if ctx.session.start.disk_unlock else ()),
                Choice("t", "TOTP/HOTP does not match: troubleshoot", "troubleshoot"),
                BACK_TO_OPTIONS,
            ),
            back_event=Event.BACK,
        )
    )
    if event == CLEAR_LOCKOUT.event:
        clear_lockout(ctx)
        return Event.AGAIN
    if event == DISK_UNLOCK_CHOICE.event:
        set_up_disk_unlock(ctx)
        return Event.AGAIN
    if event != "troubleshoot":
        return Event(event)
    answer = ctx.choose(
        Menu(
            "TOTP does not match",
            (
                f"This machine's clock: {ctx.platform.now_text()}",
                "TOTP codes depend on the time: if this clock is off by more than about 30 "
                "seconds from your phone's, the codes differ although nothing was tampered with.",
                "If the clock is right and the codes still differ, the firmware or its "
                "configuration changed since the secret was sealed: do not trust this boot.",
            ),
            (Choice("h", "Change the system time", Event.CHANGE_TIME), back()),
            back_event=Event.BACK,
        )
    )
    return Event.CHANGE_TIME if answer == Event.CHANGE_TIME else Event.AGAIN


def configuration(ctx: Context) -> Event:
    ctx.page(
        "Configuration",
        [
            *ctx.platform.configuration_lines(),
            "",
            "Settings are part of the firmware image (and measured with it): change them in "
            "the owner configuration file and rebuild or reflash. A change makes the TPM "
            "refuse the sealed secrets until they are sealed again.",
        ],
    )
    return Event.BACK


def gpg_options(ctx: Context) -> Event:
    event = ctx.choose(
        Menu(
            "GPG options",
            (),
            (
                Choice("l", "List the keys in the firmware", "list"),
                Choice("a", "Add or replace a key in the firmware", "replace"),
                BACK_TO_OPTIONS,
            ),
            back_event=Event.BACK,
        )
    )
    if event == "list":
        ctx.page("Keys in the firmware", ctx.platform.keyring_lines())
    elif event == "replace":
        ctx.page(
            "Add or replace a key",
            [
                "The keys are part of the firmware image: build it with "
                "`build_initrd.py --owner-key KEY.asc` and flash or boot it. Writing the "
                "flash from here is not available on this board."
            ],
            Tone.WARNING,
        )
    else:
        return Event.BACK
    return Event.AGAIN


def oem_reset(ctx: Context) -> Event:
    ctx.page(
        "OEM factory reset / re-ownership",
        [
            "Not available yet: it will reset the TPM, create the owner's keys, seal the "
            "TOTP/HOTP secret and sign /boot in one guided flow.",
            "Meanwhile: Options > TPM/TOTP/HOTP options > Reset the TPM, then Generate a "
            "new secret.",
        ],
        Tone.WARNING,
    )
    return Event.BACK
