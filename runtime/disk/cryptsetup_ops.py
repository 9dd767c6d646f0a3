"""Every cryptsetup call the Disk Unlock Key needs: key slots and header backups.

A secret (the owner's passphrase, the DUK) never reaches argv, a file or a
log. Each goes through its own pipe, filled before cryptsetup starts (a
secret is at most MAX_SECRET bytes, less than any pipe holds) and named to
cryptsetup as /proc/self/fd/N: the initramfs's devtmpfs has no /dev/fd. A key
file is read verbatim to its end, so NUL, newline and any byte work as given.

Each call has a timeout and a checked exit status (cryptsetup(8): 1 wrong
parameters, 2 bad passphrase, 3 out of memory, 4 wrong device, 5 busy).
Failures raise CryptsetupError: str() is the technical line for
runtime.error_detail (never a secret), ``plain()`` the words for the screen.

Beware: any cryptsetup command on a LUKS2 device whose two header copies
disagree rewrites the damaged copy, even isLuks with --readonly. A device
whose first bytes are not a LUKS primary header is never handed to it.
"""

from __future__ import annotations

import enum
import errno
import hashlib
import os
import re
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass

from runtime.disk.luks_devices import UnsafeDevice, read_head
from runtime.disk.luks_header import (
    SLOTS,
    LuksHeader,
    LuksHeaderError,
    identify,
    parse_key_slots,
    valid_uuid,
)

#: where the image puts it (an absolute path: PATH is not trusted)
CRYPTSETUP = "/sbin/cryptsetup"
#: header reads and writes: one disk access each
METADATA_TIMEOUT = 30.0
#: a key derivation per key slot tried; Argon2 on a slow machine takes seconds each
KDF_TIMEOUT = 180.0
#: a passphrase or a key file; Heads' DUK is 128 bytes
MAX_SECRET = 4096
PBKDF_KINDS = ("pbkdf2", "argon2i", "argon2id")
# messages are parsed: no translation; nothing else from the caller's environment
_ENV = {"PATH": "/sbin:/bin:/usr/sbin:/usr/bin", "LC_ALL": "C"}
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY

Secret = bytes | bytearray


class Problem(enum.Enum):
    """What went wrong, as the screen tells it: (summary, hint)."""

    WRONG_PASSPHRASE = (
        "The disk did not accept the passphrase.",
        "Check the keyboard layout and Caps Lock, then try again.",
    )
    SLOT_IN_USE = (
        "That key slot of the disk already holds a key; it was left as it was.",
        "Wipe that key slot first, or use another one.",
    )
    SLOT_INVALID = ("The disk has no key slot with that number.", "")
    SLOT_EMPTY = ("That key slot of the disk is already empty.", "")
    OWN_SLOT = (
        "That key slot is the one the passphrase given opens, so it was not wiped.",
        "Give a passphrase that opens another key slot of the disk.",
    )
    NO_KEYSLOT_SPACE = (
        "The disk's encryption header has no room for another key.",
        "Wipe a key slot that is no longer used, then try again.",
    )
    NOT_LUKS = (
        "That device is not an encrypted (LUKS) disk.",
        "Check which disk or partition holds the encrypted system.",
    )
    BAD_HEADER = (
        "The disk's encryption header looks damaged or tampered with; it was not used.",
        "Check the disk from a system you trust before using it here.",
    )
    NO_DEVICE = (
        "The disk was not found.",
        "Check that it is connected, then try again.",
    )
    UNSAFE_PATH = (
        "The name given for the disk does not lead to a disk; it was not opened.",
        "Use the disk's own device name.",
    )
    UNREADABLE = ("The disk could not be read.", "Check its connection, then try again.")
    BUSY = ("The disk is in use.", "Try again in a moment.")
    OUT_OF_MEMORY = (
        "There was not enough memory to check the disk's key.",
        "Turn the machine off and on again, then retry.",
    )
    TIMEOUT = (
        "Checking the disk's key took too long and was stopped.",
        "Try again; if it keeps happening, the disk may be failing.",
    )
    BACKUP_NOT_WRITTEN = (
        "The copy of the disk's encryption header could not be made in memory.",
        "Memory for secrets may be full: turn the machine off and on again.",
    )
    BAD_SECRET = ("That passphrase is empty or too long to use.", "")
    NO_TOOL = ("The disk encryption tool is missing from this firmware.", "")
    FAILED = (
        "The disk encryption tool reported an error.",
        "Try again; the details are in the log.",
    )


class CryptsetupError(Exception):
    """A cryptsetup call refused or failed. str() is the technical line (the
    subcommand, the device, the exit status, cryptsetup's last words: never a
    secret); ``summary``, ``hint`` and ``plain()`` are for the screen."""

    def __init__(self, problem: Problem, detail: str, *, returncode: int | None = None) -> None:
        super().__init__(detail)
        self.problem = problem
        self.returncode = returncode

    @property
    def summary(self) -> str:
        return self.problem.value[0]

    @property
    def hint(self) -> str:
        return self.problem.value[1]

    def plain(self) -> str:
        return " ".join(part for part in (self.summary, self.hint) if part)


#: cryptsetup's exit statuses beyond 1 (cryptsetup(8), RETURN CODES)
_BY_STATUS = {
    2: Problem.WRONG_PASSPHRASE,
    3: Problem.OUT_OF_MEMORY,
    4: Problem.NO_DEVICE,
    5: Problem.BUSY,
}
#: status 1 covers many refusals; its message (LC_ALL=C) says which
_BY_MESSAGE = (
    ("is full, please select another", Problem.SLOT_IN_USE),
    ("is invalid, please select", Problem.SLOT_INVALID),
    ("is not active", Problem.SLOT_EMPTY),
    ("No space for new keyslot", Problem.NO_KEYSLOT_SPACE),
    ("is not a valid LUKS device", Problem.NOT_LUKS),
    ("Cannot write header backup file", Problem.BACKUP_NOT_WRITTEN),
    ("does not exist or access denied", Problem.NO_DEVICE),
)
_TAIL_LINES = 3


def failure(result: subprocess.CompletedProcess[bytes], what: str, device: str) -> CryptsetupError:
    """The error for a cryptsetup call that exited non-zero."""
    said = result.stderr.decode("utf-8", "replace")
    problem = _BY_STATUS.get(result.returncode, Problem.FAILED)
    if result.returncode == 1:
        problem = next((p for text, p in _BY_MESSAGE if text in said), Problem.FAILED)
    tail = " | ".join([line.strip() for line in said.splitlines() if line.strip()][-_TAIL_LINES:])
    detail = f"cryptsetup {what} {device}: exit status {result.returncode}"
    return CryptsetupError(
        problem, detail + (f": {tail}" if tail else ""), returncode=result.returncode
    )


@dataclass(frozen=True)
class Pbkdf:
    """How a new key slot derives its key; None keeps cryptsetup's default
    (tests make it fast: kind="pbkdf2", iterations=1000)."""

    kind: str | None = None  # --pbkdf
    memory_kib: int | None = None  # --pbkdf-memory (Argon2 only)
    iter_time_ms: int | None = None  # --iter-time
    iterations: int | None = None  # --pbkdf-force-iterations

    def args(self, version: int) -> list[str]:
        out: list[str] = []
        if self.kind is not None:
            if self.kind not in PBKDF_KINDS:
                raise ValueError(f"unknown PBKDF {self.kind!r}")
            if version == 1 and self.kind != "pbkdf2":
                raise ValueError("LUKS1 key slots use pbkdf2 only")
            out.append(f"--pbkdf={self.kind}")
        numbers = (
            ("--pbkdf-memory", self.memory_kib),
            ("--iter-time", self.iter_time_ms),
            ("--pbkdf-force-iterations", self.iterations),
        )
        for flag, value in numbers:
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{flag} needs a positive whole number")
            out.append(f"{flag}={value}")
        return out


def is_luks(device: str, *, timeout: float = METADATA_TIMEOUT) -> int | None:
    """The LUKS version (1 or 2) of the container starting at ``device``; None
    when its first bytes are not a LUKS primary header. Both the header and
    cryptsetup must agree; CryptsetupError when they do not."""
    header = _header_of(device)
    if header is None or not header.primary:
        return None
    _require_agreement(device, header, timeout)
    return header.version


def luks_uuid(device: str, *, timeout: float = METADATA_TIMEOUT) -> str:
    """The container's UUID, as cryptsetup and the header both give it."""
    header = _require_luks(device)
    result = _run(["luksUUID", device], timeout=timeout)
    if result.returncode != 0:
        raise failure(result, "luksUUID", device)
    uuid = result.stdout.decode("ascii", "replace").strip()
    if not valid_uuid(uuid) or uuid != header.uuid:
        raise CryptsetupError(
            Problem.BAD_HEADER, f"{device}: cryptsetup's UUID differs from the header's"
        )
    return uuid


def slot_opened_by(device: str, passphrase: Secret, *, timeout: float = KDF_TIMEOUT) -> int | None:
    """The key slot ``passphrase`` opens (the first cryptsetup tries, if it
    opens several), activating nothing; None for a passphrase no slot takes."""
    _require_luks(device)
    with _secret_pipes(passphrase) as fds:
        args = [
            "open",
            "--test-passphrase",
            "--verbose",
            "--type=luks",
            # a header can name a token plugin; none is loaded from a hostile disk
            "--disable-external-tokens",
            f"--key-file={_fd_path(fds[0])}",
            device,
        ]
        result = _run(args, pass_fds=fds, timeout=timeout)
    if result.returncode == 2:
        return None
    if result.returncode != 0:
        raise failure(result, "open --test-passphrase", device)
    said = result.stdout.decode("ascii", "replace")
    slots = re.findall(r"^Key slot ([0-9]{1,2}) unlocked\.$", said, re.MULTILINE)
    if len(slots) != 1 or int(slots[0]) >= SLOTS[2]:
        raise CryptsetupError(
            Problem.FAILED, f"{device}: cryptsetup opened no key slot it named once"
        )
    return int(slots[0])


def used_slots(device: str, *, timeout: float = METADATA_TIMEOUT) -> set[int]:
    """The key slots in use (LUKS2 unbound slots count: they take a number)."""
    header = _require_luks(device)
    result = _run(["luksDump", device], timeout=timeout)
    if result.returncode != 0:
        raise failure(result, "luksDump", device)
    try:
        slots = parse_key_slots(result.stdout.decode("utf-8", "replace"))
    except ValueError as err:
        raise CryptsetupError(Problem.BAD_HEADER, f"{device}: luksDump: {err}") from err
    if slots.version != header.version:
        raise CryptsetupError(Problem.BAD_HEADER, f"{device}: luksDump gives another version")
    return set(slots.used)


def add_key(
    device: str,
    existing_passphrase: Secret,
    new_key: Secret,
    slot: int,
    *,
    pbkdf: Pbkdf | None = None,
    timeout: float = KDF_TIMEOUT,
) -> None:
    """Put ``new_key`` into the empty key ``slot``, authorised by a passphrase
    that opens another slot. A slot in use is never overwritten."""
    header = _require_luks(device)
    _check_slot(header.version, slot)
    extra = (pbkdf or Pbkdf()).args(header.version)
    if slot in used_slots(device, timeout=min(timeout, METADATA_TIMEOUT)):
        raise CryptsetupError(Problem.SLOT_IN_USE, f"{device}: key slot {slot} is in use")
    with _secret_pipes(existing_passphrase, new_key) as fds:
        args = [
            "luksAddKey",
            "--batch-mode",
            f"--type=luks{header.version}",
            f"--key-file={_fd_path(fds[0])}",  # the existing passphrase
            f"--key-slot={slot}",
            *extra,
            device,
            _fd_path(fds[1]),  # the new key: luksAddKey's positional key file
        ]
        result = _run(args, pass_fds=fds, timeout=timeout)
    if result.returncode != 0:
        raise failure(result, "luksAddKey", device)


def kill_slot(device: str, slot: int, passphrase: Secret, *, timeout: float = KDF_TIMEOUT) -> None:
    """Wipe key ``slot``, authorised by ``passphrase``, which must open another
    slot: the slot a passphrase itself opens is never wiped with it."""
    header = _require_luks(device)
    _check_slot(header.version, slot)
    if slot not in used_slots(device, timeout=min(timeout, METADATA_TIMEOUT)):
        raise CryptsetupError(Problem.SLOT_EMPTY, f"{device}: key slot {slot} is not in use")
    opened = slot_opened_by(device, passphrase, timeout=timeout)
    if opened is None:
        raise CryptsetupError(Problem.WRONG_PASSPHRASE, f"{device}: no key slot took it")
    if opened == slot:
        raise CryptsetupError(Problem.OWN_SLOT, f"{device}: key slot {slot} is the one it opens")
    # never without --key-file: in batch mode cryptsetup would wipe unasked; and
    # it wipes a last slot given that slot's own passphrase, hence the check above
    with _secret_pipes(passphrase) as fds:
        args = [
            "luksKillSlot",
            "--batch-mode",
            f"--type=luks{header.version}",
            f"--key-file={_fd_path(fds[0])}",
            device,
            str(slot),
        ]
        result = _run(args, pass_fds=fds, timeout=timeout)
    if result.returncode != 0:
        raise failure(result, "luksKillSlot", device)


def header_backup_digest(device: str, work_dir: str, *, timeout: float = METADATA_TIMEOUT) -> bytes:
    """SHA-256 of ``cryptsetup luksHeaderBackup``'s file, what Heads extends
    PCR 6 with. The file is written in a new folder inside ``work_dir`` (RAM)
    and removed before returning: it is as large as the header and its key
    slots area, 16 MiB for a default LUKS2 header, 2 MiB for LUKS1."""
    _require_luks(device)
    _check_work_dir(work_dir)
    try:
        folder = tempfile.mkdtemp(prefix="lukshdr-", dir=work_dir)
    except OSError as err:
        raise CryptsetupError(Problem.BACKUP_NOT_WRITTEN, f"{work_dir}: {err.strerror}") from err
    backup = os.path.join(folder, "header")
    try:
        result = _run(
            ["luksHeaderBackup", f"--header-backup-file={backup}", device], timeout=timeout
        )
        if result.returncode != 0:
            raise failure(result, "luksHeaderBackup", device)
        return _sha256_of(backup)
    finally:
        # a failed write (RAM full) leaves part of the file behind
        with suppress(FileNotFoundError):
            os.unlink(backup)
        with suppress(OSError):
            os.rmdir(folder)


def _header_of(device: str) -> LuksHeader | None:
    if not device.startswith("/"):
        # cryptsetup would read "-x" as an option: only absolute paths
        raise CryptsetupError(Problem.UNSAFE_PATH, f"{device!r} is not an absolute path")
    try:
        head = read_head(device)
    except FileNotFoundError as err:
        raise CryptsetupError(Problem.NO_DEVICE, f"{device} does not exist") from err
    except UnsafeDevice as err:
        unsafe = err.errno in (errno.ELOOP, errno.EINVAL)
        raise CryptsetupError(
            Problem.UNSAFE_PATH if unsafe else Problem.UNREADABLE, str(err)
        ) from err
    try:
        return identify(head)
    except LuksHeaderError as err:
        raise CryptsetupError(Problem.BAD_HEADER, f"{device}: {err}") from err


def _require_luks(device: str) -> LuksHeader:
    header = _header_of(device)
    if header is None or not header.primary:
        raise CryptsetupError(Problem.NOT_LUKS, f"{device} does not start with a LUKS header")
    return header


def _require_agreement(device: str, header: LuksHeader, timeout: float) -> None:
    result = _run(["isLuks", f"--type=luks{header.version}", device], timeout=timeout)
    if result.returncode == 1:
        raise CryptsetupError(
            Problem.BAD_HEADER,
            f"{device}: cryptsetup does not take its LUKS{header.version} header",
        )
    if result.returncode != 0:
        raise failure(result, "isLuks", device)


def _check_slot(version: int, slot: int) -> None:
    if isinstance(slot, bool) or not isinstance(slot, int):
        raise TypeError("a key slot is an int")
    if not 0 <= slot < SLOTS[version]:
        raise CryptsetupError(Problem.SLOT_INVALID, f"LUKS{version} has no key slot {slot}")


def _check_work_dir(work_dir: str) -> None:
    try:
        mode = os.lstat(work_dir).st_mode
    except OSError as err:
        raise CryptsetupError(Problem.BACKUP_NOT_WRITTEN, f"{work_dir}: {err.strerror}") from err
    if not work_dir.startswith("/") or not stat.S_ISDIR(mode):
        raise CryptsetupError(Problem.BACKUP_NOT_WRITTEN, f"{work_dir} is not a folder")


def _sha256_of(path: str) -> bytes:
    try:
        fd = os.open(path, _OPEN_FLAGS)
        with open(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise CryptsetupError(Problem.FAILED, f"{path} is not the backup file")
            return hashlib.file_digest(f, "sha256").digest()
    except OSError as err:
        raise CryptsetupError(Problem.FAILED, f"{path}: {err.strerror}") from err


def _fd_path(fd: int) -> str:
    return f"/proc/self/fd/{fd}"


@contextmanager
def _secret_pipes(*secrets: Secret) -> Iterator[tuple[int, ...]]:
    """Read ends of pipes holding each secret; closed on leaving."""
    fds: list[int] = []
    try:
        for secret in secrets:
            fds.append(_pipe_holding(secret))
        yield tuple(fds)
    finally:
        for fd in fds:
            os.close(fd)


def _pipe_holding(secret: Secret) -> int:
    if not isinstance(secret, (bytes, bytearray)):
        raise TypeError("a secret is bytes or bytearray")
    if not 0 < len(secret) <= MAX_SECRET:
        raise CryptsetupError(Problem.BAD_SECRET, f"a secret must be 1 to {MAX_SECRET} bytes")
    read_end, write_end = os.pipe()
    try:
        # never wait on a full pipe: nobody reads it yet
        os.set_blocking(write_end, False)
        view = memoryview(secret)  # no copy of the secret in Python's memory
        written = 0
        while written < len(view):
            written += os.write(write_end, view[written:])
    except BaseException:
        os.close(read_end)
        raise
    finally:
        os.close(write_end)
    return read_end


def _run(
    args: list[str], *, pass_fds: tuple[int, ...] = (), timeout: float
) -> subprocess.CompletedProcess[bytes]:
    """cryptsetup with ``args`` (never a secret), its output captured, unchecked."""
    what = args[0]
    try:
        return subprocess.run(
            [CRYPTSETUP, *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            pass_fds=pass_fds,
            env=_ENV,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as err:
        raise CryptsetupError(
            Problem.TIMEOUT, f"cryptsetup {what} did not finish within {timeout:g} s"
        ) from err
    except OSError as err:
        raise CryptsetupError(
            Problem.NO_TOOL, f"cryptsetup {what} could not start: {err.strerror}"
        ) from err
