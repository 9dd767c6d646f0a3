"""Work the user starts from a menu that fits no larger room: setting the
clock, and the recovery shell's confirmation."""

from __future__ import annotations

import time

from runtime.state.machine import Event
from runtime.state.steps.context import Context
from runtime.state.view import Prompt, Tone


def change_time(ctx: Context) -> Event:
    problem = ""
    while True:
        answer = ctx.ui.ask(
            Prompt(
                "Change the system time",
                (
                    f"Now: {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())} (shown on the "
                    f"menus as {ctx.platform.now_text()})",
                    "Enter the current UTC date and time (your phone shows it; TOTP codes need "
                    "it to within about 30 seconds).",
                )
                + ((problem,) if problem else ()),
                "YYYY-MM-DD HH:MM[:SS] UTC:",
                tone=Tone.ERROR if problem else Tone.NORMAL,
            )
        )
        if answer is None:
            return Event.CANCELLED
        text = answer if isinstance(answer, str) else answer.decode(errors="replace")
        problem = ctx.platform.set_time(text)
        if not problem:
            return Event.DONE


def recovery_confirm(ctx: Context) -> Event:
    if ctx.session.start.restricted:
        ctx.page(
            "Recovery shell disabled",
            [
                "Restricted boot is on (CONFIG_RESTRICTED_BOOT): the recovery shell is not "
                "available on this machine.",
                "Disabling restricted boot needs a new firmware image.",
            ],
            Tone.ERROR,
        )
        return Event.REFUSED
    if ctx.session.start.recovery_needs_missing_key:
        ctx.page(
            "Recovery shell refused",
            [
                "The settings ask for the owner's key before the recovery shell "
                "(CONFIG_HAVE_GPG_KEY_BACKUP=y), and the firmware holds no owner key, so "
                "nobody can be authenticated.",
                "Put the owner's key in the firmware image to use the shell.",
            ],
            Tone.ERROR,
        )
        return Event.REFUSED
    confirmed = ctx.confirm(
        "Open the recovery shell?",
        (
            "The recovery shell is a root shell for repairs and investigation.",
            "Before it opens, PCR 4 is extended: the TOTP/HOTP secret and the disk key "
            "cannot be unsealed again until you reboot, and every secret in memory is wiped.",
            "When the firmware holds an owner key, the shell asks for a signature by it.",
        ),
        "Yes: open the recovery shell",
        "No: back to the main menu",
    )
    return Event.CONFIRMED if confirmed else Event.CANCELLED
