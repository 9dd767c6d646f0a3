"""The TOTP/HOTP secret: unsealed from the TPM at every boot; the codes it
gives, checked against the user's phone (TOTP) and USB token (HOTP), prove
that the measured firmware and runtime are the ones it was sealed to.

Codes are computed behind a small interface, `OtpKey`: the unsealed secret
in RAM (`RamOtpKey`, wiped on close); an HMAC key that never leaves the TPM
(as tpm2-totp does) fits behind the same two methods. Each code
is computed from its own unseal, so the secret is in RAM only for one code;
a TOTP refresh forgets the HOTP result, so a failed TOTP unseal never leaves
a stale "HOTP Success" (Heads' issue #1343).
"""

from __future__ import annotations

import base64
import enum
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import pyotp

from runtime import bootlog
from runtime.error_detail import plain
from runtime.secrets.ram import wipe_buffer
from runtime.tpm import handles
from runtime.tpm.errors import (
    NvIndexForeign,
    NvIndexMissing,
    PcrsChanged,
    PrimaryKeyMissing,
    TpmError,
)

if TYPE_CHECKING:
    from runtime.tpm.connection import Tpm

PERIOD = 30


def secret_base32(secret: bytes | bytearray) -> str:
    """The secret as phones and pyotp take it: base32 without padding."""
    return base64.b32encode(bytes(secret)).decode().rstrip("=")


def totp_code(secret: bytes | bytearray, at: float | None = None) -> str:
    """The 6-digit, 30-second TOTP code (RFC 6238, SHA-1) that phone apps show."""
    key = secret_base32(secret)
    # generate_otp on the step number: TOTP.at() in pyotp 2.6 goes through local
    # time and is an hour off while a DST change repeats an hour.
    step = int(time.time() if at is None else at) // PERIOD
    return str(pyotp.TOTP(key).generate_otp(step))


def hotp_code(secret: bytes | bytearray, counter: int) -> str:
    """The 6-digit HOTP code (RFC 4226, SHA-1) for ``counter``, as HOTP tokens show."""
    if counter < 0:
        raise ValueError("an HOTP counter is never negative")
    return str(pyotp.HOTP(secret_base32(secret)).at(counter))


class OtpKey(Protocol):
    """What computes the codes; never exposes the secret itself."""

    def totp(self, at: float | None = None) -> str: ...

    def hotp(self, counter: int) -> str: ...

    def close(self) -> None: ...


class RamOtpKey:
    """The unsealed secret in RAM, for as short a time as possible: use it in a
    ``with`` block; close() overwrites it."""

    def __init__(self, secret: bytearray) -> None:
        self._secret = secret

    def totp(self, at: float | None = None) -> str:
        return totp_code(self._secret, at)

    def hotp(self, counter: int) -> str:
        return hotp_code(self._secret, counter)

    def close(self) -> None:
        wipe_buffer(self._secret)

    def __enter__(self) -> RamOtpKey:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class TotpFailure(enum.StrEnum):
    """Why the secret gave no code."""

    NONE = ""
    MISSING = "missing"  # nothing sealed yet
    PCRS_CHANGED = "pcrs-changed"  # firmware, runtime or configuration differ
    #: PCR 4 was extended for a recovery shell: told apart from PCRS_CHANGED by
    #: the platform, which knows what this power-on extended
    RECOVERY_USED = "recovery-used"
    NOT_BOUND = "not-bound"  # sealed without the runtime's PCR: proves nothing
    TPM_ERROR = "tpm-error"
    NO_PRIMARY = "no-primary"  # the TPM was reset or never owned


@dataclass(frozen=True)
class TotpResult:
    code: str | None  # None when the secret did not unseal
    message: str  # one line for the main screen
    failure: TotpFailure = TotpFailure.NONE
    changed_pcrs: tuple[int, ...] = ()
    step: int = 0  # the 30-second window ``code`` belongs to


@dataclass(frozen=True)
class UnsealFailure:
    message: str
    failure: TotpFailure
    changed_pcrs: tuple[int, ...] = ()


def unseal_key(
    tpm: Tpm, runtime_pcr: int, index: int = handles.TOTP_SEALED_NV
) -> RamOtpKey | UnsealFailure:
    """Unseal the secret; the key (close it!) or why not. Never raises TPM errors."""
    from runtime.tpm import nv, sealing

    try:
        sealed = nv.load_sealed(tpm, index)
    except NvIndexMissing:
        return UnsealFailure("No TOTP secret is sealed in this TPM yet.", TotpFailure.MISSING)
    except NvIndexForeign as err:
        # Never read: whoever defined it (one created with the platform's
        # authorization survives a TPM reset) chose what it holds. Shown as a
        # secret not bound to this runtime: a code from it proves nothing.
        return UnsealFailure(
            plain(
                "totp-read",
                err,
                (
                    "The TPM's place for the TOTP secret holds something this runtime did not "
                    "put there. It was not read, so no code is shown: a code from it would prove "
                    "nothing. Generate a new secret to replace it."
                ),
            ),
            TotpFailure.NOT_BOUND,
        )
    except (TpmError, ValueError) as err:
        # ValueError: the NV index holds no blob of ours (damaged or foreign)
        words = (
            err.plain()
            if isinstance(err, TpmError)
            else ("What the TPM holds in its place is not a sealed secret: generate a new one.")
        )
        return UnsealFailure(
            plain("totp-read", err, f"The sealed TOTP secret cannot be read. {words}"),
            TotpFailure.TPM_ERROR,
        )
    if runtime_pcr not in sealed.pcrs:
        # A secret not bound to the firmware's measurement of this runtime
        # proves nothing about it.
        return UnsealFailure(
            f"The TOTP secret is not sealed to PCR {runtime_pcr}: "
            "it proves nothing; seal it again.",
            TotpFailure.NOT_BOUND,
        )
    bootlog.stage("totp-blob-read")
    try:
        return RamOtpKey(sealing.unseal(tpm, sealed))
    except PcrsChanged as err:
        changed = tuple(m.pcr for m in err.mismatches)
        names = ", ".join(str(p) for p in changed) or "?"
        return UnsealFailure(
            f"TOTP secret refused: PCR {names} changed since it was sealed.",
            TotpFailure.PCRS_CHANGED,
            changed,
        )
    except PrimaryKeyMissing as err:
        return UnsealFailure(
            plain("totp-unseal", err, "TOTP secret not unsealed. " + err.plain()),
            TotpFailure.NO_PRIMARY,
        )
    except TpmError as err:
        return UnsealFailure(
            plain("totp-unseal", err, "TOTP secret not unsealed. " + err.plain()),
            TotpFailure.TPM_ERROR,
        )


def unseal_totp(tpm: Tpm, runtime_pcr: int, index: int = handles.TOTP_SEALED_NV) -> TotpResult:
    """Unseal the TOTP secret and compute the current code; never raises TPM errors."""
    now = time.time()
    key = unseal_key(tpm, runtime_pcr, index)
    if isinstance(key, UnsealFailure):
        return TotpResult(None, key.message, key.failure, key.changed_pcrs)
    with key:
        return TotpResult(
            key.totp(now),
            "TOTP secret unsealed: compare the code with your phone.",
            step=int(now) // PERIOD,
        )
