"""The TOTP secret: unsealed from the TPM at every boot; the code it gives,
checked against the user's phone, proves that the measured firmware and
runtime are the ones it was sealed to."""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyotp

from runtime import bootlog
from runtime.tpm import handles
from runtime.tpm.errors import NvIndexMissing, PcrsChanged, TpmError

if TYPE_CHECKING:
    from runtime.tpm.connection import Tpm


@dataclass(frozen=True)
class TotpResult:
    code: str | None  # None when the secret did not unseal
    message: str  # one line for the main screen


def secret_base32(secret: bytes | bytearray) -> str:
    """The secret as phones and pyotp take it: base32 without padding."""
    return base64.b32encode(bytes(secret)).decode().rstrip("=")


def totp_code(secret: bytes | bytearray, at: float | None = None) -> str:
    """The 6-digit, 30-second TOTP code (RFC 6238, SHA-1) that phone apps show."""
    key = secret_base32(secret)
    # generate_otp on the step number: TOTP.at() in pyotp 2.6 goes through local
    # time and is an hour off while a DST change repeats an hour.
    step = int(time.time() if at is None else at) // 30
    return str(pyotp.TOTP(key).generate_otp(step))


def hotp_code(secret: bytes | bytearray, counter: int) -> str:
    """The 6-digit HOTP code (RFC 4226, SHA-1) for ``counter``, as HOTP tokens show."""
    if counter < 0:
        raise ValueError("an HOTP counter is never negative")
    return str(pyotp.HOTP(secret_base32(secret)).at(counter))


def _wipe(buffer: bytearray) -> None:
    for i in range(len(buffer)):
        buffer[i] = 0


def unseal_totp(tpm: Tpm, runtime_pcr: int, index: int = handles.TOTP_SEALED_NV) -> TotpResult:
    """Unseal the TOTP secret and compute the current code; never raises TPM errors."""
    from runtime.tpm import nv, sealing

    try:
        sealed = nv.load_sealed(tpm, index)
    except NvIndexMissing:
        return TotpResult(None, "No TOTP secret is sealed in this TPM yet.")
    except (TpmError, ValueError) as err:
        return TotpResult(None, f"The sealed TOTP secret cannot be read: {err}")
    if runtime_pcr not in sealed.pcrs:
        # A secret not bound to the firmware's measurement of this runtime
        # proves nothing about it.
        return TotpResult(None, f"The TOTP secret is not sealed to PCR {runtime_pcr}: "
                                "it proves nothing; seal it again.")
    bootlog.stage("totp-blob-read")
    try:
        secret = sealing.unseal(tpm, sealed)
    except PcrsChanged as err:
        changed = ", ".join(str(m.pcr) for m in err.mismatches) or "?"
        return TotpResult(None, f"TOTP secret refused: PCR {changed} changed since it was "
                                "sealed (firmware or initramfs differ). Do not trust this boot.")
    except TpmError as err:
        return TotpResult(None, f"TOTP secret not unsealed: {err}")
    try:
        return TotpResult(totp_code(secret), "TOTP secret unsealed: compare the code "
                                             "with your phone.")
    finally:
        _wipe(secret)
