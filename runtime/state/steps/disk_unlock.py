"""The Disk Unlock Key's screens: its setup (from the TPM options), and at a
verified boot its passphrase, the unseal, and the ways forward when it
cannot be used (the OS then asks for the disk's recovery passphrase, as it
would without a DUK: nothing is lost)."""

from __future__ import annotations

from runtime.secrets.passphrase import OWNER_PASSPHRASE_ATTEMPTS
from runtime.secrets.ram import wipe_buffer
from runtime.state.keys import back
from runtime.state.platform import DiskContainer, DiskUnlock
from runtime.state.steps.context import Context
from runtime.state.steps.tpm_reset import TPM_PASSPHRASE_MAX
from runtime.state.view import Choice, Menu, Progress, Prompt, Tone

#: tries at the recovery passphrase, the DUK passphrase at boot
PASSPHRASE_ATTEMPTS = 3
#: Heads asks for at least 12 characters
DUK_PASSPHRASE_MIN = 12
CAPS_LOCK = "Check Caps Lock and the keyboard layout."
UNATTESTED = (
    "No TOTP code vouched for this firmware in this power-on: seal a new TOTP/HOTP "
    "secret first if you changed it yourself, then set the key up again (TPM/TOTP/HOTP "
    "options)."
)


class BootWithoutKey:
    """The answer of disk_key_for_boot when the boot goes on without a key."""


WITHOUT_KEY = BootWithoutKey()


# --- setup ------------------------------------------------------------------


def set_up_disk_unlock(ctx: Context) -> bool:
    """The whole setup; True when the DUK is set up and /boot signed."""
    if not ctx.session.tpm_present or not ctx.platform.tpm_owned():
        ctx.page(
            "Disk Unlock Key",
            [
                "The Disk Unlock Key is sealed in the TPM, and this TPM has no owner (or "
                "there is none). Reset the TPM first (TPM/TOTP/HOTP options).",
            ],
            Tone.WARNING,
        )
        return False
    from runtime.state.steps.boot import check_boot

    # /boot is signed again at the end: only what the owner signed before may
    # be signed with the key's files (nothing is signed unseen)
    if not check_boot(ctx, "Disk Unlock Key").ok:
        ctx.page(
            "/boot is not what you signed",
            [
                "The Disk Unlock Key is set up only on a /boot that verifies, since /boot is "
                "signed again with it. Look at the integrity report; if you made the changes, "
                "update the checksums first (Options).",
            ],
            Tone.ERROR,
        )
        return False
    if not ctx.session.attested and not ctx.confirm(
        "No TOTP code vouched for this firmware",
        (
            "The key is sealed to the firmware and settings running now, and in this "
            "power-on no TOTP/HOTP code showed that they are yours.",
            "Go on only if you changed them yourself; otherwise seal a new TOTP/HOTP "
            "secret first and check its code.",
        ),
        "Yes: I changed them; set the key up",
        "No: back",
    ):
        return False
    devices = _choose_devices(ctx)
    if devices is None:
        return False
    checked = _checked_recovery(ctx, devices)
    if checked is None:
        return False
    recovery, wipe_slots = checked
    secrets = [recovery]
    try:
        duk = ctx.ask_secret(
            Prompt(
                "Disk Unlock Key passphrase",
                (
                    "Choose the passphrase you will type at each boot to open the disk. The "
                    "TPM gives the key only to this firmware, configuration and disk "
                    "headers, and counts wrong passphrases.",
                    f"At least {DUK_PASSPHRASE_MIN} characters; asked twice.",
                ),
                "DUK passphrase:",
                secret=True,
                confirm=True,
                min_length=DUK_PASSPHRASE_MIN,
            )
        )
        if duk is None:
            return False
        secrets.append(duk)
        return _seal_and_sign(ctx, devices, (recovery, duk, wipe_slots), secrets)
    finally:
        for secret in secrets:
            wipe_buffer(secret)


def offer_after_default_saved(ctx: Context) -> None:
    """Heads offers the DUK when a default entry is saved: the moment an
    owner has just chosen the OS whose disk it opens. Asked only when it
    could be set up (the settings allow it, an owned TPM, a LUKS container,
    and no DUK named by the signed /boot yet); No is the default answer."""
    if not ctx.session.start.disk_unlock or not ctx.session.tpm_present:
        return
    if not ctx.session.attested:
        return  # sealed to firmware no TOTP vouched for: not offered, only chosen
    if ctx.platform.disk_unlock_listed() or not ctx.platform.tpm_owned():
        return
    found = ctx.platform.disk_containers()
    if not found:
        return
    if ctx.confirm(
        "Set up a Disk Unlock Key?",
        (
            "This machine has encrypted disks: " + ", ".join(c.device for c in found) + ".",
            "With a Disk Unlock Key, each verified boot asks a short passphrase and the OS "
            "opens them without asking for the long recovery passphrase; on a changed "
            "firmware, configuration or disk header the key stays sealed in the TPM.",
            "You can set it up later from the TPM/TOTP/HOTP options.",
        ),
        "Yes: set it up now",
        "No: not now",
        Tone.NORMAL,
    ):
        set_up_disk_unlock(ctx)


def _sign_disk_unlock(ctx: Context) -> bool:
    """Sign /boot with the key's files, only if /boot still verifies: nothing
    else is signed with them."""
    from runtime.state.steps.boot import check_boot, sign_with_disk_unlock_files

    check = check_boot(ctx, "Sign /boot")
    if not check.ok:
        ctx.page(
            "/boot was not signed",
            [*check.findings, "", "/boot changed during the setup; it was not signed."],
            Tone.ERROR,
        )
        return False
    return sign_with_disk_unlock_files(ctx)


def _choose_devices(ctx: Context) -> tuple[str, ...] | None:
    found = ctx.platform.disk_containers()
    problem = ctx.platform.disk_lvm_problem()
    lvm = (problem,) if problem else ()
    if not found:
        ctx.page(
            "No encrypted disk",
            [
                "No LUKS container was found on this machine's disks: there is nothing to unlock.",
                *lvm,
            ],
            Tone.WARNING,
        )
        return None
    choices = [Choice("a", f"All {len(found)}: " + ", ".join(c.device for c in found), "all")]
    choices += [Choice(str(i), _described(c), c.device) for i, c in enumerate(found[:9], start=1)]
    event = ctx.choose(
        Menu(
            "Disk Unlock Key: which encrypted disks?",
            (
                "The key is added to a key slot of each (31 on LUKS2, 7 on LUKS1); the slot "
                "your recovery passphrase opens is never touched.",
                *lvm,
            ),
            (*choices, back("Cancel", "cancel")),
            back_event="cancel",
        )
    )
    if event == "cancel":
        return None
    if event == "all":
        return tuple(c.device for c in found)
    return (event,)


def _described(container: DiskContainer) -> str:
    label = f", {container.label}" if container.label else ""
    group = f", LVM group {container.volume_group}" if container.volume_group else ""
    return f"{container.device} (LUKS{container.version}, {container.size_mib} MiB{label}{group})"


def _checked_recovery(ctx: Context, devices: tuple[str, ...]) -> tuple[bytearray, bool] | None:
    """The Disk Recovery Key passphrase, checked right away against every disk,
    and whether the DUK slots in use may be wiped."""
    last = ""
    for _ in range(PASSPHRASE_ATTEMPTS):
        answer = ctx.ask_secret(
            Prompt(
                "Disk Recovery Key passphrase",
                (
                    "The passphrase the disks open with today: it authorises adding the key.",
                    *((last,) if last else ()),
                ),
                "Recovery passphrase:",
                secret=True,
                tone=Tone.WARNING if last else Tone.NORMAL,
            )
        )
        if answer is None:
            return None
        ctx.ui.progress(Progress("Disk Unlock Key", "Checking the passphrase on each disk..."))
        facts = ctx.platform.check_disks(devices, answer)
        if not facts.problem and _slots_may_go(ctx, facts.slots_in_use):
            return answer, bool(facts.slots_in_use)
        wipe_buffer(answer)
        if not facts.problem:
            return None
        if not facts.wrong_passphrase:
            ctx.page("The Disk Unlock Key was not set up", [facts.problem], Tone.ERROR)
            return None
        last = f"{facts.problem} {CAPS_LOCK}"
    ctx.page(
        "The Disk Unlock Key was not set up",
        ["The recovery passphrase was refused three times. Nothing was changed."],
        Tone.ERROR,
    )
    return None


def _slots_may_go(ctx: Context, in_use: tuple[str, ...]) -> bool:
    if not in_use:
        return True
    return ctx.confirm(
        "Replace the key in these slots?",
        (
            "These key slots hold a key already, most likely an earlier Disk Unlock Key:",
            *(f"  {slot}" for slot in in_use),
            "It is wiped and replaced. Your recovery passphrase's slot is never touched.",
        ),
        "Yes: replace it",
        "No: cancel",
    )


def _seal_and_sign(
    ctx: Context,
    devices: tuple[str, ...],
    given: tuple[bytearray, bytearray, bool],
    secrets: list[bytearray],
) -> bool:
    """Seal with the owner passphrase (asked again after a typo only), then sign."""
    recovery, duk, wipe_slots = given

    last = ""
    for _ in range(OWNER_PASSPHRASE_ATTEMPTS):
        owner = ctx.ask_secret(
            Prompt(
                "TPM owner passphrase",
                ("Storing the sealed key in the TPM needs its owner passphrase.",)
                + ((last,) if last else ()),
                "Owner passphrase:",
                secret=True,
                max_length=TPM_PASSPHRASE_MAX,
                max_bytes=TPM_PASSPHRASE_MAX,
            )
        )
        if owner is None:
            return False
        secrets.append(owner)
        facts = ctx.platform.set_up_disk_unlock(
            devices,
            recovery,
            duk,
            owner,
            wipe_slots,
            lambda text: ctx.ui.progress(Progress("Disk Unlock Key", text)),
        )
        if not facts.problem:
            break
        if not facts.wrong_owner_passphrase:
            ctx.page("The Disk Unlock Key was not set up", [facts.problem], Tone.ERROR)
            return False
        last = f"The TPM refused that passphrase. {CAPS_LOCK}"
    else:
        return False
    if not _sign_disk_unlock(ctx):
        ctx.page(
            "The Disk Unlock Key is not in use yet",
            [
                "The key is in the disks and sealed in the TPM, but /boot was not signed with "
                "the list of its disks, so no boot uses it. Set it up again to finish.",
            ],
            Tone.WARNING,
        )
        return False
    ctx.page(
        "Disk Unlock Key set up",
        [
            f"Sealed to PCRs {', '.join(str(p) for p in facts.pcrs)}.",
            "From the next power-on, each verified boot asks its passphrase, and the OS "
            "opens " + ", ".join(devices) + " without asking. After a firmware or "
            "configuration change it stays sealed: the OS then asks for the recovery "
            "passphrase, and you set it up again.",
        ],
        Tone.GOOD,
    )
    return True


# --- a verified boot --------------------------------------------------------


def disk_key_for_boot(ctx: Context) -> bytearray | BootWithoutKey | None:
    """The DUK's cpio for this boot (the caller wipes it); WITHOUT_KEY: boot
    without it; None: back to the menu."""
    if not ctx.session.start.disk_unlock:
        return WITHOUT_KEY  # the owner's settings turned it off
    facts = ctx.platform.disk_unlock()
    if facts.state is DiskUnlock.NONE:
        return WITHOUT_KEY
    if facts.state is DiskUnlock.LATER:
        ctx.page("Disk Unlock Key", [facts.problem, "", "The OS asks for the recovery passphrase."])
        return WITHOUT_KEY
    if facts.state is DiskUnlock.REFUSED:
        return _without_key(ctx, facts.problem, Tone.ERROR)
    if facts.state is DiskUnlock.UNAVAILABLE:
        if facts.set_up_again and not ctx.session.attested:
            # a key sealed to firmware nobody checked would seal to an attacker's
            return _without_key(ctx, f"{facts.problem} {UNATTESTED}")
        return _without_key(ctx, facts.problem, set_up_again=facts.set_up_again)
    last = ""
    for attempt in range(1, PASSPHRASE_ATTEMPTS + 1):
        passphrase = ctx.ask_secret(
            Prompt(
                "Disk Unlock Key",
                (
                    ctx.session.totp_line(),
                    "",
                    "The passphrase of the Disk Unlock Key opens the disk for the OS. "
                    f"Attempt {attempt} of {PASSPHRASE_ATTEMPTS}; each wrong one counts "
                    "toward the TPM's lockout. Esc: boot without it.",
                    *((last,) if last else ()),
                ),
                "DUK passphrase:",
                secret=True,
                min_length=1,  # an empty one would cost a try at the TPM
                tone=Tone.WARNING if last else Tone.NORMAL,
            )
        )
        if passphrase is None:
            return _without_key(ctx, "You chose not to use the Disk Unlock Key.")
        try:
            ctx.ui.progress(Progress("Disk Unlock Key", "Unsealing the key from the TPM..."))
            key = ctx.platform.disk_key(passphrase)
        finally:
            wipe_buffer(passphrase)
        if key.key is not None:
            return key.key
        if not key.wrong_passphrase:
            return _without_key(ctx, key.problem)
        last = f"{key.problem} {CAPS_LOCK}"
    return _without_key(ctx, f"The passphrase was refused {PASSPHRASE_ATTEMPTS} times.")


def _without_key(
    ctx: Context, why: str, tone: Tone = Tone.WARNING, set_up_again: bool = False
) -> BootWithoutKey | None:
    again = (
        (Choice("s", "Set the key up again for this firmware and settings", "again"),)
        if set_up_again
        else ()
    )
    event = ctx.choose(
        Menu(
            "Boot without the Disk Unlock Key?",
            (
                why,
                "",
                "The OS starts as it would without a Disk Unlock Key: it asks for the disk's "
                "recovery passphrase. Nothing is lost.",
                *(
                    (
                        "If you changed the firmware or its settings yourself, set the key up "
                        "again: it is used from the next power-on.",
                    )
                    if set_up_again
                    else ()
                ),
            ),
            (
                Choice("y", "Boot; the OS asks for the recovery passphrase", "boot"),
                *again,
                back("Back to the main menu", "menu"),
            ),
            tone=tone,
            back_event="menu",
        )
    )
    if event == "again":
        set_up_disk_unlock(ctx)
        return None  # the main menu: this power-on boots without it either way
    return WITHOUT_KEY if event == "boot" else None
