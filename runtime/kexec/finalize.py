"""The last steps before ``kexec -e``, after the kernel is loaded (Heads' kexec_finalize).

In order: mark the boot mode in PCR 4 (and read it back, authenticated),
flush every TPM context, lock the platform hierarchy, wipe the RAM secrets,
sync, unmount. Each step is its own function so a caller can run them one by
one; prepare_handover runs them all and returns what was done, for the boot
log. The recovery gate locks the platform hierarchy with ``lock_platform``
too, before a shell.
"""

from __future__ import annotations

import contextlib
import enum
import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

# Before tpm2_pytss: its stand-ins let it import without `cryptography` (lazy_crypto).
import runtime.tpm  # noqa: F401  # isort: skip
from tpm2_pytss import TSS2_Exception
from tpm2_pytss.constants import ESYS_TR, TPM2_CAP, TPM2_HC

from runtime import bootlog
from runtime.kexec.errors import KexecError
from runtime.secrets.ram import SecretDir, wipe_buffer
from runtime.tpm import pcrs
from runtime.tpm.connection import Tpm
from runtime.tpm.errors import (
    LAYER_TPM,
    RC_AUTH_FAIL,
    RC_BAD_AUTH,
    RC_HIERARCHY,
    RETRY_HINT,
    Pcr4NotExtended,
    PlatformNotLocked,
    PrimaryKeyMissing,
    TpmError,
    TpmIdentityChanged,
    base_code,
    layer_of,
    translated,
)
from runtime.tpm.pcr_math import Bank, PcrMismatch, extend_all, measure_string
from runtime.tpm.pcr_roles import BOOT_MODE_PCR, BootMode
from runtime.tpm.rng import secret_bytes

VERIFIED_MARKER = BootMode.VERIFIED.value
UNSAFE_MARKER = BootMode.UNSAFE.value
UMOUNT = "/bin/umount"
UMOUNT_TIMEOUT = 30
#: The largest authorization a sha256 TPM accepts for a hierarchy.
PLATFORM_AUTH_BYTES = 32
#: Handle ranges of transient objects, loaded sessions and saved sessions.
_CONTEXT_RANGES = (
    TPM2_HC.TRANSIENT_FIRST,
    TPM2_HC.LOADED_SESSION_FIRST,
    TPM2_HC.ACTIVE_SESSION_FIRST,
)
_PER_CALL = 64


def extend_boot_mode(tpm: Tpm, *, unsafe: bool = False) -> str:
    """Extend PCR 4 with the boot mode, so secrets sealed to the pre-boot PCR 4
    cannot be unsealed by the booted OS. An unsafe boot is marked first with
    "unsafe" so its PCR 4 differs from a verified boot's (Heads leaves PCR 4
    untouched on its forced path, ../shared/reference/heads-facts.md §11.8).

    PCR 4 is read before and after in an audit session (readback below);
    Pcr4NotExtended if it does not hold what the extends give."""
    markers = [UNSAFE_MARKER, VERIFIED_MARKER] if unsafe else [VERIFIED_MARKER]
    check = _start_readback(tpm)
    try:
        for marker in markers:
            pcrs.extend_string(tpm, BOOT_MODE_PCR, marker)
        if check is not None:
            _finish_readback(tpm, check, markers)
    finally:
        if check is not None:
            # after a refused answer ESAPI takes no more commands: nothing to do
            with contextlib.suppress(TSS2_Exception):
                tpm.esapi.flush_context(check.session)
    return f"Extended PCR {BOOT_MODE_PCR} with " + ", then ".join(f'"{m}"' for m in markers)


# -- the read-back of PCR 4 ------------------------------------------------------------
#
# A device on the TPM bus can answer the extend with "success" and not pass it
# on. PCR_Read in an audit session salted with the storage key has an answer
# ESAPI authenticates: it cannot be changed, replayed or made up without the
# key. With the key pinned (CONFIG_TPM_PRIMARY_NAME) the answer is the TPM's;
# without a pin the interposer may have answered with its own key, so the check
# only stops a cruder device, and the log says so.

#: always read back, whatever the (unauthenticated) list of active banks says:
#: the bank the secrets are sealed in
READBACK_BANKS = (Bank.SHA256,)


@dataclass(frozen=True)
class _Readback:
    session: ESYS_TR
    banks: tuple[Bank, ...]
    before: dict[Bank, bytes]
    authenticated: bool  # the salt key is the pinned one


def _log_readback(result: str, err: TpmError | None = None, **fields: object) -> None:
    if err is not None:
        from runtime.error_detail import describe, detail

        detail("pcr4-readback", describe(err))
    bootlog.stage("pcr4-readback", result=result, **fields)


def _start_readback(tpm: Tpm) -> _Readback | None:
    """The audit session and PCR 4 before the extend; None (logged) when no
    storage key can salt the session and nothing better can be had."""
    pinned = tpm.identity_pinned
    try:
        tpm.primary()
    except PrimaryKeyMissing:
        # before ownership: only a throw-away key could salt, which proves nothing
        _log_readback("skipped", why="no-storage-key")
        return None
    except TpmIdentityChanged as err:
        # the start already said so; lock_platform goes on in clear likewise
        _log_readback("skipped", err, why="tpm-identity-changed")
        return None
    except TpmError as err:
        if pinned:
            raise _refused("Loading the storage key for PCR 4's read-back", err) from err
        _log_readback("skipped", err, why="storage-key-unusable")
        return None
    tpm.flush_sessions()  # room for the session: a TPM may hold as few as three
    try:
        session = tpm.audit_session()
    except TpmError as err:
        # with a pin, a refused session could be the interposer dodging the check
        if pinned:
            raise _refused("Starting the audit session for PCR 4's read-back", err) from err
        _log_readback("skipped", err, why="no-audit-session")
        return None
    try:
        banks = tuple(
            sorted({*READBACK_BANKS, *pcrs.active_banks(tpm)}, key=lambda bank: bank.alg_id)
        )
        values = pcrs.read_audited(tpm, session, [BOOT_MODE_PCR], banks)
    except TpmError as err:
        with contextlib.suppress(TSS2_Exception):
            tpm.esapi.flush_context(session)
        raise _refused("Reading PCR 4 before the extend", err) from err
    before = {bank: values[bank][BOOT_MODE_PCR] for bank in banks}
    return _Readback(session, banks, before, pinned)


def _finish_readback(tpm: Tpm, check: _Readback, markers: Sequence[str]) -> None:
    """Pcr4NotExtended unless PCR 4 now holds its old value extended with each
    marker, in every bank read."""
    try:
        values = pcrs.read_audited(tpm, check.session, [BOOT_MODE_PCR], check.banks)
    except TpmError as err:
        raise _refused("Reading PCR 4 back after the extend", err) from err
    wrong = []
    for bank in check.banks:
        expected = extend_all(
            bank, check.before[bank], [measure_string(bank, marker) for marker in markers]
        )
        actual = values[bank][BOOT_MODE_PCR]
        if actual != expected:
            wrong.append(PcrMismatch(bank, BOOT_MODE_PCR, expected, actual).describe())
    if wrong:
        raise Pcr4NotExtended("PCR 4 read back after the extend: " + "; ".join(wrong))
    names = ",".join(bank.hash_name for bank in check.banks)
    if check.authenticated:
        _log_readback("authenticated", banks=names)
    else:
        _log_readback("unauthenticated", banks=names, why="storage-key-not-pinned")


def _refused(operation: str, err: TpmError) -> Pcr4NotExtended:
    return Pcr4NotExtended(f"{operation} failed: {err.message}", rc=err.rc)


def _handles(tpm: Tpm, first: int) -> list[int]:
    found: list[int] = []
    more = True
    while more:
        with translated("Listing TPM handles"):
            more, data = tpm.esapi.get_capability(TPM2_CAP.HANDLES, first, _PER_CALL)
        batch = [int(h) for h in data.data.handles]
        if not batch:
            break
        found += batch
        first = batch[-1] + 1
    return found


def flush_contexts(tpm: Tpm) -> str:
    """Flush every transient object and loaded or saved session, as Heads does,
    so no key or session this runtime used is left for the OS."""
    tpm.flush_sessions()  # the Tpm's own handles first, so it does not reuse dead ones
    flushed = 0
    for first in _CONTEXT_RANGES:
        for handle in _handles(tpm, first):
            with translated(f"Flushing TPM context 0x{handle:08x}"):
                tpm.esapi.flush_context(tpm.esapi.tr_from_tpmpublic(handle))
            flushed += 1
    return f"Flushed {flushed} more TPM contexts (transient objects and sessions)"


class PlatformLock(enum.StrEnum):
    """How the platform hierarchy came to be locked (lock_platform)."""

    LOCKED = "locked"  # this call set a random authorization
    LOCKED_IN_CLEAR = "locked-in-clear"  # the same, unencrypted: not the pinned TPM
    AUTH_SET = "already-locked"  # its authorization was not empty (firmware, an earlier lock)
    DISABLED = "disabled"  # the firmware disabled it (phEnable clear)


_LOCK_LINES = {
    PlatformLock.LOCKED: "Locked the TPM platform hierarchy with a random authorization",
    PlatformLock.LOCKED_IN_CLEAR: "Locked the TPM platform hierarchy with a random "
    "authorization sent unencrypted (TPM identity changed)",
    PlatformLock.AUTH_SET: "TPM platform hierarchy already locked: its authorization is set",
    PlatformLock.DISABLED: "TPM platform hierarchy already locked: it is disabled",
}


def describe_lock(outcome: PlatformLock) -> str:
    return _LOCK_LINES[outcome]


def _already_locked(err: TpmError) -> PlatformLock | None:
    """What a refusal of the empty platform authorization says, if it says locked."""
    if err.rc is None or layer_of(err.rc) != LAYER_TPM:
        return None
    code = base_code(err.rc)
    if code in (RC_BAD_AUTH, RC_AUTH_FAIL):
        return PlatformLock.AUTH_SET
    if code == RC_HIERARCHY:
        return PlatformLock.DISABLED
    return None


def lock_platform(tpm: Tpm) -> PlatformLock:
    """Set the platform authorization to a random value nobody keeps, so what runs
    next cannot use the platform hierarchy (define NV indexes that survive a TPM
    reset, clear the TPM, evict persistent keys).

    Locked is: the change succeeded, or the TPM refused the empty authorization
    (the firmware set one, as OVMF does) or the hierarchy is disabled.
    PlatformNotLocked on any other failure: the caller must not go on.
    """
    try:
        # Mixing two sources: neither a weak TPM RNG nor a weak kernel pool alone
        # makes the value guessable.
        new_auth = secret_bytes(tpm, PLATFORM_AUTH_BYTES)
        try:
            # It encrypts the new value on the bus. Started apart: only the
            # change's own answer may say "already locked".
            outcome = PlatformLock.LOCKED
            try:
                session = tpm.hmac_session()
            except TpmIdentityChanged:
                # Not the pinned TPM, and the user chose to go on without one:
                # a random value sent in clear, to whatever answers on the bus,
                # beats an open platform hierarchy or a machine that cannot boot.
                session, outcome = ESYS_TR.PASSWORD, PlatformLock.LOCKED_IN_CLEAR
            tpm.esapi.tr_set_auth(ESYS_TR.PLATFORM, b"")
            try:
                with translated(
                    "Locking the TPM platform hierarchy", auth="platform authorization"
                ):
                    tpm.esapi.hierarchy_change_auth(
                        ESYS_TR.PLATFORM, bytes(new_auth), session1=session
                    )
            except TpmError as err:
                already = _already_locked(err)
                if already is None:
                    raise
                return already
        finally:
            wipe_buffer(new_auth)
            tpm.esapi.tr_set_auth(ESYS_TR.PLATFORM, b"")  # forget the value in ESAPI too
            tpm.flush_sessions()  # the session used here must not outlive the handover
    except TpmError as err:
        raise PlatformNotLocked(
            f"The platform hierarchy was not locked: {err.message}", rc=err.rc
        ) from err
    return outcome


def wipe_secrets(secrets: SecretDir) -> str:
    """Zero and remove every RAM secret: kexec hands this RAM to the new kernel
    without clearing it."""
    count = secrets.wipe_all()
    return f"Wiped {count} secret files in {secrets.path}"


def sync_disks() -> str:
    os.sync()
    return "Flushed file system buffers to disk"


def unmount(
    mount_point: str, *, umount_binary: str = UMOUNT, timeout: float = UMOUNT_TIMEOUT
) -> str:
    """Unmount one file system; KexecError with umount's message if it fails."""
    try:
        subprocess.run(
            [umount_binary, mount_point],
            check=True,
            timeout=timeout,
            capture_output=True,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.CalledProcessError as err:
        from runtime.error_detail import describe, detail

        detail("unmount", describe(err))  # umount's own words: for the log
        raise KexecError(
            f"Could not unmount {mount_point}: a program may still use it, or "
            "the file system has an error."
        ) from err
    except subprocess.TimeoutExpired as err:
        raise KexecError(f"Could not unmount {mount_point}: umount took over {timeout} s.") from err
    except OSError as err:
        raise KexecError(
            f"Could not unmount {mount_point}: cannot run {umount_binary} ({err.strerror})."
        ) from err
    return f"Unmounted {mount_point}"


def prepare_handover(
    tpm: Tpm | None,
    secrets: SecretDir,
    *,
    unsafe: bool = False,
    mount_points: Sequence[str] = (),
    umount_binary: str = UMOUNT,
    timeout: float = UMOUNT_TIMEOUT,
) -> list[str]:
    """Run every step, in order, after ``load`` and before /init's ``kexec -e``; returns
    one line per step for the boot log.

    Raises TpmError if PCR 4 cannot be extended (booting would leave the sealed
    secrets unsealable by the OS), Pcr4NotExtended if its read-back says it
    was not, KexecError if the platform hierarchy cannot
    be locked (lock_platform) and SecretDirError if the secrets cannot be wiped
    (the OS would inherit them in RAM). Other failures are logged only.
    """
    done: list[str] = []
    if tpm is None:
        done.append("No TPM: PCR 4 not extended, no TPM state to lock")
    else:
        done.append(extend_boot_mode(tpm, unsafe=unsafe))
        # Not fatal: PCR 4 is extended, so a leftover context cannot unseal
        # anything; it only takes one of the TPM's few slots from the OS.
        try:
            done.append(flush_contexts(tpm))
        except TpmError as err:
            done.append(f"TPM contexts not all flushed: {err.message}")
        # Fatal: an open platform hierarchy lets the OS define NV indexes that
        # survive a TPM reset, such as one at the TOTP secret's place.
        try:
            locked = lock_platform(tpm)
        except TpmError as err:
            raise KexecError(
                "The TPM's platform authority could not be locked, so nothing "
                "was booted. " + (err.hint or RETRY_HINT)
            ) from err
        bootlog.stage("platform-lock", outcome=str(locked))
        done.append(describe_lock(locked))
    done.append(wipe_secrets(secrets))
    done.append(sync_disks())
    for mount_point in mount_points:
        # Not fatal: the data is already synced and the new kernel does not
        # inherit this initramfs's mounts.
        try:
            done.append(unmount(mount_point, umount_binary=umount_binary, timeout=timeout))
        except KexecError as err:
            done.append(str(err))
    return done
