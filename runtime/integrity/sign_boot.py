"""Update checksums and sign /boot (Heads' kexec-sign-config -u -r), and save a
default boot entry (kexec-save-default): new lists, the rollback counter one
higher, a detached signature by the owner, replaced as one change
(signed_state_commit.py), then checked as the next boot will check it.

What is signed is only what the owner was shown and what the firmware
itself writes: /boot is hashed again once it is writable (mounting it so can
replay a journal an attacker left), and any file, symlink or path that differs
from the report the owner saw stops the signing. Of the old signed state only
the files an owner signature still covers are carried over; a planted
kexec_default.N.txt or a symlink named kexec_*.txt is never adopted, and
anything else under ./kexec* is removed.

Order, so a power cut at any step leaves the old or the new signed state:
  1. hash /boot and compare it with what the owner was shown; remove what else
     lies under ./kexec* (no signature covers it, and the state is unchanged)
  2. build the new kexec*.txt files, sign their listing, check the signature
     is the owner's (no signed-state file written yet)
  3. stage the new files and COMMIT them (signed_state_commit.stage)
  4. increment the TPM counter (the old state stops verifying here)
  5. rename the new files into place (signed_state_commit.roll_forward)
  6. verify /boot exactly as at power-on
"""

from __future__ import annotations

import fnmatch
import os
import stat
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Protocol

from runtime.integrity.boot_lists import (
    DEFAULT_HASHES_FILE,
    HASHES_FILE,
    LINKS_FILE,
    PACKAGE_TRIGGER_GLOB,
    PENDING_DIR,
    PRIMARY_HANDLE_HASH_FILE,
    ROLLBACK_FILE,
    SIGNATURE_FILE,
    TREE_FILE,
    ListFormatError,
    format_hashes,
    format_links,
    format_rollback,
    format_sum_line,
    format_tree,
    is_state_file_name,
    parse_rollback,
    signed_listing,
)
from runtime.integrity.boot_paths import BootPathError, resolve, signed_links
from runtime.integrity.boot_scan import BootScan, Progress, ScanError, hash_files, scan_boot
from runtime.integrity.openpgp import verify_detached
from runtime.integrity.safe_read import UnsafeFile, read_regular
from runtime.integrity.signed_state_commit import (
    Disk,
    NewState,
    RealDisk,
    check_name,
    pending_counter_index,
    read_pending,
    remove_tree,
    roll_forward,
    settle_pending,
    stage,
    staged_files,
)
from runtime.integrity.verify_boot import (
    MAX_LIST_BYTES,
    BootReport,
    CounterGone,
    ReadCounter,
    shown_name,
    verify_boot,
)

#: Heads names the default file after the entry's 1-based line in its listing
DEFAULT_GLOB = "kexec_default.*.txt"


class SigningError(Exception):
    """Signing did not happen; the message is for the user. /boot's signed
    state is unchanged (stray names under ./kexec* may have been removed)."""


class Signer(Protocol):
    def sign(self, data: bytes) -> bytes:
        """An armored detached signature over data by the owner's key, or
        SigningError (wrong PIN, no card, cancelled)."""
        ...


class Counter(Protocol):
    """The TPM rollback counter, as signing needs it."""

    def read(self, index: int) -> int | None: ...  # None: defined, never incremented
    def exists(self, index: int) -> bool: ...
    def create(self) -> int: ...  # a new counter's NV index (the others retired)
    def increment(self, index: int) -> int: ...  # the new value
    def is_rollback(self, index: int) -> bool: ...  # one of ours, not HOTP's or another's
    def retire_others(self, index: int) -> None: ...  # no other rollback counter stays


@dataclass(frozen=True)
class DefaultChoice:
    """A default entry to save: its line N (1-based) in Heads' listing, the
    line's text, and the files it boots ('/vmlinuz-6.1', ...)."""

    number: int
    line: str
    files: tuple[str, ...]
    #: kexec_primhdl_hash.txt's content: which TPM storage key the default is
    #: saved with (primary_handle.py); None leaves the file out
    primary_hash: bytes | None = None


def _trusted_current(boot_dir: str, shown: BootReport) -> dict[str, bytes]:
    """The signed-state files the owner's signature covered when /boot was
    checked, read again now: one that changed since is a change the owner
    was not shown."""
    files: dict[str, bytes] = {}
    for name, data in shown.trusted_state.items():
        try:
            now = read_regular(os.path.join(boot_dir, name), MAX_LIST_BYTES)
        except (OSError, UnsafeFile) as err:
            # UnsafeFile's text is a sentence; any other OSError: the system's words
            why = str(err) if isinstance(err, UnsafeFile) else err.strerror or "unreadable"
            raise SigningError(
                f"/boot/{shown_name(name)} changed since it was checked: {why}"
            ) from err
        if now != data:
            raise SigningError(
                f"/boot/{shown_name(name)} changed since it was checked (after /boot was "
                "opened for writing): check /boot again before signing."
            )
        files[name] = now
    return files


def _counter_index(current: dict[str, bytes], counter: Counter) -> int:
    """The counter the owner-signed kexec_rollback.txt names, if the TPM still
    has it as a rollback counter (the others retired); else a new one. An
    unsigned kexec_rollback.txt names nothing: it could name any index (the
    HOTP counter, or an old counter an older signed copy still matches)."""
    index = None
    data = current.get(ROLLBACK_FILE)
    if data is not None:
        try:
            index = parse_rollback(data).nv_index
        except ListFormatError:
            index = None
    if (
        index is not None
        and counter.exists(index)
        and counter.is_rollback(index)
        and _usable(counter, index)
    ):
        counter.retire_others(index)
        return index
    # none yet, or the TPM was reset (gone) or holds a bad one: a new counter
    return counter.create()


def _usable(counter: Counter, index: int) -> bool:
    try:
        counter.read(index)
    except (OSError, ValueError, CounterGone):
        return False  # wrong attributes or unreadable: it cannot protect /boot
    return True


def _entry_digest(path: str, scan: BootScan, digests: dict[str, str]) -> tuple[str, str]:
    """('./path' as the entry names it, sha256 of the file it resolves to
    through the symlinks being signed); SigningError when no signed file."""
    try:
        rel = resolve(path, signed_links(scan.links))
    except BootPathError as err:
        raise SigningError(f"the default entry cannot boot {path}: {err}.") from err
    if rel not in digests:
        raise SigningError(f"the default entry's file {path} is not a regular file on /boot.")
    return "./" + path.lstrip("/"), digests[rel]


def _default_hashes(choice: DefaultChoice, scan: BootScan, digests: dict[str, str]) -> bytes:
    """kexec_default_hashes.txt: sha256sum of the entry's files, as `./path`
    (sha256sum follows a symlink there, and so does the digest)."""
    lines = [
        format_sum_line(d, name)
        for name, d in (_entry_digest(p, scan, digests) for p in choice.files)
    ]
    return "".join(lines).encode()


def _kept_default(
    files: dict[str, bytes], scan: BootScan, digests: dict[str, str]
) -> DefaultChoice | None:
    """The default already saved and signed, so re-signing after an update
    hashes its files anew (Heads leaves kexec_default_hashes.txt stale then);
    None when there is none or its line cannot be booted any more."""
    from runtime.boot_configs.entry import ConfigSyntaxError
    from runtime.boot_configs.heads_default import default_file_index
    from runtime.boot_configs.heads_line import parse_heads_line

    for name in sorted(n for n in files if fnmatch.fnmatchcase(n, DEFAULT_GLOB)):
        number = default_file_index(name)
        line = files[name].decode("utf-8", "replace").rstrip("\n")
        try:
            entry = parse_heads_line(line).entry
            paths = (entry.kernel, *entry.initrds, *(m.path for m in entry.modules))
            for path in paths:
                _entry_digest(path, scan, digests)
        except (ConfigSyntaxError, SigningError):
            return None
        if number is None:
            return None
        return DefaultChoice(number, line, paths)
    return None


def build_state(
    current: dict[str, bytes],
    scan: BootScan,
    digests: dict[str, str],
    index: int,
    value: int,
    signer: Signer,
    default: DefaultChoice | None,
    extra: Mapping[str, bytes] | None = None,
    drop: Collection[str] = (),
) -> NewState:
    """The whole new signed state, signature included; nothing is written.
    ``current`` holds only the signed-state files an owner signature covers;
    ``extra`` adds or replaces files, ``drop`` names files that go."""
    try:
        files = {
            name: data
            for name, data in current.items()
            if not fnmatch.fnmatchcase(name, PACKAGE_TRIGGER_GLOB) and name != LINKS_FILE
        }
        files[HASHES_FILE] = format_hashes(digests)
        files[TREE_FILE] = format_tree(scan.tree)
        files[ROLLBACK_FILE] = format_rollback(_counter_file_id(index), value)
        files.update(extra or {})  # new signed-state files (a root hash list)
        for name in drop:
            files.pop(name, None)
        if scan.links:
            files[LINKS_FILE] = format_links(scan.links)
        if default is None:
            # a signed default that no longer boots stays as it is: the start
            # then says the entries changed, as Heads does
            default = _kept_default(files, scan, digests)
        if default is not None:
            for name in [n for n in files if fnmatch.fnmatchcase(n, DEFAULT_GLOB)]:
                del files[name]
            files[f"kexec_default.{default.number}.txt"] = (default.line + "\n").encode()
            files[DEFAULT_HASHES_FILE] = _default_hashes(default, scan, digests)
            if default.primary_hash is not None:
                files[PRIMARY_HANDLE_HASH_FILE] = default.primary_hash
        for name in files:
            check_name(name)  # before the signature exists: staging cannot refuse it later
        signature = signer.sign(signed_listing(files))
    except (ListFormatError, ValueError) as err:
        raise SigningError(f"/boot holds a file the lists cannot name: {err}") from err
    # every other signed-state name on the disk goes (the new signature covers none)
    on_disk = [
        r[2:] for r, mode in scan.state_area.items() if stat.S_ISREG(mode) and "/" not in r[2:]
    ]
    remove = [
        n for n in on_disk if is_state_file_name(n) and n not in files and n != SIGNATURE_FILE
    ]
    return NewState({**files, SIGNATURE_FILE: signature}, remove, value)


def _unseen_changes(shown: BootReport, scan: BootScan, digests: dict[str, str]) -> list[str]:
    """Paths that differ from what the owner was shown, in any way."""
    changed = set(shown.seen_tree) ^ set(scan.tree)
    changed |= {
        rel
        for rel in set(shown.seen_digests) | set(digests)
        if shown.seen_digests.get(rel) != digests.get(rel)
    }
    changed |= {
        rel
        for rel in set(shown.seen_links) | set(scan.links)
        if shown.seen_links.get(rel) != scan.links.get(rel)
    }
    return sorted(changed, key=os.fsencode)


def remove_unexpected(boot_dir: str, scan: BootScan) -> list[str]:
    """Remove what lies under ./kexec* and is no signed-state file (shown to
    the owner as such): no symlink is followed. The names removed."""
    removed = []
    for rel, mode in sorted(scan.state_area.items()):
        name = rel[2:]
        if "/" in name or name == PENDING_DIR:
            continue  # inside a directory removed whole / settled at the start
        if stat.S_ISREG(mode) and is_state_file_name(name):
            continue
        path = os.path.join(boot_dir, name)
        try:
            mode = os.lstat(path).st_mode
            if stat.S_ISREG(mode) and is_state_file_name(name):
                continue  # a state file now (it changed since the scan): the check names it
            remove_tree(path)  # a link or FIFO as itself; a directory whole, links unfollowed
        except FileNotFoundError:
            continue
        except OSError:
            continue  # still named by the next check; signing again removes it
        removed.append(name)
    if removed:
        RealDisk().fsync(boot_dir)
    return removed


def _counter_file_id(index: int) -> str:
    """Heads names counter 0x01abcdef 'counter-1abcdef': '1' and 3 random bytes."""
    return f"{index:x}"


def sign_boot(
    boot_dir: str,
    signer: Signer,
    counter: Counter,
    owner_key_file: str,
    *,
    default: DefaultChoice | None = None,
    progress: Progress | None = None,
    disk: Disk | None = None,
    work_dir: str | None = None,
    step: Callable[[str], None] | None = None,
    bump: bool = True,
    shown: BootReport | None = None,
    extra: Mapping[str, bytes] | None = None,
    drop: Collection[str] = (),
) -> BootReport:
    """Re-hash, bump the counter, sign, replace; the verification of the
    result. SigningError when nothing was changed; /boot must be writable.

    ``shown`` is the check the owner saw before choosing to sign: nothing
    that differs from it is signed. Without it (the host command, tests) /boot
    is checked here first, and signed as it is then.

    bump=False signs at the counter's present value (a host, which cannot
    reach the machine's TPM): /boot stays bound to that value, and an older
    /boot signed at the same value is not refused until the next bump."""
    if read_pending(boot_dir) is not None:
        raise SigningError("an interrupted signing is still pending; restart first.")
    note = step or (lambda _: None)
    try:
        if shown is None:
            shown = verify_boot(boot_dir, owner_key_file, None, work_dir=work_dir)
        current = _trusted_current(boot_dir, shown)
        index = _counter_index(current, counter)
        current_value = counter.read(index)
        if current_value is None:
            # a new counter starts wherever the TPM says on its first increment
            # (the highest value any counter had): learn it before signing for +1
            current_value = counter.increment(index)
        value = current_value + 1 if bump else current_value
        note("hashing")
        scan = scan_boot(boot_dir)
        digests = hash_files(boot_dir, scan.files, progress)
    except ScanError as err:
        raise SigningError(f"/boot cannot be read completely: {err}") from err
    except UnicodeError as err:
        raise SigningError(
            "/boot cannot be read completely: a name or a list on it is not valid text."
        ) from err
    except ValueError as err:
        # a list's format error is written for the user; any other is not
        why = str(err) if isinstance(err, ListFormatError) else "what it holds is damaged"
        raise SigningError(f"/boot cannot be read completely: {why}") from err
    unseen = _unseen_changes(shown, scan, digests)
    if unseen:
        raise SigningError(
            "/boot changed after it was checked, once it was opened for writing (a file "
            "system journal replayed?): "
            + ", ".join(shown_name(p) for p in unseen[:8])
            + ". Nothing was signed: check /boot again and look at these files first."
        )
    # nothing signs these names, and a cut after the new state landed must not leave them
    remove_unexpected(boot_dir, scan)
    state = build_state(current, scan, digests, index, value, signer, default, extra, drop)
    note("checking the signature")
    listing = signed_listing({n: d for n, d in state.files.items() if n != SIGNATURE_FILE})
    check = verify_detached(state.files[SIGNATURE_FILE], listing, owner_key_file, work_dir=work_dir)
    if not check.ok:
        raise SigningError(f"the new signature is not the owner's: {check.reason}")
    note("writing")
    stage(boot_dir, state, disk)
    note("incrementing the rollback counter")
    moved = counter.increment(index) if bump else value
    if moved != value:
        raise SigningError(
            f"the rollback counter moved to {moved}, not {value}: another "
            "signing ran at the same time? Sign again."
        )
    pending = read_pending(boot_dir)
    if pending is None:
        raise SigningError("the staged state vanished before it could be put in place.")
    roll_forward(boot_dir, pending, disk)
    note("verifying")
    return verify_boot(boot_dir, owner_key_file, _reader(counter), work_dir=work_dir)


def _reader(counter: Counter) -> ReadCounter:
    def read(index: int) -> int:
        value = counter.read(index)
        if value is None:
            raise ValueError("the counter was never incremented")
        return value

    return read


def settle_interrupted(
    boot_dir: str,
    counter: Counter,
    owner_key_file: str,
    *,
    work_dir: str | None = None,
    disk: Disk | None = None,
) -> str:
    """At start, before any check: finish or drop a signing a power cut
    interrupted; what was done, in plain words ("" when nothing was pending).

    A staging that committed but whose counter never moved holds the owner's
    signature for the counter's next value. Dropped, it would stay valid: the
    next signing is at that same value, and a copy of the dropped state put
    back later would verify. So when the staged signature is the owner's over
    the staged files at exactly the next value, the counter is moved and the
    signing finished (the owner asked for it); anything else is dropped."""
    pending = read_pending(boot_dir)
    index = pending_counter_index(boot_dir)
    now: int | None = None
    try:
        if index is not None and counter.exists(index) and counter.is_rollback(index):
            now = counter.read(index)
    except (OSError, ValueError, CounterGone):
        now = None  # no counter to finish with: the change is dropped
    if (
        pending is not None
        and pending.complete
        and index is not None
        and now is not None
        and now + 1 == pending.counter
        and _owner_signed_staging(boot_dir, pending.counter, owner_key_file, work_dir)
    ):
        now = counter.increment(index)
    return settle_pending(boot_dir, now, disk)


def _owner_signed_staging(
    boot_dir: str, value: int, owner_key_file: str, work_dir: str | None
) -> bool:
    files = staged_files(boot_dir)
    signature = files.pop(SIGNATURE_FILE, None)
    rollback = files.get(ROLLBACK_FILE)
    if signature is None or rollback is None:
        return False
    try:
        if not parse_rollback(rollback).matches(value):
            return False
        listing = signed_listing(files)
    except ListFormatError:
        return False
    return verify_detached(signature, listing, owner_key_file, work_dir=work_dir).ok
