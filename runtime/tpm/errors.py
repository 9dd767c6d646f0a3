"""Typed TPM errors with plain-words messages.

tpm2-pytss raises ``TSS2_Exception`` carrying a numeric response code. The
runtime turns those codes into the few situations a user can act on (wrong
passphrase, PCRs changed, lockout, missing index, no TPM) so that no screen
ever shows a raw code without an explanation. The decoding is done here from
the integer alone, so this module does not import tpm2-pytss.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from runtime.tpm.pcr_math import PcrMismatch

# Response-code layers (bits 16-23 of a TSS2_RC).
LAYER_TPM = 0x00
LAYER_ESAPI = 0x07
LAYER_SYS = 0x08
LAYER_TCTI = 0x0A
LAYER_RESMGR = 0x0B

# TPM format-one codes (TPM_RC_FMT1 + n); the handle/session/parameter number is masked off.
RC_HIERARCHY = 0x085
RC_HANDLE = 0x08B
RC_AUTH_FAIL = 0x08E
RC_POLICY_FAIL = 0x09D
RC_BAD_AUTH = 0x0A2
RC_SIZE = 0x095
RC_VALUE = 0x084
# TPM format-zero codes.
RC_INITIALIZE = 0x100
RC_FAILURE = 0x101
RC_DISABLED = 0x120
RC_AUTH_UNAVAILABLE = 0x12F
RC_PCR_CHANGED = 0x128
RC_NV_RANGE = 0x146
RC_NV_SIZE = 0x147
RC_NV_LOCKED = 0x148
RC_NV_AUTHORIZATION = 0x149
RC_NV_UNINITIALIZED = 0x14A
RC_NV_SPACE = 0x14B
RC_NV_DEFINED = 0x14C
# Warnings.
RC_NV_RATE = 0x920
RC_LOCKOUT = 0x921
RC_RETRY = 0x922
RC_NV_UNAVAILABLE = 0x923

_CODE_NAMES = {
    RC_HIERARCHY: "hierarchy disabled",
    RC_HANDLE: "handle not found",
    RC_AUTH_FAIL: "authorization failed",
    RC_POLICY_FAIL: "policy check failed",
    RC_BAD_AUTH: "authorization failed",
    RC_SIZE: "size out of range",
    RC_VALUE: "value out of range",
    RC_INITIALIZE: "TPM not started",
    RC_FAILURE: "TPM in failure mode",
    RC_DISABLED: "command disabled",
    RC_PCR_CHANGED: "PCRs changed during the policy",
    RC_NV_RANGE: "NV offset out of range",
    RC_NV_SIZE: "NV size out of range",
    RC_NV_LOCKED: "NV index locked",
    RC_NV_AUTHORIZATION: "NV authorization not allowed",
    RC_NV_UNINITIALIZED: "NV index never written",
    RC_NV_SPACE: "no NV space left",
    RC_NV_DEFINED: "NV index already defined",
    RC_LOCKOUT: "dictionary-attack lockout",
    RC_RETRY: "TPM busy, retry",
    RC_NV_RATE: "NV rate limited",
}


def layer_of(rc: int) -> int:
    return (rc >> 16) & 0xFF


def base_code(rc: int) -> int:
    """The TPM error code without its layer and handle/session/parameter number."""
    code = rc & 0xFFFF
    if code & 0x080:  # format one: error number in bits 0-5
        return 0x080 | (code & 0x03F)
    return code & 0xFFF


def describe_rc(rc: int) -> str:
    """A short technical description of a response code, for logs and details."""
    layer = layer_of(rc)
    if layer == LAYER_TPM:
        name = _CODE_NAMES.get(base_code(rc), "TPM error")
        return f"{name} (0x{rc:x})"
    names = {LAYER_ESAPI: "ESAPI", LAYER_SYS: "SAPI", LAYER_TCTI: "TPM connection"}
    return f"{names.get(layer, 'TSS')} error 0x{rc:x}"


#: the next step when an error class names none
RETRY_HINT = "Try again; if it keeps failing, turn the machine off completely and on again."


class TpmError(Exception):
    """Base of every TPM error the runtime shows. ``message`` is technical (the
    operation, NV index and response code: for the log); ``plain()`` is what a
    screen may say: ``summary`` (what happened) and ``hint`` (what to do)."""

    summary: str = "The TPM reported an error."
    hint: str = ""

    def __init__(
        self,
        message: str,
        *,
        rc: int | None = None,
        hint: str | None = None,
        summary: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.rc = rc
        if hint is not None:
            self.hint = hint
        if summary is not None:
            self.summary = summary

    def details(self) -> str:
        return describe_rc(self.rc) if self.rc is not None else ""

    def plain(self) -> str:
        """Words for the screen: never the operation, an NV index or a code."""
        return " ".join(part for part in (self.summary, self.hint or RETRY_HINT) if part)


class TpmAbsent(TpmError):
    summary = "No TPM answered."
    hint = (
        "Check that the TPM is enabled in the firmware settings and that the TPM "
        "driver is loaded; without a TPM no secret can be unsealed."
    )


class TpmFailureMode(TpmError):
    summary = "The TPM is not working."
    hint = "The TPM reported a self-test failure. Power the machine off completely and retry."


class WrongPassphrase(TpmError):
    summary = "The TPM refused the passphrase."
    hint = (
        "Check the keyboard layout and Caps Lock, then try again. Each failure counts "
        "toward the TPM's dictionary-attack lockout."
    )


class WrongOwnerPassphrase(WrongPassphrase):
    summary = "The TPM refused the owner passphrase."
    # the owner hierarchy's passphrase is outside the dictionary-attack count
    hint = "Check the keyboard layout and Caps Lock, then try again."


class TpmLockedOut(TpmError):
    summary = "The TPM is refusing passphrases for now."
    hint = (
        "Too many wrong passphrases: the TPM refuses passphrase checks for a while. "
        "Clear the lockout with the TPM lockout passphrase (Options > TPM/TOTP/HOTP "
        "options), or wait for it to expire (the TPM must stay powered on). Resetting "
        "the TPM ends it too, but destroys every secret sealed in it."
    )


class PcrsChanged(TpmError):
    """The PCRs differ from those the secret was sealed to: firmware, boot or config changed."""

    summary = "The measurements (PCRs) differ from those the secret was sealed to."
    hint = (
        "The firmware, its configuration or the boot path differs from when this "
        "secret was sealed, or the recovery shell was used in this boot. If you made "
        "the change yourself, check the integrity report and seal the secret again."
    )

    def __init__(
        self,
        message: str,
        *,
        rc: int | None = None,
        mismatches: Sequence[PcrMismatch] = (),
    ) -> None:
        super().__init__(message, rc=rc)
        self.mismatches = list(mismatches)


class TpmObjectMissing(TpmError):
    summary = "Something the TPM should hold is missing."
    hint = "The TPM does not hold it: it was never created or the TPM was reset."


class NvIndexMissing(TpmObjectMissing):
    pass


class SealedObjectMissing(TpmObjectMissing):
    summary = "The sealed secret is missing."


class PrimaryKeyMissing(TpmObjectMissing):
    summary = ""  # the hint says it all
    hint = "The TPM has no storage key yet: reset the TPM and take ownership."


class TpmCommandError(TpmError):
    """Any other TPM failure; the message names the operation and the code."""


def translate(
    exc: BaseException,
    operation: str,
    *,
    auth: str = "passphrase",
    owner_auth: bool = False,
    missing: type[TpmObjectMissing] = TpmObjectMissing,
) -> TpmError:
    """Turn a tpm2-pytss exception raised during ``operation`` into a TpmError.

    ``auth`` names what a failed authorization was about (for example "TPM
    owner passphrase"); ``owner_auth`` picks WrongOwnerPassphrase for it.
    """
    if isinstance(exc, TpmError):
        return exc
    rc = getattr(exc, "rc", None)
    if not isinstance(rc, int):
        return TpmCommandError(f"{operation} failed: {exc}")
    layer = layer_of(rc)
    if layer in (LAYER_TCTI, LAYER_RESMGR):
        return TpmAbsent(f"{operation} failed: the TPM does not answer ({describe_rc(rc)})", rc=rc)
    if layer != LAYER_TPM:
        return TpmCommandError(f"{operation} failed: {describe_rc(rc)}", rc=rc)
    code = base_code(rc)
    if code in (RC_AUTH_FAIL, RC_BAD_AUTH):
        cls = WrongOwnerPassphrase if owner_auth else WrongPassphrase
        return cls(f"{operation} failed: wrong {auth}", rc=rc)
    if code in (RC_POLICY_FAIL, RC_PCR_CHANGED):
        return PcrsChanged(f"{operation} refused: the measured state (PCRs) has changed", rc=rc)
    if code == RC_LOCKOUT:
        return TpmLockedOut(f"{operation} refused: the TPM is in dictionary-attack lockout", rc=rc)
    if code == RC_HANDLE:
        return missing(f"{operation} failed: not found in the TPM", rc=rc)
    if code in (RC_FAILURE, RC_INITIALIZE):
        return TpmFailureMode(f"{operation} failed: the TPM is not operational", rc=rc)
    return TpmCommandError(f"{operation} failed: {describe_rc(rc)}", rc=rc)


@contextmanager
def translated(
    operation: str,
    *,
    auth: str = "passphrase",
    owner_auth: bool = False,
    missing: type[TpmObjectMissing] = TpmObjectMissing,
) -> Iterator[None]:
    """Run a block of TPM calls and re-raise its tpm2-pytss errors as TpmError."""
    try:
        yield
    except TpmError:
        raise
    except Exception as exc:  # tpm2-pytss raises TSS2_Exception, a plain Exception
        if not isinstance(getattr(exc, "rc", None), int):
            raise
        raise translate(exc, operation, auth=auth, owner_auth=owner_auth, missing=missing) from exc


class TpmIdentityChanged(TpmError):
    """The key that would salt the sessions is not the storage key the firmware
    pins (CONFIG_TPM_PRIMARY_NAME), or there is none: nothing secret is sent."""

    summary = "TPM identity changed."
    hint = (
        "The TPM or its storage key is not the one this firmware was set up with: a "
        "different TPM, a reset done elsewhere, or someone on the TPM bus. Nothing "
        "secret was sent to it. If you reset or replaced the TPM yourself, put its new "
        "storage key's name in CONFIG_TPM_PRIMARY_NAME and flash the rebuilt firmware."
    )


class WrongLockoutPassphrase(WrongPassphrase):
    """The lockout hierarchy refused its passphrase: the TPM now refuses the
    lockout passphrase for its lockoutRecovery time (0: until it restarts)."""

    summary = "The TPM refused the lockout passphrase: it is wrong."
    hint = (
        "After a wrong lockout passphrase the TPM refuses every lockout passphrase for "
        "a while (until the machine restarts, as this firmware sets it up)."
    )


class LockoutPassphraseBlocked(TpmLockedOut):
    """TPM_RC_LOCKOUT on the lockout hierarchy itself: a wrong lockout passphrase
    was given earlier, and its wait is not over."""

    summary = "The TPM refuses the lockout passphrase for now."
    hint = (
        "A wrong lockout passphrase was typed earlier: the TPM refuses every lockout "
        "passphrase until its wait is over (until the machine restarts, as this "
        "firmware sets it up). Restart, then type the right one."
    )


class NvIndexForeign(TpmError):
    """An NV index at one of this runtime's handles is not defined exactly as this
    runtime defines it (attributes, policy, size, Name): it is never read, since
    whoever defined it chose what it holds. ``problem`` says how it differs."""

    summary = "The TPM holds something in this place that this runtime did not put there."
    hint = "It was not read. Generate a new secret: that replaces it."

    def __init__(self, message: str, *, problem: str = "", rc: int | None = None) -> None:
        super().__init__(message, rc=rc)
        self.problem = problem


class NvSlotHeld(TpmError):
    """An NV index this runtime did not define holds one of its handles, and only
    the platform's authorization (which the firmware has locked) can remove it."""

    summary = (
        "The TPM's place for the secret is held by an index that only the firmware can remove."
    )
    hint = (
        "Nothing was changed. This runtime did not create that index and cannot "
        "remove it while the firmware keeps the TPM's platform authority locked."
    )


class PlatformNotLocked(TpmError):
    """The platform hierarchy could not be locked, and the TPM did not say that it
    already is (authorization set, or hierarchy disabled)."""

    summary = "The TPM's platform authority could not be locked."
    hint = (
        "Left open, it would let what runs next leave something in the TPM that "
        "survives a TPM reset. Turn the machine off completely and on again."
    )


class Pcr4NotExtended(TpmError):
    """After the hand-over's extend, PCR 4 read back in an audited session did
    not hold the value the extend gives, or that read's answer failed its
    check: what answered the extend may not be the TPM, and the next OS could
    unseal what was sealed to the pre-boot PCR 4."""

    summary = (
        "PCR 4 did not change as it must: something on the TPM bus may be "
        "answering in the TPM's place."
    )
    hint = "Nothing was booted."
