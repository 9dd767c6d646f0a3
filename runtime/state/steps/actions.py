"""Work the user starts from a menu: a new TOTP/HOTP secret, a TPM reset, the
clock, the default boot, and the recovery shell's confirmation."""

from __future__ import annotations

import time

from runtime.secrets import passphrase
from runtime.secrets.ram import wipe_buffer
from runtime.state.keys import back
from runtime.state.platform import ClearLockoutFacts, LockoutFacts, LockoutOutcome
from runtime.state.steps.context import Context
from runtime.state.view import Choice, Menu, Page, Progress, Prompt, Tone

OWNER_PASSPHRASE_ATTEMPTS = 3
#: tries at programming the HOTP token in one generation (re-plugged, PIN typo)
TOKEN_ATTEMPTS = 3
# The TPM takes at most 32 bytes of authorization (a SHA-256 digest's size).
TPM_PASSPHRASE_MAX = 32
#: for a NEW owner passphrase only (with passphrase.weakness): one already set
#: is never refused for its strength
TPM_PASSPHRASE_MIN = passphrase.MIN_LENGTH


def _ask_secret(ctx: Context, prompt: Prompt) -> bytearray | None:
    answer = ctx.ui.ask(prompt)
    if answer is None:
        return None
    if isinstance(answer, str):  # a UI that ignored `secret`: still never keep a str
        return bytearray(answer.encode())
    return answer


def generate_secret(ctx: Context) -> str:
    try:
        return _generate_secret(ctx)
    finally:
        # a passphrase kept from a TPM reset is wiped whatever the answer (a
        # "No" to sealing must not park it for the rest of the power-on)
        kept = ctx.session.take_owner_passphrase()
        if kept is not None:
            wipe_buffer(kept)


def _generate_secret(ctx: Context) -> str:
    session = ctx.session
    if not session.tpm_present:
        ctx.page(
            "No TPM", ["A secret can only be sealed in a TPM, and none was found."], Tone.ERROR
        )
        return "cancelled"
    if not ctx.platform.tpm_owned():
        ctx.page(
            "The TPM has no owner yet",
            [
                "Sealing needs the TPM's owner passphrase, and this TPM has none (it is new "
                "or was cleared). Resetting it sets one; then the secret is generated.",
            ],
            Tone.WARNING,
        )
        return "need-reset"
    # The gate: the user sees what the secret will vouch for before sealing it.
    tone, verdict = session.integrity()
    if not ctx.confirm(
        "Seal a new TOTP/HOTP secret?",
        (
            verdict,
            "",
            *ctx.platform.integrity_lines(),
            "",
            "The new secret is sealed to the measurements above: from now on your phone's "
            "code vouches for exactly this firmware and configuration. Seal only if you "
            "trust them (you updated or configured this machine yourself).",
        ),
        "Yes: seal to these measurements",
        "No: back to the main menu",
        tone,
    ):
        return "cancelled"
    pin: bytearray | None = None
    if session.start.hotp_configured:
        pin = _ask_token_pin(ctx, "")
    try:
        for attempt in range(OWNER_PASSPHRASE_ATTEMPTS):
            owner = session.take_owner_passphrase() or _ask_secret(
                ctx,
                Prompt(
                    "TPM owner passphrase",
                    ("Storing the sealed secret in the TPM needs its owner passphrase.",)
                    + (("The last one was refused.",) if attempt else ()),
                    "Owner passphrase:",
                    secret=True,
                    max_length=TPM_PASSPHRASE_MAX,
                    max_bytes=TPM_PASSPHRASE_MAX,
                ),
            )
            if owner is None:
                return "cancelled"
            try:
                token_tries = 0
                while True:  # ends: retries are counted, and without a PIN no token is asked
                    ctx.ui.progress(Progress("Sealing", "Generating and sealing a new secret..."))
                    facts = ctx.platform.generate_secret(owner, pin)
                    if not facts.token_refused:
                        break
                    # nothing was sealed and the passphrase was right: the token can be
                    # tried again (the passphrase kept), or left out
                    token_tries += 1
                    answer = _token_refused(
                        ctx, facts.problem, facts.wrong_pin, can_retry=token_tries < TOKEN_ATTEMPTS
                    )
                    if answer == "cancelled":
                        return "cancelled"
                    if answer == "retry" and facts.wrong_pin:
                        if pin is not None:
                            wipe_buffer(pin)
                        pin = _ask_token_pin(ctx, facts.problem)
                        if pin is None:
                            return "cancelled"
                    elif answer == "without" and pin is not None:
                        wipe_buffer(pin)
                        pin = None
            finally:
                wipe_buffer(owner)
            if facts.secret is not None:
                break
            ctx.page("The secret was not sealed", [facts.problem], Tone.ERROR)
            if not facts.wrong_passphrase:
                return "cancelled"
        else:
            return "cancelled"
    finally:
        if pin is not None:
            wipe_buffer(pin)
    try:
        _show_enrolment(ctx, facts.secret, facts.sealed_pcrs, facts.hotp_message)
    finally:
        wipe_buffer(facts.secret)
    return "done"


def _ask_token_pin(ctx: Context, last: str) -> bytearray | None:
    return _ask_secret(
        ctx,
        Prompt(
            "HOTP token PIN",
            (
                "The token is programmed with the same secret before the TPM stores it. Its "
                "admin PIN is needed for that.",
            )
            + ((last, "Esc: cancel.") if last else ("Esc: seal without the token.",)),
            "Token admin PIN:",
            secret=True,
            tone=Tone.WARNING if last else Tone.NORMAL,
        ),
    )


def _token_refused(ctx: Context, problem: str, wrong_pin: bool, can_retry: bool) -> str:
    """ "retry" (only while ``can_retry``), "without" (seal for the TOTP code
    alone) or "cancelled"."""
    retry = (
        "Type the admin PIN again"
        if wrong_pin
        else "Check that the token is plugged in and try again"
    )
    choices = [Choice("r", retry, "retry")] if can_retry else []
    choices += [
        Choice("w", "Seal without the token (TOTP only)", "without"),
        back("Cancel: back to the main menu", "cancelled"),
    ]
    return ctx.choose(
        Menu(
            "The HOTP token was not programmed",
            (
                problem,
                "Nothing was sealed: the TPM still holds the previous secret, and your phone "
                "needs no new enrolment yet.",
                (retry + ", or seal" if can_retry else "No more tries with the token now: seal")
                + " the secret for the TOTP code alone (the token then keeps refusing codes "
                "until a secret is generated with it), or cancel.",
            ),
            tuple(choices),
            tone=Tone.ERROR,
            back_event="cancelled",
        )
    )


def _show_enrolment(
    ctx: Context, secret: bytearray, pcrs: tuple[int, ...], hotp_message: str
) -> None:
    from runtime.secrets.otp_enrol import grouped, otpauth_uri, qr_text, secret_base32

    start = ctx.session.start
    uri = otpauth_uri(secret, start.board_name, start.brand)
    if not start.skip_qr_code:
        ctx.ui.show(
            Page(
                "Scan this with your phone's authenticator app",
                tuple(qr_text(uri, unicode=ctx.ui.unicode)),
                preformatted=True,
                footer="Enter: next (the secret for typing it in)",
            )
        )
    lines = [
        "TOTP secret for typing into the app (base32):",
        "",
        "    " + grouped(secret_base32(secret)),
        "",
        f"Sealed to PCRs {', '.join(str(p) for p in pcrs)}. This is the only time the "
        "secret is shown: it is wiped from memory when you leave this page.",
    ]
    if hotp_message:
        lines += ["", hotp_message]
    ctx.ui.show(Page("TOTP secret", tuple(lines), Tone.GOOD))


def reset_tpm(ctx: Context) -> str:
    if not ctx.session.tpm_present:
        ctx.page("No TPM", ["There is no TPM to reset."], Tone.ERROR)
        return "cancelled"
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
        return "cancelled"
    lockout: bytearray | None = None
    owner: bytearray | None = None
    try:
        if ctx.platform.reset_needs_current_passphrase():
            # asked first: the TPM gives it one try, and the new one is of no use
            # if the current one is not at hand
            lockout = _ask_current_lockout(ctx)
            if lockout is None:
                return "cancelled"
        owner = _new_owner_passphrase(ctx)
        if owner is None:
            return "cancelled"
        ctx.ui.progress(Progress("Resetting the TPM", "Clearing and taking ownership..."))
        facts = ctx.platform.reset_tpm(owner, lockout)
        if facts.needs_lockout_passphrase and lockout is None:
            lockout = _ask_current_lockout(ctx)
            if lockout is None:
                return "cancelled"
            ctx.ui.progress(Progress("Resetting the TPM", "Clearing and taking ownership..."))
            facts = ctx.platform.reset_tpm(owner, lockout)
        if facts.problem:
            title = (
                "The TPM was cleared, but not owned again"
                if facts.cleared
                else "The TPM was not reset"
            )
            ctx.page(title, [facts.problem], Tone.ERROR)
            return "cancelled"
        ctx.session.keep_owner_passphrase(owner)
        owner = None  # the session owns it now (wiped once the secret is sealed)
    finally:
        for buffer in (owner, lockout):
            if buffer is not None:
                wipe_buffer(buffer)
    ctx.page(
        "The TPM was reset",
        [
            "The TPM is cleared and has its new owner passphrase. Next: a new TOTP/HOTP "
            "secret is generated and sealed."
        ],
        Tone.GOOD,
    )
    return "done"


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
            typed = _ask_secret(
                ctx,
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
        owner = _ask_secret(
            ctx,
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
    return _ask_secret(
        ctx,
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
        lockout_auth = _ask_secret(
            ctx,
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


def change_time(ctx: Context) -> str:
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
            return "cancelled"
        text = answer if isinstance(answer, str) else answer.decode(errors="replace")
        problem = ctx.platform.set_time(text)
        if not problem:
            return "done"


def recovery_confirm(ctx: Context) -> str:
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
        return "refused"
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
        return "refused"
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
    return "confirmed" if confirmed else "cancelled"
