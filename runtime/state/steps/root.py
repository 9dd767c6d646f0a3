"""The OS root file system's hashes (CONFIG_ROOT_*): making the list and
signing it with /boot, checking the root file system against it on request
and, with CONFIG_ROOT_CHECK_AT_BOOT, before anything boots by itself."""

from __future__ import annotations

from runtime.integrity.boot_report import printable  # names from the disk, drawn safely
from runtime.state.keys import back
from runtime.state.machine import Event
from runtime.state.platform import RootFacts
from runtime.state.steps.boot import show_progress, sign_after_review
from runtime.state.steps.context import Context
from runtime.state.view import Choice, Menu, Tone

MAX_NAMED = 12  # the page names this many of each kind, then counts the rest


def root_hashes(ctx: Context) -> Event:
    event = ctx.choose(
        Menu(
            "Root file system hashes",
            (
                "The files of your OS's root file system (CONFIG_ROOT_DEV, the directories in "
                "CONFIG_ROOT_DIRLIST) hashed into /boot's kexec_root_hashes.txt, which your "
                "signature of /boot covers.",
                ctx.session.root_line() or "Not checked during this boot.",
            ),
            (
                Choice("c", "Create or update the list, then sign /boot", "create"),
                Choice("v", "Verify the root file system now", "verify"),
                back("Back to the options"),
            ),
            back_event=Event.BACK,
        )
    )
    if event == "create":
        facts = ctx.platform.create_root_hashes(show_progress(ctx, "Root file system hashes"))
        if facts.problem:
            ctx.page("The list was not made", [facts.problem], Tone.ERROR)
        elif sign_after_review(ctx, _new_list_words(facts)):
            ctx.session.root_check = None  # the signed list changed: checked anew
        return Event.AGAIN
    if event == "verify":
        check_root(ctx)
        return Event.AGAIN
    return Event.BACK


def _new_list_words(facts: RootFacts) -> str:
    """The review's line about the new list: what differs from the one signed
    before, named, so nothing an attacker changed is signed unseen."""
    words = f"A new root hash list of {facts.checked} files goes into /boot's signed state."
    if facts.ok:
        return words
    named = []
    for what, names in (
        ("changed", facts.changed),
        ("missing", facts.missing),
        ("new", facts.added),
    ):
        if names:
            more = f" and {len(names) - MAX_NAMED} more" if len(names) > MAX_NAMED else ""
            named.append(
                f"{what} ({len(names)}): "
                + ", ".join(printable(n) for n in names[:MAX_NAMED])
                + more
            )
    return (
        words
        + " Compared with the list you signed before: "
        + "; ".join(named)
        + ". Sign only if you made these changes."
    )


def _check(ctx: Context) -> RootFacts:
    """Check now, and keep the result for the menus and the verdict."""
    facts = ctx.session.root_check = ctx.platform.check_root_hashes(
        show_progress(ctx, "Checking the root file system")
    )
    return facts


def check_root(ctx: Context) -> RootFacts:
    """Check now, keep the result, and show it."""
    facts = _check(ctx)
    show_root_check(ctx, facts)
    return facts


def check_root_at_boot(ctx: Context) -> bool:
    """CONFIG_ROOT_CHECK_AT_BOOT, once /boot verified: whether the root file
    system matched (True when the check is not asked for). Shown only when
    it did not."""
    session = ctx.session
    if not session.start.root_check_at_boot:
        return True
    if session.root_check is None:
        if session.boot_check is None or not session.boot_check.ok:
            return False  # an unverified /boot's list proves nothing
        facts = _check(ctx)
        if not facts.ok:
            show_root_check(ctx, facts)
        return facts.ok
    return session.root_check.ok


def show_root_check(ctx: Context, facts: RootFacts) -> None:
    if facts.problem:
        ctx.page("The root file system was not checked", [facts.problem], Tone.WARNING)
        return
    if facts.ok:
        ctx.page(
            "The root file system matches",
            [f"All {facts.checked} files match the list you signed."],
            Tone.GOOD,
        )
        return
    lines = [
        "The root file system differs from the list you signed. If you did not update "
        "or change the OS since, look at it from a trusted system before booting it."
    ]
    for what, names in (
        ("Changed", facts.changed),
        ("Missing", facts.missing),
        ("Not in the list", facts.added),
    ):
        if names:
            shown = [printable(n) for n in names[:MAX_NAMED]]
            more = f" and {len(names) - MAX_NAMED} more" if len(names) > MAX_NAMED else ""
            lines += ["", f"{what} ({len(names)}):", *(f"  {n}" for n in shown)]
            if more:
                lines.append(f"  ...{more}")
    lines += ["", "After an OS update you made: Options > Root file system hashes > Create."]
    ctx.page("WARNING: the root file system changed", lines, Tone.ERROR)
