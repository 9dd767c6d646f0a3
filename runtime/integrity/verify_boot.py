"""Is /boot exactly what the owner signed? The checks Heads makes before a
boot (../shared/reference/heads-facts.md §3, §2.6), each failure named in plain words:

  1. kexec.sig is the owner's signature over `sha256sum kexec*.txt`
     (signer fingerprint pinned, not merely "valid");
  2. kexec_rollback.txt matches the TPM counter now, so an older signed /boot
     copied back is refused;
  3. every file in kexec_hashes.txt has its hash, and kexec_tree.txt lists
     exactly the paths there are (nothing added, nothing removed);
  4. beyond Heads: every symlink points where kexec_symlinks.txt says, and
     nothing lies in the ./kexec* area but the signed-state files.

Everything is checked even after a failure, so the report lists all of it,
and no exception escapes: /boot is hostile input, and whatever it holds ends
as a finding in plain words. The report (runtime.integrity.boot_report) also
keeps what was seen (every file's hash, the tree, the symlinks), so a signing
can refuse to sign anything the owner was not shown.
"""

from __future__ import annotations

import fnmatch
import os
import stat
from collections.abc import Callable

from runtime.error_detail import describe, detail
from runtime.integrity.boot_lists import (
    HASHES_FILE,
    LINKS_FILE,
    PACKAGE_TRIGGER_GLOB,
    PENDING_DIR,
    ROLLBACK_FILE,
    SIGNATURE_FILE,
    TREE_FILE,
    ListFormatError,
    Rollback,
    is_state_file_name,
    parse_links,
    parse_rollback,
    parse_sums,
    parse_tree,
    signed_listing,
    signed_names,
)
from runtime.integrity.boot_report import BootReport as BootReport
from runtime.integrity.boot_report import Problem as Problem
from runtime.integrity.boot_report import printable as printable
from runtime.integrity.boot_report import shown_name as shown_name
from runtime.integrity.boot_scan import BootScan, Progress, ScanError, hash_files, scan_boot
from runtime.integrity.openpgp import (
    Failure,
    OwnerGpg,
    SignatureResult,
    check_detached,
    owner_gpg,
)
from runtime.integrity.safe_read import UnsafeFile, kind_of, read_regular
from runtime.tpm import handles

#: a kexec*.txt larger than this is not Heads' (a hash list of 100k files is ~10 MB)
MAX_LIST_BYTES = 32 * 1024 * 1024
#: all signed-state files together: a few lists, a default, notes
MAX_STATE_BYTES = 48 * 1024 * 1024
MAX_STATE_FILES = 128
NOT_ROLLBACK = handles.NOT_ROLLBACK
#: how far past the TPM's value we look to say which value /boot was signed at
SIGNED_VALUE_SEARCH = 64


class CounterGone(Exception):
    """The TPM has no NV index for the counter /boot names."""


#: reads the TPM counter at an NV index; CounterGone, OSError or ValueError
ReadCounter = Callable[[int], int]


def _reason(err: Exception) -> str:
    """Why a read failed, for the screen: the system's words for an OSError
    (never "[Errno N]"), a counter's own plain text (tpm_counter.CounterFailure)."""
    if isinstance(err, OSError) and err.strerror:
        return f"{err.strerror}."
    text = str(err).rstrip(".")
    return f"{text}." if text else "it could not be read."


def _unexpected(err: Exception) -> str:
    """An error nothing expected, from reading hostile /boot: no exception text."""
    if isinstance(err, OSError) and err.strerror:
        return f"{err.strerror}."
    return "what it holds is damaged, or made to break the check."


def _read_signed_state(boot_dir: str, report: BootReport) -> dict[str, bytes] | None:
    try:
        names = os.listdir(boot_dir)
    except OSError as err:
        report.add(Problem.UNREADABLE, f"{boot_dir} cannot be listed ({err.strerror}).")
        return None
    files: dict[str, bytes] = {}
    wanted = [*signed_names(names), SIGNATURE_FILE]
    if len(wanted) > MAX_STATE_FILES:
        report.add(
            Problem.LIST_DAMAGED,
            f"/boot holds {len(wanted)} kexec*.txt files: no signed state has that many.",
        )
        return None
    total = 0
    for name in wanted:
        if total > MAX_STATE_BYTES:
            report.add(Problem.LIST_DAMAGED, "/boot's kexec*.txt files are far too large together.")
            return None
        try:
            files[name] = read_regular(
                os.path.join(boot_dir, name), MAX_LIST_BYTES, shown=f"/boot/{shown_name(name)}"
            )
            total += len(files[name])
        except FileNotFoundError:
            continue
        except UnsafeFile as err:
            # not a regular file, or huge: never read; the state-area check names it
            report.odd_state[name] = str(err)
        except OSError as err:
            report.add(
                Problem.UNREADABLE,
                f"/boot/{shown_name(name)} cannot be read ({err.strerror or 'unknown error'}).",
            )
    return files


def _check_signature(
    files: dict[str, bytes], owner: OwnerGpg | SignatureResult, report: BootReport
) -> None:
    signature = files.pop(SIGNATURE_FILE, None)
    if signature is None and SIGNATURE_FILE in report.odd_state:
        report.add(Problem.SIGNATURE_MISSING, f"{report.odd_state[SIGNATURE_FILE]}.")
        return
    if signature is None:
        report.add(
            Problem.SIGNATURE_MISSING,
            "/boot/kexec.sig is not there: this /boot was never signed, or the "
            "signature was removed.",
        )
        return
    if isinstance(owner, SignatureResult):
        report.add(Problem.SIGNATURE_UNCHECKED, owner.reason)
        return
    try:
        result = _owner_signed(owner, signature, files)
        notes = _package_notes(files)
        covered = files
        if not result.ok and notes:
            # an OS update's unsigned notes break Heads' listing; is the rest signed?
            covered = {n: d for n, d in files.items() if n not in notes}
            without = _owner_signed(owner, signature, covered)
            if without.ok:
                result = without
                report.add(
                    Problem.UPDATE_NOTES,
                    "the OS left notes of an update that no signature covers: "
                    + ", ".join(shown_name(n) for n in sorted(notes)),
                )
    except ListFormatError as err:
        report.add(Problem.LIST_DAMAGED, f"a signed-state file has a name Heads cannot list: {err}")
        return
    if result.ok:
        report.signer = result.signer
        report.trusted_state = dict(covered)
        return
    problem = {
        Failure.BAD_SIGNATURE: Problem.SIGNATURE_BAD,
        Failure.NOT_OWNER: Problem.SIGNATURE_NOT_OWNER,
        Failure.KEY_INVALID: Problem.SIGNATURE_NOT_OWNER,
    }.get(result.failure or Failure.GPG_FAILED, Problem.SIGNATURE_UNCHECKED)
    detail = {
        Problem.SIGNATURE_BAD: "the kexec*.txt files are not the ones the owner signed "
        "(changed, added or removed since): none of them is trusted, and a new "
        "signing keeps none of them (choose the default entry again)",
    }.get(problem, result.reason)
    report.add(problem, detail)


def _owner_signed(owner: OwnerGpg, signature: bytes, files: dict[str, bytes]) -> SignatureResult:
    result = check_detached(owner, signature, signed_listing(files))
    if result.failure is Failure.BAD_SIGNATURE:
        # signatures made by old Heads cover `sha256sum /boot/kexec*.txt`
        old = check_detached(owner, signature, signed_listing(files, "/boot/"))
        result = old if old.ok else result
    return result


def _package_notes(files: dict[str, bytes]) -> set[str]:
    return {n for n in files if fnmatch.fnmatchcase(n, PACKAGE_TRIGGER_GLOB)}


def _check_rollback(files: dict[str, bytes], read_counter: ReadCounter, report: BootReport) -> None:
    data = files.get(ROLLBACK_FILE)
    if data is None and ROLLBACK_FILE in report.odd_state:
        report.add(
            Problem.COUNTER_FILE_MISSING,
            f"{report.odd_state[ROLLBACK_FILE]}: nothing ties this /boot to the TPM's "
            "rollback counter.",
        )
        return
    if data is None:
        report.add(
            Problem.COUNTER_FILE_MISSING,
            "/boot/kexec_rollback.txt is not there, so nothing ties this /boot to "
            "the TPM's rollback counter: an older signed /boot would pass.",
        )
        return
    try:
        rollback = parse_rollback(data)
    except ListFormatError as err:
        report.add(Problem.LIST_DAMAGED, str(err))
        return
    # the NV index is for the log: the screen names the counter by its role
    where = f"kexec_rollback.txt names NV index 0x{rollback.nv_index:08x}"
    if rollback.nv_index in NOT_ROLLBACK:
        detail("verify-boot", f"{where}, reserved for the TOTP/HOTP state")
        report.add(
            Problem.LIST_DAMAGED,
            "kexec_rollback.txt names a TPM counter that is not a rollback counter (the "
            "TOTP/HOTP state lives there).",
        )
        return
    try:
        value = read_counter(rollback.nv_index)
    except CounterGone:
        detail("verify-boot", f"{where}, which the TPM does not hold")
        report.add(
            Problem.COUNTER_MISSING,
            "the TPM no longer holds the rollback counter /boot was signed with: the TPM "
            "was reset or replaced since.",
        )
        return
    except (OSError, ValueError) as err:
        detail("verify-boot", f"{where}: {describe(err)}")
        report.add(
            Problem.COUNTER_UNREADABLE,
            f"the TPM rollback counter /boot was signed with cannot be read: {_reason(err)}",
        )
        return
    report.counter = value
    if rollback.matches(value):
        report.signed_counter = value
        return
    report.signed_counter = _signed_value(rollback, value)
    when = (
        f"when the counter was {report.signed_counter}"
        if report.signed_counter is not None
        else "at another counter value"
    )
    report.add(
        Problem.ROLLED_BACK,
        f"/boot was signed {when}; the TPM counter is now {value}. This is an older "
        "signed /boot put back (or the counter moved without re-signing).",
    )


def _signed_value(rollback: Rollback, now: int) -> int | None:
    for value in range(max(0, now - 4096), now + SIGNED_VALUE_SEARCH):
        if rollback.matches(value):
            return value
    return None


def _check_files(
    boot_dir: str, files: dict[str, bytes], report: BootReport, progress: Progress | None
) -> None:
    hashes, tree = files.get(HASHES_FILE), files.get(TREE_FILE)
    for name, data in ((HASHES_FILE, hashes), (TREE_FILE, tree)):
        if data is None:
            report.add(Problem.LIST_MISSING, f"/boot/{name} is not there.")
    try:
        listed = (
            {line.name: line.digest for line in parse_sums(hashes, HASHES_FILE)}
            if hashes is not None
            else None
        )
        listed_tree = set(parse_tree(tree, TREE_FILE)) if tree is not None else None
        links_data = files.get(LINKS_FILE)
        report.signed_links = parse_links(links_data) if links_data is not None else None
    except ListFormatError as err:
        report.add(Problem.LIST_DAMAGED, str(err))
        return
    try:
        scan = scan_boot(boot_dir)
        report.seen_tree, report.seen_links = scan.tree, scan.links
        report.seen_digests = hash_files(boot_dir, scan.files, progress)
    except ScanError as err:
        report.add(Problem.UNREADABLE, str(err))
        return
    _check_state_area(scan, report)
    present = set(scan.files)
    unlisted: set[str] = set()
    if listed is not None:
        report.removed = sorted(set(listed) - present, key=os.fsencode)
        report.digests = {rel: d for rel, d in report.seen_digests.items() if rel in listed}
        report.modified = sorted(
            (rel for rel, d in report.digests.items() if listed[rel] != d), key=os.fsencode
        )
        unlisted = present - set(listed)
    if listed_tree is not None:
        report.removed = sorted(
            set(report.removed) | (listed_tree - set(scan.tree)), key=os.fsencode
        )
        unlisted |= set(scan.tree) - listed_tree
    report.added = sorted(unlisted, key=os.fsencode)
    for problem, paths, verb in (
        (Problem.FILES_MODIFIED, report.modified, "changed"),
        (Problem.FILES_ADDED, report.added, "added"),
        (Problem.FILES_REMOVED, report.removed, "removed"),
    ):
        if paths:
            report.add(
                problem,
                f"{len(paths)} {verb} since the owner signed: "
                + ", ".join(shown_name(p) for p in paths[:8])
                + (", ..." if len(paths) > 8 else ""),
            )
    _check_links(scan, report)


def _check_links(scan: BootScan, report: BootReport) -> None:
    """Where each symlink points must be where the owner's signature says.
    Without kexec_symlinks.txt (a /boot signed by Heads) no target is signed:
    the boot then follows no symlink at all (boot_paths)."""
    signed = report.signed_links
    if signed is None:
        if scan.links:
            # Heads signs a symlink's name, never its target: show every target
            report.add(
                Problem.LINKS_UNSIGNED,
                f"{len(scan.links)} symlink(s) whose target no signature records (signed by "
                "Heads?); the verified boot follows none of them. Check them, then sign "
                "again: "
                + ", ".join(
                    f"{shown_name(r)} -> {shown_name(t)}" for r, t in sorted(scan.links.items())
                ),
            )
        return
    added = set(report.added)
    # retargeted, or a symlink where the signature has something else (a directory)
    changed = sorted(
        (
            rel
            for rel, target in scan.links.items()
            if signed.get(rel) != target and rel not in added
        ),
        key=os.fsencode,
    )
    # a signed symlink now something else (a file, a directory) is a change too
    changed += [rel for rel in signed if rel not in scan.links and rel in set(scan.tree)]
    if changed:
        report.modified = sorted(set(report.modified) | set(changed), key=os.fsencode)
        report.add(
            Problem.LINKS_CHANGED,
            f"{len(changed)} symlink(s) no longer point where the owner signed: "
            + ", ".join(
                f"{shown_name(r)} -> {shown_name(scan.links.get(r, '(not a link)'))}"
                for r in changed[:8]
            ),
        )


def _check_state_area(scan: BootScan, report: BootReport) -> None:
    """./kexec* holds the signed-state files at /boot's top and nothing else
    (a signing's staging directory is settled before any check)."""
    odd = []
    for rel, mode in scan.state_area.items():
        top = "/" not in rel[2:]
        if top and stat.S_ISREG(mode) and is_state_file_name(rel[2:]):
            continue
        if top and rel[2:] == PENDING_DIR:
            odd.append(f"{shown_name(rel)} (an unfinished signing's directory)")
            continue
        what = "" if stat.S_ISREG(mode) else f" ({kind_of(mode)})"
        odd.append(shown_name(rel) + what)
    odd.sort()
    report.unexpected = odd
    if odd:
        report.add(
            Problem.UNEXPECTED,
            f"{len(odd)} name(s) under /boot/kexec* that no signature covers and nothing "
            "reads: "
            + ", ".join(odd[:8])
            + (", ..." if len(odd) > 8 else "")
            + ". A new signing removes them.",
        )


def _package_triggers(boot_dir: str, files: dict[str, bytes]) -> dict[str, str]:
    return {
        name: data.decode("utf-8", "replace")
        for name, data in files.items()
        if name in _package_notes(files)
    }


def verify_boot(
    boot_dir: str,
    owner_key_file: str,
    read_counter: ReadCounter | None,
    *,
    pinned_fingerprints: list[str] | None = None,
    work_dir: str | None = None,
    progress: Progress | None = None,
    gpg_binary: str = "gpg",
) -> BootReport:
    """The whole check; report.ok only when /boot is exactly what was signed.
    read_counter None skips the rollback check, the counter file included (a
    host cannot read the TPM; the firmware with CONFIG_IGNORE_ROLLBACK=y)."""
    report = BootReport()
    try:
        files = _read_signed_state(boot_dir, report)
        if files is None:
            return report
        report.package_triggers = _package_triggers(boot_dir, files)
        with owner_gpg(
            owner_key_file, pinned_fingerprints, work_dir=work_dir, gpg_binary=gpg_binary
        ) as owner:
            _check_signature(files, owner, report)
        if read_counter is not None:
            _check_rollback(files, read_counter, report)
        _check_files(boot_dir, files, report, progress)
    except (OSError, ValueError, UnicodeError, RecursionError) as err:
        # whatever /boot holds, the answer is a finding, never a crash
        detail("verify-boot", describe(err))
        report.add(Problem.UNREADABLE, "/boot could not be checked completely: " + _unexpected(err))
    except MemoryError:
        report.add(Problem.UNREADABLE, "/boot holds more than this machine's RAM can check.")
    return report
