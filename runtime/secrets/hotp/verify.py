"""Checking the firmware with the HOTP token, and enrolling a token.

The computer's counter C is kept by a CounterStore (a TPM NV counter at
boot); the token keeps its own counter T and accepts hotp(c) for T <= c <
T + lookahead, after which T = c + 1.

Invariant: C only moves after the token has accepted a code, and then to
exactly the token's new counter. So C never passes T (unless the token
itself is set back; its look-ahead then covers a small gap), and after
every success C == T. What follows from it:

- a boot without the token (or with a broken one) leaves C alone: no drift,
  however many boots happen without it (Heads' counter moves every boot and
  the token refuses after a handful);
- T can only be ahead of C when a token's "yes" was lost (unplugged, power
  cut before the TPM counter moved) or the token was used elsewhere. Then
  the code for C is refused and one more code, for C + lookahead - 1, is
  tried: the token accepts it for any lead from 1 to lookahead - 1, and both
  sides meet again. A bigger lead is reported as a refusal and C stays;
- C never decreases (the store refuses it); a refused code moves nothing.

Codes are never shown, logged or put in a message. This does not stop a
fake token that collects codes from this computer and a fake firmware that
replays them to the real token later: HOTP itself cannot; the TOTP code on
the user's phone is the second witness.
"""

from __future__ import annotations

import time

from runtime.secrets.hotp.counter import CounterStore, CounterStoreError
from runtime.secrets.hotp.token import HotpCheck, HotpToken, TokenStatus
from runtime.secrets.totp import OtpKey, hotp_code


def _check(token: HotpToken, code: str, attempts: int, pause: float) -> TokenStatus:
    """One code, retried while the token answers ERROR (Heads tries 3 times)."""
    status = token.check(code)
    for _ in range(attempts - 1):
        if status.result is not HotpCheck.ERROR:
            break
        time.sleep(pause)
        status = token.check(code)
    return status


def _probe_offsets(lookahead: int, resync_windows: int) -> list[int]:
    """Offsets from C to try: C itself, then the last value of each following
    look-ahead window (each such probe covers a whole window of leads)."""
    window = max(1, lookahead)
    offsets = [0]
    for k in range(1, resync_windows + 1):
        if k * window - 1 > offsets[-1]:
            offsets.append(k * window - 1)
    return offsets


def verify_with_token(
    secret: bytearray | OtpKey,
    store: CounterStore,
    token: HotpToken,
    attempts: int = 3,
    *,
    resync_windows: int = 1,
    retry_pause: float = 0.5,
) -> TokenStatus:
    """Ask ``token`` to accept the code for the stored counter; advance the
    store only past what it accepted. Never raises for a device or TPM
    failure. The caller owns and wipes ``secret``."""
    counter = _ready_counter(token, store)
    if isinstance(counter, TokenStatus):
        return counter
    status = TokenStatus(HotpCheck.INVALID, "")
    for offset in _probe_offsets(token.lookahead, resync_windows):
        status = _check(token, _code(secret, counter + offset), attempts, retry_pause)
        if status.result is HotpCheck.SUCCESS:
            return _accepted(store, token, counter, offset, status)
        if status.result is not HotpCheck.INVALID:
            return _failed(token, status, attempts)
    return TokenStatus(
        HotpCheck.INVALID,
        (
            f"The {token.name} refused the HOTP code. This firmware does not hold the secret "
            "the token was programmed with (the firmware or its measured state changed, or "
            "this is another computer), or the token is more than "
            f"{max(1, token.lookahead) * resync_windows - 1} codes ahead. Do not trust this "
            "boot until you know why; if you changed the firmware yourself, generate a new "
            "TOTP/HOTP secret."
        ),
        status.detail,
    )


def _accepted(
    store: CounterStore, token: HotpToken, counter: int, offset: int, status: TokenStatus
) -> TokenStatus:
    message = f"HOTP: the {token.name} accepted the code."
    if offset:
        message += (
            " It was ahead of this computer (a boot was interrupted after the "
            "token checked a code, or it was used elsewhere); both agree again."
        )
    try:
        store.advance_to(counter + offset + 1)
    except CounterStoreError as err:
        # The firmware is verified; a lagging counter is caught up next boot.
        message += f" But the computer's counter was not saved: {err.message}"
    return TokenStatus(HotpCheck.SUCCESS, message, status.detail)


def _failed(token: HotpToken, status: TokenStatus, attempts: int) -> TokenStatus:
    if status.result is HotpCheck.ERROR:
        return TokenStatus(
            HotpCheck.ERROR,
            (
                f"Error checking the HOTP code ({attempts} tries): {status.message} The "
                f"computer's counter was not used; insert the {token.name} and retry."
            ),
            status.detail,
        )
    return status


def _ready_counter(token: HotpToken, store: CounterStore) -> int | TokenStatus:
    """The stored counter when the token answers; else why not (nothing moved)."""
    if not token.present():
        return token.why_absent()
    try:
        return store.read()
    except CounterStoreError as err:
        return TokenStatus(HotpCheck.ERROR, err.message)


def _code(secret: bytearray | OtpKey, counter: int) -> str:
    """The code from the raw secret, or from a key that keeps it to itself
    (runtime.secrets.totp.OtpKey keeps it in RAM)."""
    if isinstance(secret, bytearray):
        return hotp_code(secret, counter)
    return secret.hotp(counter)


def enrol_token(
    secret: bytearray,
    store: CounterStore,
    token: HotpToken,
    admin_pin: bytearray,
    attempts: int = 3,
    *,
    retry_pause: float = 0.5,
) -> TokenStatus:
    """Program ``token`` with ``secret`` at the store's counter, so both start
    equal, then have it check its first code to prove it took the secret
    (that code is used up and the store moves past it, as at every boot).
    The caller owns and wipes ``secret`` and ``admin_pin``."""
    counter = _ready_counter(token, store)
    if isinstance(counter, TokenStatus):
        return counter
    programmed = token.program(secret, counter, admin_pin)
    if not programmed.ok:
        return programmed
    status = _check(token, hotp_code(secret, counter), attempts, retry_pause)
    if not status.ok:
        return TokenStatus(
            HotpCheck.ERROR,
            (
                f"The {token.name} was programmed but then did not accept its first code: "
                f"{status.message} Generate the secret again; if that fails too, reset the "
                "token's HOTP slot."
            ),
            status.detail,
        )
    try:
        store.advance_to(counter + 1)
    except CounterStoreError as err:
        return TokenStatus(
            HotpCheck.SUCCESS,
            (
                f"The {token.name} was programmed and checked, but the computer's counter was "
                f"not saved: {err.message}"
            ),
            status.detail,
        )
    return TokenStatus(
        HotpCheck.SUCCESS,
        (
            f"The {token.name} was programmed with the new secret and accepted its first "
            "code. From now on it checks this firmware at every boot."
        ),
        status.detail,
    )
