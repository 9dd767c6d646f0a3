"""The device side of verified boot, for DevicePlatform: /boot as mounted, the
TPM counter, gpg, kexec. Decisions stay in runtime.state.steps.boot; the
formats and checks in runtime.integrity and runtime.boot_configs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from runtime import bootlog
from runtime.error_detail import describe, detail, plain
from runtime.secrets.ram import SECRET_DIR
from runtime.state.platform import (
    AskSecret,
    BootCheck,
    BootOption,
    DefaultFacts,
    OptionsFacts,
    SignFacts,
)

if TYPE_CHECKING:  # imported where used: the start does not load /boot's modules
    from runtime.integrity.boot_view import BootView

OWNER_KEY_PATH = "/etc/runtime/owner.asc"
#: test images only (build_initrd.py --owner-secret-key): the owner's secret
#: key in the firmware, so QEMU tests can sign without an OpenPGP card
OWNER_SECRET_KEY_PATH = "/etc/runtime/owner-secret.asc"  # noqa: S105 (a path)
GPG_TIMEOUT = 60
#: how long a warning about the kernel command line stays on screen before booting
WARNING_SECONDS = 5


@dataclass
class BootSide:
    """What verified boot keeps between steps of one power-on."""

    boot_dir: str = "/boot"
    device: str = ""
    last_report: object | None = None  # runtime.integrity.verify_boot.BootReport
    #: Heads' listing lines as last shown (their numbers name the default)
    listing: list[str] = field(default_factory=list)


def _hash_progress(progress: Callable[[str], None]) -> Callable[[int, int, str], None]:
    from runtime.integrity.verify_boot import shown_name

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
    from runtime.integrity.tpm_counter import TpmCounter

    return TpmCounter(tpm).value  # type: ignore[arg-type]


def _check_of(report: object) -> BootCheck:
    from runtime.integrity.package_trigger import parse_trigger
    from runtime.integrity.verify_boot import BootReport, Problem, printable, shown_name

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
    from runtime.integrity.verify_boot import verify_boot

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
    from runtime.devices.boot_device import journal_pending
    from runtime.integrity.verify_boot import BootReport

    if isinstance(report, BootReport) and journal_pending(side.device):
        report.notes.append(
            "/boot's file system journal holds changes that were never applied. Signing "
            "applies them first and stops if anything changes that you were not shown."
        )


def _work_dir() -> str | None:
    return SECRET_DIR if os.path.isdir(SECRET_DIR) else None


def settle(side: BootSide, tpm: object) -> str:
    """Finish or drop a signing a power cut interrupted (needs /boot writable)."""
    from runtime.integrity.boot_lists import PENDING_DIR
    from runtime.integrity.sign_boot import settle_interrupted
    from runtime.integrity.tpm_counter import TpmCounter

    if not os.path.lexists(os.path.join(side.boot_dir, PENDING_DIR)):
        return ""  # a FIFO or a link named so is settled (removed) too
    with writable(side):
        return settle_interrupted(
            side.boot_dir,
            TpmCounter(tpm),  # type: ignore[arg-type]
            OWNER_KEY_PATH,
            work_dir=_work_dir(),
        )


@contextlib.contextmanager
def writable(side: BootSide) -> Iterator[None]:
    """/boot mounted read-write for the duration, then read-only (noload) again."""
    from runtime.devices.boot_device import remount

    # a pending journal is replayed here: the signing then refuses any change
    # the owner was not shown (sign_boot's check against the report)
    problem = remount(side.device, side.boot_dir, writable=True, replay_journal=True)
    if problem:
        raise OSError(problem)
    try:
        yield
    finally:
        os.sync()
        problem = remount(side.device, side.boot_dir, writable=False)
        if problem:
            bootlog.stage("boot-remount-failed", problem=problem)


def view(side: BootSide) -> BootView:
    """/boot as the menu and the boot read it: only what the owner signed when
    the last check verified it, else the disk as it is (never outside /boot)."""
    from runtime.integrity.boot_view import BootView
    from runtime.integrity.verify_boot import BootReport

    report = side.last_report
    signed = report.signed() if isinstance(report, BootReport) else None
    return BootView(side.boot_dir, signed)


def options(side: BootSide) -> OptionsFacts:
    from runtime.boot_configs.entry import ConfigSyntaxError
    from runtime.boot_configs.heads_line import parse_heads_line
    from runtime.boot_configs.heads_listing import heads_listing
    from runtime.integrity.verify_boot import printable

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


def _entry_files(option: BootOption) -> list[str]:
    from runtime.boot_configs.heads_line import parse_heads_line

    entry = parse_heads_line(option.line).entry
    return [entry.kernel, *entry.initrds, *(m.path for m in entry.modules)]


def verified_files_problem(side: BootSide, option: BootOption) -> str:
    """Empty when every file the entry boots resolves, through the signed
    symlinks only, to a regular file whose signed hash was just verified."""
    from runtime.boot_configs.entry import ConfigSyntaxError
    from runtime.integrity.boot_paths import BootPathError
    from runtime.integrity.verify_boot import printable

    boot_view = view(side)
    if not boot_view.verified:
        return "/boot was not verified."
    try:
        for path in _entry_files(option):
            boot_view.check_bootable(path)
    except BootPathError as err:
        return printable(f"{err}.")  # names and link targets from the disk
    except ConfigSyntaxError as err:
        return printable(f"the entry cannot be read: {err}")
    return ""


def trusted_state(side: BootSide) -> dict[str, bytes]:
    """The signed-state files the last check found signed by the owner."""
    from runtime.integrity.verify_boot import BootReport

    report = side.last_report
    return dict(report.trusted_state) if isinstance(report, BootReport) else {}


def _default_hashes_problem(side: BootSide) -> str:
    """kexec_default_hashes.txt must agree with the files just verified."""
    from runtime.integrity.boot_lists import DEFAULT_HASHES_FILE, ListFormatError, parse_sums
    from runtime.integrity.boot_paths import BootPathError

    data = trusted_state(side).get(DEFAULT_HASHES_FILE)
    if data is None:
        return "kexec_default_hashes.txt is missing: save the default again."
    try:
        lines = parse_sums(data, DEFAULT_HASHES_FILE)
    except ListFormatError as err:
        return f"kexec_default_hashes.txt cannot be read: {err}"
    boot_view = view(side)

    def signed(name: str) -> str | None:
        # sha256sum follows a symlink (/vmlinuz -> vmlinuz-6.1): so do we, if signed
        try:
            return boot_view.signed_digest(boot_view.resolve(name.removeprefix(".")))
        except BootPathError:
            return None

    stale = [line.name for line in lines if signed(line.name) != line.digest]
    if stale:
        return (
            f"its files changed since it was saved ({', '.join(stale[:4])}): "
            "choose it again in the OS menu."
        )
    return ""


def _primary_problem(side: BootSide, tpm: object | None) -> str:
    """Heads' check of kexec_primhdl_hash.txt: the TPM's storage key must be
    the one the default was saved with."""
    from runtime.integrity.boot_lists import PRIMARY_HANDLE_HASH_FILE, ListFormatError
    from runtime.integrity.primary_handle import primary_handle_bytes, primary_hash_matches
    from runtime.tpm.errors import TpmError

    data = trusted_state(side).get(PRIMARY_HANDLE_HASH_FILE)
    if data is None:
        if tpm is not None and not tpm.has_primary():  # type: ignore[attr-defined]
            return ""  # saved on a TPM without a storage key, and still none: nothing moved
        return (
            "/boot does not say which TPM storage key its default was saved with "
            "(kexec_primhdl_hash.txt is missing): save the default again."
        )
    if tpm is None:
        return "No TPM: the default entry's binding to the TPM cannot be checked."
    try:
        if primary_hash_matches(data, primary_handle_bytes(tpm)):
            return ""
    except ListFormatError as err:
        return f"kexec_primhdl_hash.txt cannot be read: {err}. Save the default again."
    except TpmError as err:
        return plain("primary-handle", err, "The TPM storage key cannot be checked. " + err.plain())
    return (
        "The TPM's storage key is not the one the default was saved with: the TPM was "
        "reset or replaced since. Choose the entry in the OS menu and save it again."
    )


def saved_default(side: BootSide, tpm: object | None = None) -> DefaultFacts:
    from runtime.boot_configs.fs import MemoryFS
    from runtime.boot_configs.heads_default import (
        DefaultStatus,
        match_saved_default,
        read_saved_default,
    )

    if not side.listing:
        options(side)
    # only a default the owner's signature covers counts
    trusted = {
        f"/{name}": data.decode("utf-8", "replace") for name, data in trusted_state(side).items()
    }
    saved, _ = read_saved_default(MemoryFS(trusted), [name[1:] for name in trusted])
    if saved is None:
        return DefaultFacts(none_saved=True)
    match = match_saved_default(side.listing, saved)
    if match.status is not DefaultStatus.SAME or match.index is None:
        return DefaultFacts(problem=f"The boot entries changed: {match.reason}.")
    chosen = next((o for o in options(side).options if o.number == saved.index), None)
    if chosen is None:
        return DefaultFacts(problem="The saved default entry cannot be booted.")
    problem = (
        verified_files_problem(side, chosen)
        or _default_hashes_problem(side)
        or _primary_problem(side, tpm)
    )
    if problem:
        return DefaultFacts(problem=f"The saved default entry: {problem}")
    return DefaultFacts(option=chosen)


def _signing_home() -> tuple[str, str]:
    """A RAM GnuPG home with the owner's keys: the secret key of a test image,
    else the public key and the OpenPGP card's stubs (gpg --card-status).
    SigningError, in plain words, when the keys cannot be loaded."""
    from runtime.integrity.sign_boot import SigningError

    base = _work_dir()
    home = tempfile.mkdtemp(prefix="gpg-sign-", dir=base)
    os.chmod(home, 0o700)
    gpg = shutil.which("gpg") or "gpg"
    keys = [OWNER_SECRET_KEY_PATH] if os.path.exists(OWNER_SECRET_KEY_PATH) else [OWNER_KEY_PATH]
    for key in keys:
        try:
            subprocess.run(
                [gpg, "--homedir", home, "--batch", "--import", key],
                check=True,
                timeout=GPG_TIMEOUT,
                capture_output=True,
            )
        except subprocess.CalledProcessError as err:
            shutil.rmtree(home, ignore_errors=True)
            # gpg's words and its command line reach the log through the cause
            raise SigningError(
                "gpg could not load the owner's key from the firmware (the key file in "
                "the image is damaged?). Nothing was changed. Build the firmware image "
                "again with the owner's key, and flash it."
            ) from err
        except (OSError, subprocess.SubprocessError) as err:
            shutil.rmtree(home, ignore_errors=True)
            raise SigningError(
                "gpg did not run or did not answer. Nothing was changed. Try again."
            ) from err
    if keys == [OWNER_KEY_PATH]:
        # the card answers for the secret key; without a card gpg says so at signing
        subprocess.run(
            [gpg, "--homedir", home, "--batch", "--card-status"],
            check=False,
            timeout=GPG_TIMEOUT,
            capture_output=True,
        )
    return home, gpg


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
) -> SignFacts:
    from runtime.integrity.gpg_signer import GpgSigner
    from runtime.integrity.sign_boot import DefaultChoice, SigningError, sign_boot
    from runtime.integrity.tpm_counter import TpmCounter
    from runtime.integrity.verify_boot import BootReport
    from runtime.secrets.ram import wipe_buffer

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

    from runtime.integrity.primary_handle import format_primary_hash, primary_handle_bytes
    from runtime.tpm.errors import TpmError

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
        choice = DefaultChoice(default.number, default.line, tuple(_entry_files(default)), primary)
    home = ""
    try:
        home, gpg = _signing_home()
        signer = GpgSigner(home, ask_pin=ask_pin, gpg_binary=gpg)
        shown = side.last_report
        if not isinstance(shown, BootReport):
            return SignFacts(problem="/boot was not checked first: nothing was signed.")
        with writable(side):
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
            gpgconf = shutil.which("gpgconf") or "/usr/bin/gpgconf"
            subprocess.run(
                [gpgconf, "--homedir", home, "--kill", "all"],
                check=False,
                timeout=GPG_TIMEOUT,
                capture_output=True,
            )
            shutil.rmtree(home, ignore_errors=True)
    side.last_report = report
    side.listing = []
    bootlog.stage("boot-signed", ok=report.ok, counter=report.counter)
    return SignFacts(check=_check_of(report))


#: tries at the TPM owner passphrase while signing (a typo is the likely cause)
OWNER_PASSPHRASE_ATTEMPTS = 3


def _checked_owner_passphrase(tpm: object, ask_owner: AskSecret) -> bytearray:
    """The owner passphrase, checked by the TPM before anything uses it (the
    check changes nothing), asked again after a typo; SigningError when the
    user gives up or the tries run out."""
    from runtime.integrity.sign_boot import SigningError
    from runtime.secrets.ram import wipe_buffer
    from runtime.tpm.errors import WrongPassphrase
    from runtime.tpm.ownership import check_owner_passphrase

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


def _words(value: object) -> str:
    """A Words() setting (a tuple) or a plain string, as one line."""
    if isinstance(value, (list, tuple)):
        return " ".join(str(v) for v in value)
    return str(value or "")


def settings_cmdline_words(settings: object | None) -> tuple[str, str]:
    """CONFIG_BOOT_KERNEL_ADD and CONFIG_BOOT_KERNEL_REMOVE, as plan_for's
    ``board_add`` and ``remove``."""
    return (
        _words(getattr(settings, "boot_kernel_add", "")),
        _words(getattr(settings, "boot_kernel_remove", "")),
    )


def boot(
    side: BootSide,
    tpm: object | None,
    board: object | None,
    loaded: object | None,
    option: BootOption,
    unsafe: bool,
    progress: Callable[[str], None],
) -> str | None:
    """Copy the entry's files into RAM (checked against the signed hashes on
    the verified path), load that copy with kexec and prepare the hand-over
    (PCR 4, TPM locked, secrets wiped, /boot unmounted). None when the kernel
    is loaded: the runtime then exits and /init starts it (startup.py says
    why); else the reason it was not loaded."""
    from runtime.boot_configs.entry import ConfigSyntaxError
    from runtime.boot_configs.heads_line import parse_heads_line
    from runtime.integrity.boot_paths import BootPathError
    from runtime.integrity.boot_view import BootView
    from runtime.integrity.verify_boot import printable
    from runtime.kexec import load as kexec
    from runtime.kexec import ram_copy
    from runtime.kexec.cmdline import cmdline_refusal
    from runtime.kexec.errors import KexecError
    from runtime.kexec.finalize import prepare_handover
    from runtime.kexec.freed_memory import freed_memory_zeroed, handover_line
    from runtime.kexec.plan import plan_for
    from runtime.secrets.ram import SecretDir, SecretDirError
    from runtime.tpm.errors import Pcr4NotExtended, TpmError

    if not unsafe:
        problem = verified_files_problem(side, option)
        if problem:
            return problem
    boot_view = view(side) if not unsafe else BootView(side.boot_dir, None)
    board_add, remove = settings_cmdline_words(getattr(loaded, "settings", None))
    # Basic mode is the owner's choice, not a forced boot: no red console
    basic = bool(getattr(getattr(loaded, "settings", None), "basic_mode", False))
    try:
        entry = parse_heads_line(option.line).entry
        needed = ram_copy.needed_bytes(boot_view, entry)
        room = ram_copy.room_problem(needed, ram_copy.available_ram())
        if room:
            return room
        with ram_copy.ram_stage(needed) as directory:
            progress(f"Copying {printable(entry.kernel)} and its files into RAM...")
            staged = ram_copy.stage_entry(boot_view, entry, directory)
            plan = plan_for(
                entry,
                side.boot_dir,
                remove=remove,
                board_add=board_add,
                initrd_out=staged.initrd_out,
                unsafe=unsafe and not basic,
                locate=ram_copy.locator(staged),
            )
            refusal = cmdline_refusal(plan.cmdline or "")
            if refusal and not unsafe:
                return refusal
            for warning in plan.warnings:
                progress(f"Warning: {warning}")
                time.sleep(WARNING_SECONDS)
            progress(f"Loading {printable(entry.kernel)}...")
            kexec.load(plan)
        progress("Handing over to the new kernel...")
        done = prepare_handover(
            tpm,  # type: ignore[arg-type]
            SecretDir(),
            unsafe=unsafe,
            mount_points=[side.boot_dir],
        )
        zeroed = freed_memory_zeroed()
        done.append(handover_line(zeroed))
        bootlog.stage("kexec", unsafe=unsafe, steps=len(done), freed_zeroed=zeroed)
    except (KexecError, ConfigSyntaxError, BootPathError) as err:
        detail("boot", describe(err))
        return printable(str(err))
    except Pcr4NotExtended as err:  # its words say what happened and that nothing booted
        return plain("boot", err, err.plain())
    except TpmError as err:
        return plain(
            "boot", err, "PCR 4 could not be extended, so nothing was booted. " + err.plain()
        )
    except SecretDirError as err:
        detail("boot", describe(err))
        return f"the RAM secrets could not be wiped, so nothing was booted: {err}"
    return None
