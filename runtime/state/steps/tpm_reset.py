"""Resetting the TPM: the passphrase the firmware may ask for first, and the
new owner passphrase, generated (the default) or typed and strong enough."""

from __future__ import annotations

from runtime.secrets import passphrase
from runtime.secrets.ram import wipe_buffer
from runtime.state.keys import back
from runtime.state.machine import Event
from runtime.state.steps.context import Context
from runtime.state.view import Choice, Menu, Page, Progress, Prompt, Tone

# The TPM takes at most 32 bytes of authorization (a SHA-256 digest's size).
TPM_PASSPHRASE_MAX = 32
#: for a NEW owner passphrase only (with passphrase.weakness): one already set
#: is never refused for its strength
TPM_PASSPHRASE_MIN = passphrase.MIN_LENGTH
DUK_GONE = (
    "the OS asks for the disk's recovery passphrase until you set the key up again "
    "(TPM/TOTP/HOTP options)."
)


def reset_tpm(ctx: Context) -> Event:
    if not ctx.session.tpm_present:
        ctx.page("No TPM", ["There is no TPM to reset."], Tone.ERROR)
        return Event.CANCELLED
    if not ctx.confirm(
        "Reset the TPM?",
        (
            "Resetting clears the TPM: every secret sealed in it (the TOTP/HOTP secret, the "
            "disk key) and its rollback counters are gone for good, and a new owner "
            "passphrase is set.",
            "Do this on a new machine, or when the TPM refuses everything and you have your "
            "disk's recovery passphrase.",
        ),
        "Yes: clear the TPM",
        "No: back to the main menu",
    ):
        return Event.CANCELLED
    lockout: bytearray | None = None
    owner: bytearray | None = None
    try:
        if ctx.platform.reset_needs_current_passphrase():
            # asked first: the TPM gives it one try, and the new one is of no use
            # if the current one is not at hand
            lockout = _ask_current_lockout(ctx)
            if lockout is None:
                return Event.CANCELLED
        owner = _new_owner_passphrase(ctx)
        if owner is None:
            return Event.CANCELLED
        ctx.ui.progress(Progress("Resetting the TPM", "Clearing and taking ownership..."))
        facts = ctx.platform.reset_tpm(owner, lockout)
        if facts.needs_lockout_passphrase and lockout is None:
            lockout = _ask_current_lockout(ctx)
            if lockout is None:
                return Event.CANCELLED
            ctx.ui.progress(Progress("Resetting the TPM", "Clearing and taking ownership..."))
            facts = ctx.platform.reset_tpm(owner, lockout)
        if facts.problem:
            title = (
                "The TPM was cleared, but not owned again"
                if facts.cleared
                else "The TPM was not reset"
            )
            ctx.page(title, [facts.problem], Tone.ERROR)
            return Event.CANCELLED
        ctx.session.keep_owner_passphrase(owner)
        owner = None  # the session owns it now (wiped once the secret is sealed)
    finally:
        for buffer in (owner, lockout):
            if buffer is not None:
                wipe_buffer(buffer)
    lines = [
        "The TPM is cleared and has its new owner passphrase. Next: a new TOTP/HOTP "
        "secret is generated and sealed."
    ]
    # /boot may not have been checked yet in this power-on: then only the disks tell
    if ctx.platform.disk_unlock_listed():
        lines.append(f"The Disk Unlock Key sealed in it is gone too: {DUK_GONE}")
    elif ctx.platform.disk_containers():
        lines.append(f"If a Disk Unlock Key was set up, it is gone too: {DUK_GONE}")
    ctx.page("The TPM was reset", lines, Tone.GOOD)
    return Event.DONE


def _new_owner_passphrase(ctx: Context) -> bytearray | None:
    """The new owner passphrase, generated (the default) or typed and strong
    enough; None when the reset is cancelled. The caller wipes it. The TPM
    does not rate-limit guesses of it (its dictionary-attack protection leaves
    hierarchy passphrases out), so its strength is all that protects it."""
    while True:
        how = ctx.choose(
            Menu(
                "New TPM owner passphrase",
                (
                    "The TPM owner passphrase is asked whenever a secret is sealed, and to reset "
                    "the TPM again. The same passphrase becomes the TPM lockout passphrase.",
                    "The TPM does not slow down guesses of it: any program that can talk to the "
                    "TPM can try hundreds a second. So it must be strong. A generated one is "
                    f"{passphrase.GENERATED_LETTERS} letters from the kernel's random number "
                    "generator, far beyond guessing.",
                ),
                (
                    Choice("g", "Generate a strong passphrase (recommended)", "generate"),
                    Choice("t", "Type my own passphrase", "type"),
                    back("Cancel: the TPM is not reset", "cancelled"),
                ),
                back_event="cancelled",
            )
        )
        if how == "cancelled":
            return None
        owner = (
            _generated_owner_passphrase(ctx) if how == "generate" else _typed_owner_passphrase(ctx)
        )
        if owner is not None:
            return owner


def _generated_owner_passphrase(ctx: Context) -> bytearray | None:
    """A generated passphrase once it was typed back; None: back to the choice."""
    generated = passphrase.generate()
    try:
        show, problem = True, ""
        while True:
            if show:
                ctx.ui.show(
                    Page(
                        "Write down the new TPM owner passphrase",
                        (
                            "Write this down now: it is asked whenever a secret is sealed and to "
                            "reset the TPM again.",
                            "",
                            # a str only for the screen, as the TOTP secret's page:
                            # the UI draws text
                            "    " + generated.decode("ascii"),
                            "",
                            f"{passphrase.GROUPS} groups of {passphrase.GROUP_LENGTH} lower-case "
                            "letters, with one space between groups. Next you type it back from "
                            "your copy.",
                        ),
                        Tone.WARNING,
                        footer="Enter: next (type it back)",
                    )
                )
            typed = ctx.ask_secret(
                Prompt(
                    "Type the new passphrase back",
                    (
                        "Type the passphrase from what you wrote down, with one space between "
                        "the groups: this checks your copy before the TPM is cleared.",
                        "Esc: back to the choice (this passphrase is then dropped).",
                    )
                    + ((problem,) if problem else ()),
                    "Owner passphrase:",
                    secret=True,
                    max_length=TPM_PASSPHRASE_MAX,
                    max_bytes=TPM_PASSPHRASE_MAX,
                    tone=Tone.WARNING if problem else Tone.NORMAL,
                ),
            )
            if typed is None:
                return None
            try:
                problem = passphrase.mismatch(generated, typed)
            finally:
                wipe_buffer(typed)
            if not problem:
                owner, generated = generated, bytearray()  # the caller's now: not wiped here
                return owner
            event = ctx.choose(
                Menu(
                    "That is not the passphrase shown",
                    (
                        problem,
                        "Check your copy and Caps Lock. Nothing was changed in the TPM.",
                    ),
                    (
                        Choice("r", "Type it again", "retry"),
                        Choice("s", "Show the passphrase again", "show"),
                        back("Back: choose again (this passphrase is dropped)", "back"),
                    ),
                    Tone.WARNING,
                    back_event="back",
                )
            )
            if event == "back":
                return None
            show = event == "show"
    finally:
        wipe_buffer(generated)


def _typed_owner_passphrase(ctx: Context) -> bytearray | None:
    """A typed passphrase that passes the strength rule; None: back to the choice."""
    problem = ""
    while True:
        owner = ctx.ask_secret(
            Prompt(
                "Your own TPM owner passphrase",
                (
                    "It is asked whenever a secret is sealed, and to reset the TPM again.",
                    passphrase.RULE,
                    "Esc: back to the choice.",
                )
                + ((problem,) if problem else ()),
                "New owner passphrase:",
                secret=True,
                confirm=True,
                min_length=TPM_PASSPHRASE_MIN,
                max_length=TPM_PASSPHRASE_MAX,
                max_bytes=TPM_PASSPHRASE_MAX,
                tone=Tone.WARNING if problem else Tone.NORMAL,
            ),
        )
        if owner is None:
            return None
        problem = passphrase.weakness(owner)
        if not problem:
            return owner
        wipe_buffer(owner)
        problem = "Not taken. " + problem


def _ask_current_lockout(ctx: Context) -> bytearray | None:
    return ctx.ask_secret(
        Prompt(
            "Current TPM passphrase",
            (
                "This firmware lets the TPM be cleared only with the passphrase set at its last "
                "reset (the owner passphrase then).",
                "The TPM takes one try: after a wrong one it refuses every try until the machine "
                "is restarted, and nothing else is affected.",
            ),
            "Current passphrase:",
            secret=True,
            tone=Tone.WARNING,
            max_length=TPM_PASSPHRASE_MAX,
            max_bytes=TPM_PASSPHRASE_MAX,
        ),
    )
