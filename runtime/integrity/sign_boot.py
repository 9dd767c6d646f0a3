"""Update checksums and sign /boot (Heads' kexec-sign-config -u -r), and save a
default boot entry (kexec-save-default): new lists, the rollback counter one
higher, a detached signature by the owner, replaced as one change
(boot_state.py), then checked as the next boot will check it.

Order, so a power cut at any step leaves the old or the new signed state:
  1. hash /boot, build the new kexec*.txt files, sign their listing, check the
     signature is the owner's (nothing written yet)
  2. stage the new files and COMMIT them (boot_state.stage)
  3. increment the TPM counter (the old state stops verifying here)
  4. rename the new files into place (boot_state.roll_forward)
  5. verify /boot exactly as at power-on
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from runtime.integrity.boot_lists import (
    DEFAULT_HASHES_FILE,
    HASHES_FILE,
    PACKAGE_TRIGGER_GLOB,
    PRIMARY_HANDLE_HASH_FILE,
    ROLLBACK_FILE,
    SIGNATURE_FILE,
    TREE_FILE,
    ListFormatError,
    format_hashes,
    format_rollback,
    format_sum_line,
    format_tree,
    parse_rollback,
    signed_listing,
    signed_names,
)
from runtime.integrity.boot_scan import Progress, hash_files, scan_boot
from runtime.integrity.boot_state import Disk, NewState, read_pending, roll_forward, stage
from runtime.integrity.openpgp import verify_detached
from runtime.integrity.verify_boot import BootReport, CounterGone, ReadCounter, verify_boot

#: Heads names the default file after the entry's 1-based line in its listing
DEFAULT_GLOB = "kexec_default.*.txt"


class SigningError(Exception):
    """Signing did not happen; the message is for the user, /boot is unchanged."""


class Signer(Protocol):
    def sign(self, data: bytes) -> bytes:
        """An armored detached signature over data by the owner's key, or
        SigningError (wrong PIN, no card, cancelled)."""
        ...


class Counter(Protocol):
    """The TPM rollback counter, as signing needs it."""

    def read(self, index: int) -> int | None: ...  # None: defined, never incremented
    def exists(self, index: int) -> bool: ...
    def create(self) -> int: ...  # a new counter's NV index
    def increment(self, index: int) -> int: ...  # the new value


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


def _read_current(boot_dir: str) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for name in signed_names(os.listdir(boot_dir)):
        path = os.path.join(boot_dir, name)
        if os.path.isfile(path):
            with open(path, "rb") as f:
                files[name] = f.read()
    return files


def _counter_index(current: dict[str, bytes], counter: Counter) -> int:
    """The counter /boot already names, if the TPM still has it; else a new one."""
    data = current.get(ROLLBACK_FILE)
    if data is not None:
        try:
            index = parse_rollback(data).nv_index
        except ListFormatError:
            index = None
        if index is not None and counter.exists(index) and _usable(counter, index):
            return index
    # none yet, or the TPM was reset (gone) or holds a bad one: a new counter
    return counter.create()


def _usable(counter: Counter, index: int) -> bool:
    try:
        counter.read(index)
    except (OSError, ValueError, CounterGone):
        return False  # wrong attributes or unreadable: it cannot protect /boot
    return True


def _default_hashes(boot_dir: str, choice: DefaultChoice) -> bytes:
    """kexec_default_hashes.txt: sha256sum of the entry's files, as `./path`."""
    lines = []
    for path in choice.files:
        rel = "./" + path.lstrip("/")
        try:
            with open(os.path.join(boot_dir, rel[2:]), "rb") as f:
                digest = hashlib.file_digest(f, "sha256").hexdigest()
        except OSError as err:
            raise SigningError(
                f"the default entry's file {path} cannot be read ({err.strerror})."
            ) from err
        lines.append(format_sum_line(digest, rel))
    return "".join(lines).encode()


def _kept_default(boot_dir: str, files: dict[str, bytes]) -> DefaultChoice | None:
    """The default already saved, so re-signing after an update hashes its
    files anew (Heads leaves kexec_default_hashes.txt stale then); None when
    there is none or its line cannot be read."""
    from runtime.boot_configs.entry import ConfigSyntaxError
    from runtime.boot_configs.heads_default import default_file_index
    from runtime.boot_configs.heads_line import parse_heads_line

    for name in sorted(n for n in files if fnmatch.fnmatchcase(n, DEFAULT_GLOB)):
        number = default_file_index(name)
        line = files[name].decode("utf-8", "replace").rstrip("\n")
        try:
            entry = parse_heads_line(line).entry
        except ConfigSyntaxError:
            return None
        paths = (entry.kernel, *entry.initrds, *(m.path for m in entry.modules))
        if number is None or not all(os.path.isfile(os.path.join(boot_dir, p.lstrip("/")))
                                     for p in paths):
            return None
        return DefaultChoice(number, line, paths)
    return None


def build_state(
    boot_dir: str,
    current: dict[str, bytes],
    index: int,
    value: int,
    signer: Signer,
    default: DefaultChoice | None,
    progress: Progress | None = None,
) -> NewState:
    """The whole new signed state, signature included; nothing is written."""
    scan = scan_boot(boot_dir)
    try:
        files = {
            name: data
            for name, data in current.items()
            if not fnmatch.fnmatchcase(name, PACKAGE_TRIGGER_GLOB)
        }
        files[HASHES_FILE] = format_hashes(hash_files(boot_dir, scan.files, progress))
        files[TREE_FILE] = format_tree(scan.tree)
        files[ROLLBACK_FILE] = format_rollback(_counter_file_id(index), value)
        if default is None:
            default = _kept_default(boot_dir, files)
        if default is not None:
            for name in [n for n in files if fnmatch.fnmatchcase(n, DEFAULT_GLOB)]:
                del files[name]
            files[f"kexec_default.{default.number}.txt"] = (default.line + "\n").encode()
            files[DEFAULT_HASHES_FILE] = _default_hashes(boot_dir, default)
            if default.primary_hash is not None:
                files[PRIMARY_HANDLE_HASH_FILE] = default.primary_hash
            elif PRIMARY_HANDLE_HASH_FILE in current:
                files[PRIMARY_HANDLE_HASH_FILE] = current[PRIMARY_HANDLE_HASH_FILE]
    except ListFormatError as err:
        raise SigningError(f"/boot holds a file the lists cannot name: {err}") from err
    signature = signer.sign(signed_listing(files))
    remove = [name for name in current if name not in files]
    return NewState({**files, SIGNATURE_FILE: signature}, remove, value)


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
) -> BootReport:
    """Re-hash, bump the counter, sign, replace; the verification of the
    result. SigningError when nothing was changed; /boot must be writable.

    bump=False signs at the counter's present value (a host, which cannot
    reach the machine's TPM): /boot stays bound to that value, and an older
    /boot signed at the same value is not refused until the next bump."""
    if read_pending(boot_dir) is not None:
        raise SigningError("an interrupted signing is still pending; restart first.")
    note = step or (lambda _: None)
    current = _read_current(boot_dir)
    index = _counter_index(current, counter)
    current_value = counter.read(index)
    if current_value is None:
        # a new counter starts wherever the TPM says on its first increment
        # (the highest value any counter had): learn it before signing for +1
        current_value = counter.increment(index)
    value = current_value + 1 if bump else current_value
    note("hashing")
    state = build_state(boot_dir, current, index, value, signer, default, progress)
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
