"""The integrity report: the verdict, its reasons, what the check of /boot
found, and the measurements. Shown from the options and, in place, from every
screen that advises checking it; Back returns to the screen it came from."""

from __future__ import annotations

from runtime.state.keys import RECOVERY, back
from runtime.state.machine import Event
from runtime.state.steps.context import Context
from runtime.state.view import Menu


def report_lines(ctx: Context) -> tuple[str, ...]:
    found = ctx.session.verdict()
    lines = [found.line, *(f"  - {reason}" for reason in found.reasons)]
    check = ctx.session.boot_check
    if check is not None and not check.ok:
        lines += ["", "/boot:", *check.findings]
    lines += ["", *ctx.platform.integrity_lines()]
    return tuple(lines)


def integrity_report(ctx: Context) -> Event:
    """ "back" or "recovery"."""
    return Event(
        ctx.choose(
            Menu(
                "Integrity report",
                report_lines(ctx),
                (back(), RECOVERY),
                tone=ctx.session.verdict().tone,
                back_event=Event.BACK,
            )
        )
    )
