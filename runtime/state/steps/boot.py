"""Booting an OS: the default boot, the OS boot menu, the refusal screen with
its ways forward, the unsafe (forced) boot, USB boot (not built yet), and
updating the checksums and signing /boot after an OS update.

Rule: nothing is booted from /boot unless it is exactly what the owner signed
(runtime.integrity.verify_boot), except through the unsafe boot, which the
user chooses knowingly and which extends PCR 4 first, so the sealed secrets
(TOTP/HOTP, disk key) stay locked until the next power-on.
"""

from __future__ import annotations

from collections.abc import Callable

from runtime.integrity.boot_report import ProblemKind
from runtime.secrets.ram import wipe_buffer
from runtime.state.keys import DETAILS, ENTRY_KEYS, POWER_OFF, REBOOT, RECOVERY, UNSAFE_BOOT, back
from runtime.state.machine import Event
from runtime.state.platform import AskSecret, BootCheck, BootOption
from runtime.state.steps.context import Context
from runtime.state.steps.disk_unlock import disk_key_for_boot, offer_after_default_saved
from runtime.state.steps.report import integrity_report
from runtime.state.steps.tpm_reset import TPM_PASSPHRASE_MAX
from runtime.state.verdict import BootState
from runtime.state.view import Choice, Menu, Progress, Prompt, Tone

#: a signing shows every changed path first; more than this is no screen's
MAX_SHOWN_CHANGES = 2000


def show_progress(ctx: Context, title: str) -> Callable[[str], None]:
    def show(text: str) -> None:
        ctx.ui.progress(Progress(title, text))

    return show


def check_boot(ctx: Context, title: str) -> BootCheck:
    """Check /boot against the owner's signature; the session keeps the result."""
    return _verify(ctx, title)


def _verify(ctx: Context, title: str) -> BootCheck:
    check = ctx.platform.verify_boot(show_progress(ctx, title))
    ctx.session.boot_check = check
    if check.settled:
        # a power cut during the last signing, sorted out before the check
        ctx.ui.progress(Progress(title, check.settled))
    return check


def problem_screen(
    ctx: Context,
    title: str,
    what: str,
    why: str,
    todo: str,
    choices: tuple[Choice, ...],
    back_event: str | None,
    tone: Tone = Tone.ERROR,
) -> str:
    """ctx.problem_menu, with Back given rather than read off the letter b: on
    Heads' screens b can be another choice (no /boot), and Back can carry
    Heads' m (a refused boot)."""
    body = (what, "", "Why it matters: " + why, "", "What you can do: " + todo)
    if ctx.platform.details():
        choices = (*choices, DETAILS)
    return ctx.choose(Menu(title, body, choices, tone, back_event=back_event))


def usb_boot(ctx: Context) -> None:
    """Boot from USB, wherever it is offered."""
    ctx.page(
        "USB boot",
        [
            "USB boot: not available yet on this board. Nothing was changed.",
        ],
        Tone.WARNING,
    )


def _refuse(ctx: Context, what: str) -> Event:
    ctx.session.boot_refusal = what
    return Event.REFUSED


def _check_summary(check: BootCheck) -> str:
    lines = [check.settled] if check.settled else []
    lines += list(check.findings) + list(check.notes)
    if check.update_notes:
        lines.append(
            "An OS update left a note of what it changed: " + "; ".join(check.update_notes)
        )
    return "\n".join(lines) or "/boot could not be checked."


def default_boot(ctx: Context) -> Event:
    check = _verify(ctx, "Default boot")
    if not check.ok:
        return _refuse(ctx, _check_summary(check))
    default = ctx.platform.saved_default(check)
    if default.none_saved:
        event = ctx.choose(
            Menu(
                "No default boot entry",
                (
                    "No default OS entry has been saved on this /boot yet.",
                    "Choose one in the OS boot menu: boot it once, or make it the default (which "
                    "signs /boot again with your key).",
                ),
                (
                    Choice("m", "Show the OS boot menu", Event.NO_DEFAULT),
                    back("Back to the main menu", Event.MENU),
                ),
                back_event=Event.MENU,
            )
        )
        return Event(event)
    if default.option is None:
        return _refuse(ctx, default.problem)
    return _boot(ctx, default.option, unsafe=False)


def _boot(ctx: Context, option: BootOption, unsafe: bool) -> Event:
    key: bytearray | None = None
    if not unsafe:
        answer = disk_key_for_boot(ctx)
        if answer is None:
            return Event.MENU
        if isinstance(answer, bytearray):
            key = answer
    try:
        why = ctx.platform.boot(
            option, unsafe, show_progress(ctx, f"Booting {option.name}"), disk_key=key
        )
    finally:
        if key is not None:
            wipe_buffer(key)
    if why is None:
        return Event.LOADED
    return _refuse(ctx, f"{option.name} did not start: {why}")


def boot_refused(ctx: Context) -> Event:
    while True:
        event = _refusal(ctx)
        if event != Event.INVESTIGATE:
            return event
        if integrity_report(ctx) == Event.RECOVERY:
            return Event.RECOVERY


def _refusal(ctx: Context) -> Event:
    check = ctx.session.boot_check
    state = ctx.session.boot_state()
    resignable = check is not None and check.kinds == {ProblemKind.RESIGNABLE}
    choices = [Choice("i", "Investigate: the integrity report", Event.INVESTIGATE)]
    if resignable:
        label = (
            "Sign /boot now"
            if state is BootState.NOT_SIGNED
            else "I made these changes: update checksums and sign /boot"
        )
        choices.append(Choice("u", label, Event.UPDATE_CHECKSUMS))
    if not ctx.session.start.restricted and state is not BootState.VERIFIED:
        choices.append(UNSAFE_BOOT)
    # m: Heads' "Return to main menu"; Esc and b still go there too
    choices += [Choice("m", "Return to the main menu", Event.MENU), POWER_OFF, REBOOT, RECOVERY]
    why = (
        "Only files the owner signed are booted, so a changed kernel, initramfs or boot "
        "configuration cannot start unnoticed."
    )
    if state is BootState.VERIFIED:  # /boot is fine: the entry itself did not start
        title, todo = _DID_NOT_START
        why = "Nothing was started, and nothing on the machine was changed."
    else:
        title, todo = _REFUSALS.get(state, _REFUSALS[BootState.CHANGED])
        if state is BootState.CHANGED and not resignable:
            todo = _NOT_RESIGNABLE
    return Event(
        problem_screen(
            ctx, title, ctx.session.boot_refusal, why, todo, tuple(choices), back_event=Event.MENU
        )
    )


#: the refusal's title and advice, by what the check of /boot found: absence
#: is no attack, and says so
_REFUSALS = {
    BootState.NO_DISK: (
        "Nothing to boot: no disk was found",
        "Attach the disk that holds the OS, then restart.",
    ),
    BootState.NO_BOOT: (
        "Nothing to boot: no /boot partition",
        "No partition holds a boot configuration: check that the right "
        "disk is attached, then restart.",
    ),
    BootState.NOT_SIGNED: (
        "/boot is not signed yet",
        "If this is the OS you installed, sign /boot now with your key: "
        "from then on, any change to it is caught.",
    ),
    BootState.NO_OWNER_KEY: (
        "No owner key in the firmware",
        "The firmware holds no key to check /boot with: build it with your public key.",
    ),
    BootState.CHANGED: (
        "Boot refused: /boot is not what you signed",
        "If you updated the OS or changed /boot yourself, sign it again. If "
        "you did not, someone else did: power off and investigate from a "
        "trusted system.",
    ),
    BootState.UNKNOWN_SIGNER: (
        "Boot refused: /boot is signed by another key",
        "Your key did not sign this /boot. Look at it from a trusted "
        "system, or power off; an unsafe boot starts it without "
        "your secrets.",
    ),
    BootState.BAD_SIGNATURE: (
        "Boot refused: /boot's hash lists were changed",
        "Your signature does not cover the hash lists on /boot: "
        "someone changed them. Look at /boot from a trusted system, "
        "or power off.",
    ),
    BootState.NOT_CHECKED: (
        "Boot refused: /boot cannot be verified",
        "Without a TPM the rollback counter cannot be read, so nothing "
        "counts as verified. Boot anyway (unsafe) starts an entry "
        "without your secrets.",
    ),
    BootState.ROLLED_BACK: (
        "Boot refused: an older signed /boot was put back",
        "Your newer signing was replaced by an older one. Power off and "
        "look at /boot from a trusted system.",
    ),
}
_DID_NOT_START = (
    "The boot did not start",
    "/boot is what you signed; the entry failed as it was loaded. Go back and "
    "choose another entry in the OS boot menu, or reboot.",
)
#: CHANGED, when what changed is no owner's edit a signing answers
_NOT_RESIGNABLE = (
    "This is not a change a new signature answers. Look at /boot from a "
    "trusted system, or power off."
)


def _choose_option(
    ctx: Context, title: str, body: tuple[str, ...], tone: Tone = Tone.NORMAL
) -> BootOption | None:
    facts = ctx.platform.boot_options()
    if not facts.options:
        ctx.page(
            title,
            [facts.problem or "No boot entries were found on /boot.", *facts.warnings],
            Tone.ERROR,
        )
        return None
    # a menu of more entries than keys is no menu: the rest are in the JSON command
    entries = [
        Choice(key, f"{o.name}  [{o.kernel}]", str(i))
        for i, (key, o) in enumerate(zip(ENTRY_KEYS, facts.options, strict=False))
    ]
    choices = (*entries, back())
    event = ctx.choose(Menu(title, body, choices, tone=tone, back_event=Event.BACK))
    return None if event == Event.BACK else facts.options[int(event)]


def os_menu(ctx: Context) -> Event:
    if ctx.session.start.basic:
        return basic_boot(ctx)
    check = _verify(ctx, "OS boot menu")
    if not check.ok:
        return _refuse(ctx, _check_summary(check))
    option = _choose_option(ctx, "OS boot menu", ("/boot is verified: choose what to boot.",))
    if option is None:
        return Event.BACK
    # the entry in words (its raw line is disk text and Heads' internal format)
    event = ctx.choose(
        Menu(
            f"Boot {option.name}?",
            (
                f"Kernel: {option.kernel}",
                f"Command line: {option.cmdline or '(none)'}",
            ),
            (
                Choice("y", "Boot it", "boot"),
                Choice("d", "Make it the default (signs /boot again)", "default"),
                back("Back to the list", Event.AGAIN),
            ),
            back_event=Event.AGAIN,
        )
    )
    if event == "boot":
        return _boot(ctx, option, unsafe=False)
    if (
        event == "default"
        and ctx.confirm(
            f"Make {option.name} the default?",
            ("This signs /boot again with your key" + _counter_effect(ctx),),
            "Yes: make it the default and sign /boot",
            "No: back to the list",
        )
        and _sign(ctx, option)
    ):
        offer_after_default_saved(ctx)
        return Event.DEFAULT_SAVED  # boot it now, through the verified default path
    return Event.AGAIN


def basic_boot(ctx: Context) -> Event:
    """Basic mode's boot: the owner turned the checks off, so no question each
    time; PCR 4 is still extended first, as for every unverified boot."""
    option = _choose_option(
        ctx,
        "Basic mode: choose an entry to boot",
        (
            "Basic mode: /boot is not verified and no TOTP/HOTP was checked.",
            "PCR 4 is extended before the entry starts: sealed secrets stay sealed.",
        ),
        Tone.WARNING,
    )
    if option is None:
        return Event.BACK
    return _boot(ctx, option, unsafe=True)


def unsafe_boot(ctx: Context) -> Event:
    if ctx.session.start.basic:
        return basic_boot(ctx)  # restricted boot turns Basic mode off
    if ctx.session.start.restricted:
        ctx.page(
            "Unsafe boot disabled",
            ["Restricted boot is on (CONFIG_RESTRICTED_BOOT): only a verified /boot boots."],
            Tone.ERROR,
        )
        return Event.BACK
    if not ctx.confirm(
        "Boot without verifying /boot?",
        (
            "This boots an entry whether or not /boot is what you signed.",
            "Before it starts, PCR 4 is extended: the TOTP/HOTP secret and the disk key "
            "cannot be unsealed by the booted OS, so an encrypted disk asks for its passphrase.",
            "Use it to repair a system, never as a habit: a tampered kernel would start too.",
        ),
        "Yes: choose an entry to boot unsafely",
        "No: back to the main menu",
        Tone.ERROR,
    ):
        return Event.BACK
    option = _choose_option(
        ctx, "Unsafe boot: choose an entry", ("/boot is NOT verified.",), Tone.ERROR
    )
    if option is None:
        return Event.BACK
    return _boot(ctx, option, unsafe=True)


def _secret_asker(
    ctx: Context, title: str, label: str, why: str, max_bytes: int | None = None
) -> AskSecret:
    def ask(attempt: int, last: str) -> bytearray | None:
        body = (why,) + ((f"Attempt {attempt}: {last}.",) if last else ())
        return ctx.ask_secret(
            Prompt(
                title,
                body,
                label,
                secret=True,
                tone=Tone.WARNING if last else Tone.NORMAL,
                max_length=max_bytes or 256,
                max_bytes=max_bytes,
            )
        )

    return ask


def _counter_effect(ctx: Context) -> str:
    """What a signing does to the rollback counter, ending the sentence."""
    if ctx.session.start.rollback_check_off:
        return (
            ": the rollback counter stays where it is (CONFIG_IGNORE_ROLLBACK), so older "
            "signed copies of /boot signed at its value keep verifying once the check is "
            "on again, until the next signing with it on."
        )
    return ": the rollback counter moves on, so older signed copies of /boot stop verifying."


def sign_with_disk_unlock_files(ctx: Context) -> bool:
    """The signing of steps/disk_unlock.py (which checked /boot just before)."""
    return _sign(ctx, None, disk_unlock=True)


def _sign(
    ctx: Context, default: BootOption | None, root_list: bool = False, disk_unlock: bool = False
) -> bool:
    pin = _secret_asker(
        ctx,
        "Sign /boot",
        "Owner key PIN:",
        "Signing /boot with your key (the OpenPGP card's user PIN).",
    )
    owner = _secret_asker(
        ctx,
        "A rollback counter is needed",
        "TPM owner passphrase:",
        "The first signing creates the TPM rollback counter, which needs the TPM owner passphrase.",
        max_bytes=TPM_PASSPHRASE_MAX,
    )
    facts = ctx.platform.sign_boot(
        pin,
        owner,
        default,
        show_progress(ctx, "Signing /boot"),
        root_list=root_list,
        disk_unlock=disk_unlock,
    )
    if facts.problem:
        ctx.page(
            "/boot was not signed",
            [facts.problem, "", "The signed state on /boot was not replaced."],
            Tone.ERROR,
        )
        return False
    check = facts.check
    ctx.session.boot_check = check
    if check is None or not check.ok:
        # signed, but the check right after it refused: say that, never "verifies"
        ctx.page(
            "/boot was signed but does not verify",
            [
                *(check.findings if check is not None else ()),
                "",
                "Look at /boot from a trusted system before booting it.",
            ],
            Tone.ERROR,
        )
        return False
    lines = ["/boot is signed and verifies."]
    if check is not None and check.counter is not None:
        lines.append(f"Rollback counter: {check.counter}.")
    if default is not None:
        lines.append(f"Default entry: {default.name}.")
    lines += facts.notes
    ctx.page("/boot signed", lines, Tone.GOOD)
    return True


def update_checksums(ctx: Context) -> Event:
    return Event.DONE if sign_after_review(ctx) else Event.BACK


def sign_after_review(ctx: Context, root_list: str = "") -> bool:
    """Show what changed on /boot and sign it if the owner says so; with
    ``root_list`` (its words) the root hash list just made is signed too."""
    check = _verify(ctx, "Update checksums")
    body: list[str] = []
    if len(check.changed) > MAX_SHOWN_CHANGES:
        ctx.page(
            "Too many changes to show",
            [
                f"{len(check.changed)} paths on /boot changed since the last signing: more than "
                "this screen can show, and nothing is signed unseen.",
                "Look at /boot from a trusted system, and sign it there with the host "
                "command (python3 -m runtime.integrity sign), or remove what you did not add.",
            ],
            Tone.ERROR,
        )
        return False
    if check.ok:
        body.append("/boot is already what you signed; signing it again" + _counter_effect(ctx))
    else:
        body += ["What changed since the last signing:", *check.findings]
        if check.update_notes:
            body += ["The OS update said:", *check.update_notes]
        if check.changed:
            # every name, not only the findings' first few: the owner signs what is seen
            body += [
                "",
                f"Every path that changed ({len(check.changed)}):",
                *(f"  {name}" for name in check.changed),
            ]
    body += list(check.notes)
    if root_list:
        body.append(root_list)
    body.append("Sign only if you made these changes (an OS update, a kernel you built).")
    if not ctx.confirm(
        "Update checksums and sign /boot",
        tuple(body),
        "Yes: hash /boot and sign it with my key",
        "No: back",
        Tone.NORMAL if check.ok else Tone.WARNING,
    ):
        return False
    return _sign(ctx, None, root_list=bool(root_list))
