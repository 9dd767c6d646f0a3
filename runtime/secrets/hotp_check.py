"""The HOTP step of the boot, wired to the devices: which token the settings
name, the TPM's HOTP counter, and an unseal of the shared TOTP/HOTP secret.
The decisions (counter, look-ahead, retries) are runtime.secrets.hotp.verify's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from runtime import bootlog
from runtime.error_detail import detail
from runtime.secrets.hotp import (
    CounterStoreError,
    HotpCheck,
    HotpToken,
    enrol_token,
    verify_with_token,
)
from runtime.secrets.totp import UnsealFailure, unseal_key

if TYPE_CHECKING:
    from runtime.config import Settings
    from runtime.tpm.connection import Tpm


SERIAL_HELLO_TIMEOUT = 1.0
# The first exchange after the port is first opened can be lost (seen with
# OVMF's COM2 under QEMU): ask twice before calling the token absent (2 s).
PRESENCE_TRIES = 2


@dataclass(frozen=True)
class HotpFacts:
    outcome: HotpCheck
    message: str
    token_name: str = ""


def _present(token: HotpToken) -> bool:
    return any(token.present() for _ in range(PRESENCE_TRIES))


def configured_token(settings: Settings) -> HotpToken | None:
    """The token CONFIG_HOTP_TOKEN names (None: no HOTP check at all)."""
    if not settings.hotp_enabled:
        return None
    device = settings.hotp_serial_device
    if device is not None:
        from runtime.secrets.hotp.serial_token import SerialToken

        return SerialToken(device, hello_timeout=SERIAL_HELLO_TIMEOUT)
    from runtime.secrets.hotp.nitrokey import NitrokeyToken

    return NitrokeyToken()


def verify_hotp(tpm: Tpm, runtime_pcr: int, settings: Settings) -> HotpFacts:
    from runtime.secrets.hotp.counter import TpmCounterStore

    token = configured_token(settings)
    if token is None:
        return HotpFacts(HotpCheck.NOT_PROGRAMMED, "No HOTP token is configured.")
    if not _present(token):
        # Nothing is unsealed and the counter does not move: no drift while it is away.
        absent = token.why_absent()
        return HotpFacts(HotpCheck.ABSENT, absent.message, token.name)
    key = unseal_key(tpm, runtime_pcr)
    if isinstance(key, UnsealFailure):
        return HotpFacts(
            HotpCheck.NO_SECRET, "The HOTP code cannot be computed: " + key.message, token.name
        )
    with key:
        status = verify_with_token(key, TpmCounterStore(tpm), token)
    bootlog.stage("hotp", result=str(status.result))
    if not status.ok and status.detail:
        detail("hotp-check", f"{token.name}: {status.result}: {status.detail}")
    return HotpFacts(status.result, status.message, token.name)


@dataclass(frozen=True)
class TokenProgramming:
    """What programming the HOTP token did. ``ok``: it took the new secret
    and accepted its first code; else ``message`` says why not, in plain words."""

    ok: bool
    message: str
    wrong_pin: bool = False  # the token refused the admin PIN: worth asking again


def program_token(
    tpm: Tpm,
    secret: bytearray,
    admin_pin: bytearray,
    owner_passphrase: bytearray,
    settings: Settings,
) -> TokenProgramming | None:
    """Program the configured token with the new secret (None: no token is
    configured). Called before the secret is sealed: a refusal seals nothing."""
    from runtime.secrets.hotp.counter import TpmCounterStore

    token = configured_token(settings)
    if token is None:
        return None
    if not _present(token):
        # why_absent() speaks of the boot's check; at enrolment only "where is it" helps
        detail("hotp-program", token.why_absent().message)
        return TokenProgramming(
            False,
            (
                f"The HOTP token was not programmed: no {token.name} answered. Plug it in "
                "and try again, or go on without it."
            ),
        )
    try:
        store = TpmCounterStore.open_or_create(tpm, owner_passphrase)
    except CounterStoreError as err:
        return TokenProgramming(False, f"The HOTP token was not programmed: {err.message}")
    status = enrol_token(secret, store, token, admin_pin)
    bootlog.stage("hotp-enrolled", result=str(status.result))
    if status.result is HotpCheck.SUCCESS:
        return TokenProgramming(True, status.message)
    if status.detail:
        # the tool's own words (codes, PIN and secret blanked by the backend)
        detail("hotp-program", f"{token.name}: {status.result}: {status.detail}")
    return TokenProgramming(
        False, f"The HOTP token was not programmed: {status.message}", wrong_pin=status.wrong_pin
    )
