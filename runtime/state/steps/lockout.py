"""The TPM's dictionary-attack lockout: how the failure screens it causes
explain it, and clearing it with the lockout passphrase (nothing sealed in
the TPM changes, unlike a reset)."""

from __future__ import annotations

from runtime.secrets.ram import wipe_buffer
from runtime.state.platform import ClearLockoutFacts, LockoutFacts, LockoutOutcome
from runtime.state.steps.context import Context
from runtime.state.steps.tpm_reset import TPM_PASSPHRASE_MAX
from runtime.state.view import Choice, Progress, Prompt, Tone

#: Offered first wherever the lockout stops something, and in the TPM options.
CLEAR_LOCKOUT = Choice("l", "Clear the lockout with the lockout passphrase", "clear-lockout")


def duration_words(seconds: int) -> str:
    if seconds % 3600 == 0 and seconds:
        hours = seconds // 3600
        return "hour" if hours == 1 else f"{hours} hours"
    if seconds % 60 == 0 and seconds:
        minutes = seconds // 60
        return "minute" if minutes == 1 else f"{minutes} minutes"
    return "second" if seconds == 1 else f"{seconds} seconds"


def lockout_wait_words(seconds: int) -> str:
    """How long a wrong lockout passphrase blocks the next one (0: a restart)."""
    if seconds == 0:
        return "until the machine restarts"
    return f"for {duration_words(seconds)} while the machine stays on"


def locked_out(ctx: Context) -> LockoutFacts | None:
    """The lockout state when the TPM is locked out now, else None."""
    facts = ctx.platform.tpm_lockout()
    return facts if facts.locked_out and not facts.problem else None


def lockout_todo(lockout: LockoutFacts) -> str:
    """What the user can do about a lockout, for a failure screen's advice."""
    forgiven = (
        f"one wrong passphrase is forgiven every {duration_words(lockout.recovery_seconds)}"
        " while the machine stays on"
        if lockout.recovery_seconds
        else "it does not end by itself on this TPM"
    )
    return (
        "Clear the lockout with the TPM lockout passphrase (the one set at the TPM's last "
        "reset): nothing sealed in the TPM changes. Otherwise the lockout wears off: "
        f"{forgiven}. Resetting the TPM ends it too, but destroys every secret in it."
    )


def lockout_menu(
    ctx: Context,
    title: str,
    what: str,
    why: str,
    lockout: LockoutFacts,
    choices: tuple[Choice, ...],
    tone: Tone = Tone.ERROR,
) -> str:
    """A failure the dictionary-attack lockout caused: clearing it is offered
    first, before any reset. The chosen event, or "cleared" once it is."""
    what = (
        f"{what} The TPM is in dictionary-attack lockout: it counted {lockout.failures} "
        "wrong passphrases, so it refuses the keys the lockout covers. The key needed "
        "here is one of them: it was made without the exemption this firmware now "
        "gives its own keys."
    )
    while True:
        event = ctx.problem_menu(
            title, what, why, lockout_todo(lockout), (CLEAR_LOCKOUT, *choices), tone
        )
        if event != CLEAR_LOCKOUT.event:
            return event
        if clear_lockout(ctx):
            return "cleared"


def clear_lockout(ctx: Context) -> bool:
    """End the TPM's dictionary-attack lockout with the lockout passphrase
    (asked only when one is set); True when it was cleared."""
    state = ctx.platform.tpm_lockout()
    if state.problem:
        ctx.page("The TPM lockout was not cleared", [state.problem], Tone.ERROR)
        return False
    if not state.locked_out and state.failures == 0:
        ctx.page(
            "The TPM is not locked out",
            [
                "The TPM accepts passphrases and has counted no wrong one: there is nothing "
                "to clear. Nothing was changed."
            ],
        )
        return False
    lockout_auth: bytearray | None = None
    if state.passphrase_set:
        lockout_auth = ctx.ask_secret(
            Prompt(
                "TPM lockout passphrase",
                (
                    "Clearing the lockout needs the TPM lockout passphrase: the passphrase set at "
                    "the TPM's last reset (this firmware sets the owner passphrase). Nothing "
                    "sealed in the TPM changes.",
                    "The TPM gives it one try: after a wrong one it refuses every lockout "
                    f"passphrase {lockout_wait_words(state.lockout_recovery_seconds)}, and "
                    "resetting the TPM must wait as well.",
                ),
                "Lockout passphrase:",
                secret=True,
                tone=Tone.WARNING,
                min_length=1,
                max_length=TPM_PASSPHRASE_MAX,
                max_bytes=TPM_PASSPHRASE_MAX,
            ),
        )
        if lockout_auth is None:
            return False
    try:
        ctx.ui.progress(Progress("Clearing the TPM lockout", "Asking the TPM..."))
        facts = ctx.platform.clear_lockout(lockout_auth)
    finally:
        if lockout_auth is not None:
            wipe_buffer(lockout_auth)
    if facts.outcome is LockoutOutcome.CLEARED:
        ctx.page(
            "The TPM lockout is cleared",
            [
                "The TPM accepts passphrases again and counts no wrong one. Nothing sealed in "
                "it was changed."
            ],
            Tone.GOOD,
        )
        return True
    ctx.page("The TPM lockout was not cleared", _not_cleared(facts), Tone.ERROR)
    return False


def _not_cleared(facts: ClearLockoutFacts) -> list[str]:
    wait = lockout_wait_words(facts.lockout_recovery_seconds)
    if facts.outcome is LockoutOutcome.WRONG_PASSPHRASE:
        return [
            "The TPM refused the lockout passphrase: it is wrong. The lockout stays, "
            "and nothing was changed.",
            f"After a wrong lockout passphrase the TPM refuses every lockout passphrase "
            f"{wait}; resetting the TPM must wait as well. Then type the passphrase set "
            "at the TPM's last reset (check the keyboard layout and Caps Lock).",
        ]
    if facts.outcome is LockoutOutcome.BLOCKED:
        return [
            "The TPM refuses the lockout passphrase for now: a wrong one was typed "
            f"earlier, and after one it refuses every lockout passphrase {wait}. The "
            "lockout stays, and nothing was changed."
        ]
    return [facts.problem or "The TPM did not clear the lockout. Nothing was changed."]
