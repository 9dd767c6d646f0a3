"""Generating a new TOTP/HOTP secret: the gate that shows what it will vouch
for, the owner passphrase, programming the HOTP token, and the pages that
enrol it in the phone."""

from __future__ import annotations

from runtime.secrets.passphrase import OWNER_PASSPHRASE_ATTEMPTS
from runtime.secrets.ram import wipe_buffer
from runtime.state.keys import back
from runtime.state.machine import Event
from runtime.state.steps.context import Context
from runtime.state.steps.tpm_reset import TPM_PASSPHRASE_MAX
from runtime.state.view import Choice, Menu, Page, Progress, Prompt, Tone

#: tries at programming the HOTP token in one generation (re-plugged, PIN typo)
TOKEN_ATTEMPTS = 3


def generate_secret(ctx: Context) -> Event:
    try:
        return _generate_secret(ctx)
    finally:
        # a passphrase kept from a TPM reset is wiped whatever the answer (a
        # "No" to sealing must not park it for the rest of the power-on)
        kept = ctx.session.take_owner_passphrase()
        if kept is not None:
            wipe_buffer(kept)


def _generate_secret(ctx: Context) -> Event:
    session = ctx.session
    if not session.tpm_present:
        ctx.page(
            "No TPM", ["A secret can only be sealed in a TPM, and none was found."], Tone.ERROR
        )
        return Event.CANCELLED
    if not ctx.platform.tpm_owned():
        ctx.page(
            "The TPM has no owner yet",
            [
                "Sealing needs the TPM's owner passphrase, and this TPM has none (it is new "
                "or was cleared). Resetting it sets one; then the secret is generated.",
            ],
            Tone.WARNING,
        )
        return Event.NEED_RESET
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
        return Event.CANCELLED
    pin: bytearray | None = None
    if session.start.hotp_configured:
        pin = _ask_token_pin(ctx, "")
    try:
        for attempt in range(OWNER_PASSPHRASE_ATTEMPTS):
            owner = session.take_owner_passphrase() or ctx.ask_secret(
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
                return Event.CANCELLED
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
                        return Event.CANCELLED
                    if answer == "retry" and facts.wrong_pin:
                        if pin is not None:
                            wipe_buffer(pin)
                        pin = _ask_token_pin(ctx, facts.problem)
                        if pin is None:
                            return Event.CANCELLED
                    elif answer == "without" and pin is not None:
                        wipe_buffer(pin)
                        pin = None
            finally:
                wipe_buffer(owner)
            if facts.secret is not None:
                break
            ctx.page("The secret was not sealed", [facts.problem], Tone.ERROR)
            if not facts.wrong_passphrase:
                return Event.CANCELLED
        else:
            return Event.CANCELLED
    finally:
        if pin is not None:
            wipe_buffer(pin)
    try:
        _show_enrolment(ctx, facts.secret, facts.sealed_pcrs, facts.hotp_message)
    finally:
        wipe_buffer(facts.secret)
    return Event.DONE


def _ask_token_pin(ctx: Context, last: str) -> bytearray | None:
    return ctx.ask_secret(
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
