"""DevicePlatform's verified boot: the glue that gives /boot as mounted, the TPM and the owner's
answers to the checks and the signing (runtime.integrity) and to the kexec
hand-over (runtime.kexec.handover). Decisions stay in runtime.state.steps.boot.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import subprocess
import time
from collections.abc import Callable

from runtime import bootlog
from runtime.boot_configs.entry import ConfigSyntaxError
from runtime.boot_configs.fs import MemoryFS
from runtime.boot_configs.heads_default import (
    DefaultStatus,
    SavedDefault,
    match_saved_default,
    read_saved_default,
)
from runtime.boot_configs.heads_line import parse_heads_line
from runtime.boot_configs.heads_listing import heads_listing
from runtime.devices.boot_device import journal_pending, writable
from runtime.error_detail import describe, detail, plain
from runtime.image_files import OWNER_KEY_PATH, OWNER_SECRET_KEY_PATH
from runtime.integrity import boot_entry_checks
from runtime.integrity.boot_entry_checks import entry_files, saved_default_problem
from runtime.integrity.boot_lists import PENDING_DIR
from runtime.integrity.boot_view import BootView
from runtime.integrity.gpg_signer import GpgSigner, remove_signing_home, signing_home
from runtime.integrity.package_trigger import parse_trigger
from runtime.integrity.primary_handle import format_primary_hash, primary_handle_bytes
from runtime.integrity.sign_boot import DefaultChoice, SigningError, settle_interrupted, sign_boot
from runtime.integrity.tpm_counter import TpmCounter
from runtime.integrity.verify_boot import BootReport, Problem, printable, shown_name, verify_boot
from runtime.kexec.handover import boot_entry
from runtime.secrets.passphrase import OWNER_PASSPHRASE_ATTEMPTS
from runtime.secrets.ram import SECRET_DIR, wipe_buffer
from runtime.state.boot_side import BootSide
from runtime.state.platform import (
    AskSecret,
    BootCheck,
    BootOption,
    DefaultFacts,
    OptionsFacts,
    SignFacts,
)
from runtime.tpm.errors import TpmError, WrongPassphrase
from runtime.tpm.ownership import check_owner_passphrase


def _hash_progress(progress: Callable[[str], None]) -> Callable[[int, int, str], None]:
    last = [0.0]

    def report(done: int, total: int, name: str) -> None:
        now = time.monotonic()
        if now - last[0] < 0.5 and done < total:
            return  # a serial console cannot take a line per MiB
        last[0] = now
        pct = 100 * done // total if total else 100
        progress(f"Checking /boot against its signed hashes: {pct}% ({shown_name(name)})")

    return report


def _read_counter(tpm: object) -> Callable[[int], int]:
    return TpmCounter(tpm).value  # type: ignore[arg-type]


def _check_of(report: object) -> BootCheck:
    assert isinstance(report, BootReport)
    notes = []
    for name, text in report.package_triggers.items():
        # unsigned text from the disk: shown, never able to draw on the screen
        trigger = parse_trigger(name, text)
        what = ", ".join(shown_name(f) for f in trigger.changed_files[:6])
        notes.append(
            printable(f"{trigger.package or 'an update'} ({trigger.phase}): ") + (what or "no list")
        )
    unsigned = {f.problem for f in report.findings} >= {
        Problem.SIGNATURE_MISSING,
        Problem.LIST_MISSING,
    }
    return BootCheck(
        ok=report.ok,
        findings=tuple(str(f) for f in report.findings),
        problems=frozenset(str(f.problem) for f in report.findings),
        changed=tuple(
            shown_name(p)
            for p in sorted({*report.modified, *report.added, *report.removed}, key=os.fsencode)
        )
        + tuple(report.unexpected),
        counter=report.counter,
        signer=report.signer,
        update_notes=tuple(notes),
        unsigned=unsigned,
        notes=tuple(report.notes),
    )


#: what a check without the counter says, so no report reads as a full check
ROLLBACK_OFF_NOTE = (
    "The rollback counter was not checked (CONFIG_IGNORE_ROLLBACK): an "
    "older signed /boot put back would pass."
)


def verify(
    side: BootSide,
    tpm: object | None,
    progress: Callable[[str], None],
    *,
    check_rollback: bool = True,
) -> BootCheck:
    """check_rollback False (CONFIG_IGNORE_ROLLBACK): Heads skips the counter
    when verifying too, not only in the preflight."""

    if not side.device:
        return BootCheck(False, ("No /boot partition was found: there is nothing to verify.",))
    if tpm is None:
        return BootCheck(False, ("No TPM: the rollback counter cannot be checked.",))
    try:
        settled = settle(side, tpm)
    except OSError as err:
        settled = (
            "An interrupted signing was found, but it could not be settled: "
            f"{_os_words(err)} Restart and try again."
        )
    progress("Checking the owner's signature over /boot...")
    read_counter = _read_counter(tpm) if check_rollback else None
    report = verify_boot(
        side.boot_dir,
        OWNER_KEY_PATH,
        read_counter,
        work_dir=_work_dir(),
        progress=_hash_progress(progress),
    )
    if not check_rollback:
        report.notes.append(ROLLBACK_OFF_NOTE)
    _journal_finding(side, report)
    side.last_report = report
    side.listing = []  # the menu is read again, through what this check found
    bootlog.stage(
        "boot-verified",
        ok=report.ok,
        findings=len(report.findings),
        rollback_checked=check_rollback,
    )
    check = _check_of(report)
    return dataclasses.replace(check, settled=settled) if settled else check


def _journal_finding(side: BootSide, report: object) -> None:
    """A journal the probe did not replay would change /boot the moment it is
    written: say so before the owner signs anything."""

    if isinstance(report, BootReport) and journal_pending(side.device):
        report.notes.append(
            "/boot's file system journal holds changes that were never applied. Signing "
            "applies them first and stops if anything changes that you were not shown."
        )


def _work_dir() -> str | None:
    return SECRET_DIR if os.path.isdir(SECRET_DIR) else None


def settle(side: BootSide, tpm: object) -> str:
    """Finish or drop a signing a power cut interrupted (needs /boot writable)."""

    if not os.path.lexists(os.path.join(side.boot_dir, PENDING_DIR)):
        return ""  # a FIFO or a link named so is settled (removed) too
    with _writable(side):
        return settle_interrupted(
            side.boot_dir,
            TpmCounter(tpm),  # type: ignore[arg-type]
            OWNER_KEY_PATH,
            work_dir=_work_dir(),
        )


def _writable(side: BootSide) -> contextlib.AbstractContextManager[None]:
    return writable(side.device, side.boot_dir)


def view(side: BootSide) -> BootView:
    """/boot as the menu and the boot read it: only what the owner signed when
    the last check verified it, else the disk as it is (never outside /boot)."""

    report = side.last_report
    signed = report.signed() if isinstance(report, BootReport) else None
    return BootView(side.boot_dir, signed)


def options(side: BootSide) -> OptionsFacts:
    if not side.device:
        return OptionsFacts(problem="No /boot partition was found.")
    boot_view = view(side)
    try:
        listing = heads_listing(boot_view)
    except (OSError, ValueError, RecursionError, MemoryError) as err:
        why = (
            f"{err.strerror}."
            if isinstance(err, OSError) and err.strerror
            else "it is damaged, too large, or made to break the reader."
        )
        return OptionsFacts(
            problem=plain(
                "boot-options",
                err,
                (
                    f"The boot configuration on /boot cannot be read: {why} Check /boot from the "
                    "recovery shell."
                ),
            )
        )
    side.listing = listing.lines
    found: list[BootOption] = []
    warnings = [printable(str(w)) for w in listing.warnings[:8]]
    for number, line in enumerate(listing.lines, start=1):
        try:
            entry = parse_heads_line(line).entry
        except ConfigSyntaxError as err:
            warnings.append(printable(f"entry {number} cannot be booted: {err}"))
            continue
        # the line boots as it is; what the screens show of it cannot draw
        found.append(
            BootOption(
                number,
                line,
                printable(entry.name or f"entry {number}"),
                printable(entry.kernel),
                printable(entry.cmdline),
            )
        )
    problem = "" if found else "The boot configuration on /boot offers nothing to boot."
    return OptionsFacts(tuple(found), problem, tuple(warnings))


def verified_files_problem(side: BootSide, option: BootOption) -> str:
    """Empty when every file the entry boots was signed and just verified."""

    return boot_entry_checks.verified_files_problem(view(side), option.line)


def trusted_state(side: BootSide) -> dict[str, bytes]:
    """The signed-state files the last check found signed by the owner."""

    report = side.last_report
    return dict(report.trusted_state) if isinstance(report, BootReport) else {}


def signed_saved_default(side: BootSide) -> SavedDefault | None:
    """The saved default as the owner's signature covers it (None: none saved)."""
    trusted = {
        f"/{name}": data.decode("utf-8", "replace") for name, data in trusted_state(side).items()
    }
    saved, _ = read_saved_default(MemoryFS(trusted), [name[1:] for name in trusted])
    return saved


def saved_default(side: BootSide, tpm: object | None = None) -> DefaultFacts:
    # the listing as last shown names the default; read it once if none was shown
    listed = None if side.listing else options(side)
    # only a default the owner's signature covers counts
    saved = signed_saved_default(side)
    if saved is None:
        return DefaultFacts(none_saved=True)
    match = match_saved_default(side.listing, saved)
    if match.status is not DefaultStatus.SAME or match.index is None:
        return DefaultFacts(problem=f"The boot entries changed: {match.reason}.")
    offered = (listed or options(side)).options
    chosen = next((o for o in offered if o.number == saved.index), None)
    if chosen is None:
        return DefaultFacts(problem="The saved default entry cannot be booted.")
    problem = saved_default_problem(view(side), trusted_state(side), chosen.line, tpm)
    if problem:
        return DefaultFacts(problem=f"The saved default entry: {problem}")
    return DefaultFacts(option=chosen)


def sign(
    side: BootSide,
    tpm: object,
    ask_pin: AskSecret,
    ask_owner: AskSecret,
    default: BootOption | None,
    progress: Callable[[str], None],
    *,
    bump: bool = True,
    extra: dict[str, bytes] | None = None,
    drop: tuple[str, ...] = (),
) -> SignFacts:
    if not side.device:
        return SignFacts(problem="No /boot partition was found.")
    owner_auth: bytearray | None = None

    class AskingCounter(TpmCounter):
        def owner_passphrase(self) -> bytes:
            nonlocal owner_auth
            if self.owner_auth is None:
                owner_auth = _checked_owner_passphrase(tpm, ask_owner)
                self.owner_auth = bytes(owner_auth)
            return self.owner_auth

    choice = None
    if default is not None:
        primary = None  # a TPM without a storage key: nothing to bind to (yet)
        try:
            if tpm.has_primary():  # type: ignore[attr-defined]
                primary = format_primary_hash(primary_handle_bytes(tpm))
        except TpmError as err:
            return SignFacts(
                problem=plain(
                    "sign-boot",
                    err,
                    "The TPM storage key cannot be read, so nothing was signed. " + err.plain(),
                )
            )
        choice = DefaultChoice(
            default.number, default.line, tuple(entry_files(default.line)), primary
        )
    home = ""
    try:
        home, gpg = signing_home(OWNER_KEY_PATH, OWNER_SECRET_KEY_PATH, _work_dir())
        signer = GpgSigner(home, ask_pin=ask_pin, gpg_binary=gpg)
        shown = side.last_report
        if not isinstance(shown, BootReport):
            return SignFacts(problem="/boot was not checked first: nothing was signed.")
        with _writable(side):
            report = sign_boot(
                side.boot_dir,
                signer,
                AskingCounter(tpm),  # type: ignore[arg-type]
                OWNER_KEY_PATH,
                default=choice,
                progress=_hash_progress(progress),
                work_dir=_work_dir(),
                step=progress,
                shown=shown,
                bump=bump,
                extra=extra,
                drop=drop,
            )
    except SigningError as err:
        side.last_report = None  # what was shown is no longer what is there
        detail("sign-boot", describe(err))
        return SignFacts(problem=f"/boot was not signed: {_sentence(str(err))}")
    except OSError as err:
        side.last_report = None
        detail("sign-boot", describe(err))
        return SignFacts(problem=f"/boot was not signed: {_os_words(err)}")
    except (ValueError, subprocess.SubprocessError) as err:
        side.last_report = None
        return SignFacts(
            problem=plain(
                "sign-boot",
                err,
                (
                    "/boot was not signed: something on /boot or in the firmware could not be "
                    "handled. Check /boot again, then try again."
                ),
            )
        )
    finally:
        if owner_auth is not None:
            wipe_buffer(owner_auth)
        if home:
            remove_signing_home(home)
    side.last_report = report
    side.listing = []
    bootlog.stage("boot-signed", ok=report.ok, counter=report.counter)
    return SignFacts(check=_check_of(report))


def _checked_owner_passphrase(tpm: object, ask_owner: AskSecret) -> bytearray:
    """The owner passphrase, checked by the TPM before anything uses it (the
    check changes nothing), asked again after a typo; SigningError when the
    user gives up or the tries run out."""

    last = ""
    for attempt in range(1, OWNER_PASSPHRASE_ATTEMPTS + 1):
        answer = ask_owner(attempt, last)
        if answer is None:
            raise SigningError("no TPM owner passphrase was given: the counter was not created.")
        try:
            check_owner_passphrase(tpm, bytes(answer))  # type: ignore[arg-type]
        except WrongPassphrase as err:
            detail("sign-boot", describe(err))
            wipe_buffer(answer)
            last = "the TPM refused that passphrase; check Caps Lock and the keyboard layout"
            continue
        return answer
    raise SigningError(
        f"the TPM refused the owner passphrase {OWNER_PASSPHRASE_ATTEMPTS} "
        "times: nothing was signed."
    )


def _sentence(text: str) -> str:
    """A message as a sentence: a capital letter and a full stop."""
    text = text.strip()
    if not text:
        return "the reason is in the runtime's log."
    return text if text.endswith((".", "?", "!")) else text + "."


def _os_words(err: OSError) -> str:
    """An OSError for the screen: the plain text this runtime raised it with
    (a remount refused, the TPM counter's words), else the system's words
    for what failed on /boot; never "[Errno N]" or a command line."""
    if err.strerror:
        return f"/boot could not be written or read ({err.strerror})."
    return _sentence(str(err))


def boot(
    side: BootSide,
    tpm: object | None,
    loaded: object | None,
    option: BootOption,
    unsafe: bool,
    progress: Callable[[str], None],
    disk_key: bytearray | None = None,
) -> str | None:
    """Boot ``option`` (runtime.kexec.handover): on the verified path only
    when every file it loads was signed and just verified. None when the
    kernel is loaded: the runtime then exits and /init starts it (startup.py
    says why); else the reason it was not loaded."""

    if not unsafe:
        problem = verified_files_problem(side, option)
        if problem:
            return problem
    boot_view = view(side) if not unsafe else BootView(side.boot_dir, None)
    settings = getattr(loaded, "settings", None)
    return boot_entry(
        boot_view,
        option.line,
        tpm,  # type: ignore[arg-type]
        settings,
        unsafe,
        progress,
        disk_key if not unsafe else None,  # an unverified boot never gets the key
    )
