"""Is /boot exactly what the owner signed? The checks Heads makes before a
boot (heads-facts §3, §2.6), each failure named in plain words:

  1. kexec.sig is the owner's signature over `sha256sum kexec*.txt`
     (signer fingerprint pinned, not merely "valid");
  2. kexec_rollback.txt matches the TPM counter now, so an older signed /boot
     copied back is refused;
  3. every file in kexec_hashes.txt has its hash, and kexec_tree.txt lists
     exactly the paths there are (nothing added, nothing removed).

Everything is checked even after a failure, so the report lists all of it.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from runtime.integrity.boot_lists import (
    HASHES_FILE,
    PACKAGE_TRIGGER_GLOB,
    ROLLBACK_FILE,
    SIGNATURE_FILE,
    TREE_FILE,
    ListFormatError,
    Rollback,
    parse_rollback,
    parse_sums,
    parse_tree,
    signed_listing,
    signed_names,
)
from runtime.integrity.boot_scan import Progress, ScanError, hash_files, scan_boot
from runtime.integrity.openpgp import (
    Failure,
    OwnerGpg,
    SignatureResult,
    check_detached,
    owner_gpg,
)

#: a kexec*.txt larger than this is not Heads' (a hash list of 100k files is ~10 MB)
MAX_LIST_BYTES = 32 * 1024 * 1024
#: how far past the TPM's value we look to say which value /boot was signed at
SIGNED_VALUE_SEARCH = 64


class Problem(enum.StrEnum):
    SIGNATURE_MISSING = "signature missing"
    SIGNATURE_BAD = "signature does not match the signed files"
    SIGNATURE_NOT_OWNER = "signed by a key that is not the owner's"
    SIGNATURE_UNCHECKED = "signature could not be checked"
    LIST_MISSING = "hash list missing"
    LIST_DAMAGED = "hash list damaged"
    FILES_MODIFIED = "files modified"
    FILES_ADDED = "files added"
    FILES_REMOVED = "files removed"
    UNREADABLE = "/boot could not be read"
    COUNTER_FILE_MISSING = "rollback counter file missing"
    COUNTER_MISSING = "TPM rollback counter missing"
    COUNTER_UNREADABLE = "TPM rollback counter unreadable"
    ROLLED_BACK = "an older signed /boot (rollback)"


class CounterGone(Exception):
    """The TPM has no NV index for the counter /boot names."""


#: reads the TPM counter at an NV index; CounterGone, OSError or ValueError
ReadCounter = Callable[[int], int]


@dataclass(frozen=True)
class Finding:
    problem: Problem
    detail: str  # plain words: what exactly, and what it means

    def __str__(self) -> str:
        return f"{self.problem}: {self.detail}"


@dataclass
class BootReport:
    findings: list[Finding] = field(default_factory=list)
    modified: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    signer: str = ""  # the owner's fingerprint when the signature is good
    counter: int | None = None  # the TPM counter's value when read
    signed_counter: int | None = None  # the value /boot was signed at, when found
    #: OS package hooks' notes of what an update changed (present: unsigned)
    package_triggers: dict[str, str] = field(default_factory=dict)
    #: './rel' -> sha256 of every regular file checked (for the default-entry check)
    digests: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.findings

    def add(self, problem: Problem, detail: str) -> None:
        self.findings.append(Finding(problem, detail))


def _read_signed_state(boot_dir: str, report: BootReport) -> dict[str, bytes] | None:
    try:
        names = os.listdir(boot_dir)
    except OSError as err:
        report.add(Problem.UNREADABLE, f"{boot_dir} cannot be listed ({err.strerror}).")
        return None
    files: dict[str, bytes] = {}
    for name in [*signed_names(names), SIGNATURE_FILE]:
        path = os.path.join(boot_dir, name)
        if not os.path.isfile(path):
            continue
        try:
            with open(path, "rb") as f:
                data = f.read(MAX_LIST_BYTES + 1)
        except OSError as err:
            report.add(Problem.UNREADABLE, f"/boot/{name} cannot be read ({err.strerror}).")
            continue
        if len(data) > MAX_LIST_BYTES:
            report.add(Problem.LIST_DAMAGED, f"/boot/{name} is far too large to be Heads'.")
            continue
        files[name] = data
    return files


def _check_signature(
    files: dict[str, bytes], owner: OwnerGpg | SignatureResult, report: BootReport
) -> None:
    signature = files.pop(SIGNATURE_FILE, None)
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
    result = check_detached(owner, signature, signed_listing(files))
    if result.failure is Failure.BAD_SIGNATURE:
        # signatures made by old Heads cover `sha256sum /boot/kexec*.txt`
        old = check_detached(owner, signature, signed_listing(files, "/boot/"))
        result = old if old.ok else result
    if result.ok:
        report.signer = result.signer
        return
    problem = {
        Failure.BAD_SIGNATURE: Problem.SIGNATURE_BAD,
        Failure.NOT_OWNER: Problem.SIGNATURE_NOT_OWNER,
        Failure.KEY_INVALID: Problem.SIGNATURE_NOT_OWNER,
    }.get(result.failure or Failure.GPG_FAILED, Problem.SIGNATURE_UNCHECKED)
    detail = {
        Problem.SIGNATURE_BAD: "the kexec*.txt files are not the ones the owner signed "
        "(changed, added or removed since).",
    }.get(problem, result.reason)
    report.add(problem, detail)


def _check_rollback(files: dict[str, bytes], read_counter: ReadCounter, report: BootReport) -> None:
    data = files.get(ROLLBACK_FILE)
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
    try:
        value = read_counter(rollback.nv_index)
    except CounterGone:
        report.add(
            Problem.COUNTER_MISSING,
            f"the TPM has no counter 0x{rollback.nv_index:08x}, which /boot was signed "
            "with: the TPM was reset or replaced since.",
        )
        return
    except (OSError, ValueError) as err:
        report.add(
            Problem.COUNTER_UNREADABLE, f"counter 0x{rollback.nv_index:08x} cannot be read: {err}."
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
    except ListFormatError as err:
        report.add(Problem.LIST_DAMAGED, str(err))
        return
    try:
        scan = scan_boot(boot_dir)
    except ScanError as err:
        report.add(Problem.UNREADABLE, str(err))
        return
    present = set(scan.files)
    if listed is not None:
        report.removed = sorted(set(listed) - present, key=os.fsencode)
        to_hash = {rel: size for rel, size in scan.files.items() if rel in listed}
        try:
            report.digests = hash_files(boot_dir, to_hash, progress)
        except ScanError as err:
            report.add(Problem.UNREADABLE, str(err))
            return
        report.modified = sorted(
            (rel for rel, d in report.digests.items() if listed[rel] != d), key=os.fsencode
        )
        unlisted = present - set(listed)
    else:
        unlisted = set()
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
                + ", ".join(p[2:] for p in paths[:8])
                + (", ..." if len(paths) > 8 else ""),
            )


def _package_triggers(boot_dir: str, files: dict[str, bytes]) -> dict[str, str]:
    import fnmatch

    return {
        name: data.decode("utf-8", "replace")
        for name, data in files.items()
        if fnmatch.fnmatchcase(name, PACKAGE_TRIGGER_GLOB)
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
    read_counter None skips the rollback check (a host cannot read the TPM)."""
    report = BootReport()
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
    return report
