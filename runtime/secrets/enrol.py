"""A new TOTP/HOTP secret: 20 bytes from the TPM's RNG mixed with the
kernel's (the TPM's cross the bus in clear), sealed to the board's seal PCRs
as the firmware left them, programmed into the HOTP token (where one is
configured and its admin PIN given) and then stored in the TPM's NV.

PCR 4 is sealed to the value the firmware's event log gives, not the current
one: the runtime may have extended it this boot (a recovery shell), and the
secret must unseal on the next normal boot, not on this one.

An NV index at the secret's place that this runtime did not define is
removed before anything else changes (runtime.tpm.nv.remove_foreign); when
only the locked platform authority could remove it, nothing is changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from runtime import bootlog
from runtime.error_detail import detail, plain
from runtime.secrets.ram import wipe_buffer
from runtime.tpm import handles
from runtime.tpm.errors import TpmError, WrongPassphrase
from runtime.tpm.pcr_roles import BOOT_MODE_PCR

if TYPE_CHECKING:
    from runtime.config import BoardConfig, Settings
    from runtime.tpm.connection import Tpm

SECRET_SIZE = 20  # 160 bits, as RFC 4226 recommends and Heads uses
# extended by the runtime itself (recovery), predicted from the log
EVENT_LOGGED_PCR = BOOT_MODE_PCR


@dataclass(frozen=True)
class EnrolFacts:
    """A new TOTP/HOTP secret was sealed: what the phone needs to enrol it.
    The caller shows it once and wipes ``secret``.

    With a HOTP admin PIN the token is programmed first and the secret sealed
    only once the token took it: ``secret`` None with ``token_refused`` means
    nothing was sealed (the previous secret stands), so asking again, or
    going on without the token (no PIN), is safe."""

    secret: bytearray | None
    problem: str = ""
    sealed_pcrs: tuple[int, ...] = ()
    hotp_message: str = ""  # what programming the HOTP token did
    wrong_passphrase: bool = False  # the owner passphrase was refused: ask again
    #: the HOTP token did not take the secret (absent, refused, failed): nothing sealed
    token_refused: bool = False
    #: with token_refused: the token refused the admin PIN (a typo?): ask for it again
    wrong_pin: bool = False


def seal_values(
    board: BoardConfig,
    current: Mapping[int, bytes],
    firmware: Mapping[int, bytes] | None,
    runtime_extended: set[int],
) -> dict[int, bytes] | str:
    """The PCR values to seal to, or why they cannot be known.

    ``current`` holds the TPM's values now; ``firmware`` the event log's replay;
    ``runtime_extended`` the PCRs this runtime has extended this boot.
    """
    values = {pcr: current[pcr] for pcr in board.seal_pcrs}
    if EVENT_LOGGED_PCR in values:
        if firmware is not None and EVENT_LOGGED_PCR in firmware:
            values[EVENT_LOGGED_PCR] = firmware[EVENT_LOGGED_PCR]
        elif EVENT_LOGGED_PCR in runtime_extended:
            return (
                "PCR 4 was extended during this boot and the firmware's event log, "
                "which gives its value for a normal boot, cannot be read: reboot and "
                "generate the secret before anything else."
            )
    others = sorted(runtime_extended & set(values) - {EVENT_LOGGED_PCR})
    if others:
        return f"PCR {others[0]} was extended by this runtime: the secret cannot be sealed to it."
    return values


def generate_and_seal(
    tpm: Tpm,
    board: BoardConfig,
    firmware: Mapping[int, bytes] | None,
    owner_passphrase: bytearray,
    hotp_admin_pin: bytearray | None,
    settings: Settings,
) -> EnrolFacts:
    """Generate, check the owner passphrase, program the HOTP token (when a PIN
    is given), and only then store the sealed secret: a typo or a token that
    refuses leaves the TPM's secret as it was, so the user can simply retry."""
    from runtime.secrets.hotp_check import program_token
    from runtime.tpm import nv, ownership, rng, sealing
    from runtime.tpm.pcrs import read_pcrs

    current = read_pcrs(tpm, board.seal_pcrs)
    extended = {m.pcr for m in tpm.log.entries}
    values = seal_values(board, current, firmware, extended)
    if isinstance(values, str):
        return EnrolFacts(None, values)
    secret = rng.secret_bytes(tpm, SECRET_SIZE)  # never the bus's bytes alone
    try:
        # Nothing is stored by either call: a wrong passphrase stops here,
        # before the token is touched.
        ownership.check_owner_passphrase(tpm, bytes(owner_passphrase))
        sealed = sealing.seal(tpm, bytes(secret), board.seal_pcrs, pcr_values=values)
    except WrongPassphrase as err:
        wipe_buffer(secret)
        return EnrolFacts(None, plain("enrol-owner", err, err.plain()), wrong_passphrase=True)
    except (TpmError, ValueError) as err:
        wipe_buffer(secret)
        return EnrolFacts(
            None, plain("enrol-seal", err, "The secret could not be sealed. " + _words(err))
        )
    try:
        # Before the token: a slot that cannot be ours stops here, nothing changed.
        # An index found there that this runtime did not define is never written
        # into: its definer may overwrite what it holds (one created with the
        # platform's authorization even survives a TPM reset).
        removed = nv.remove_foreign(
            tpm, handles.TOTP_SEALED_NV, nv.SEALED_BLOB, bytes(owner_passphrase)
        )
    except (TpmError, ValueError) as err:
        wipe_buffer(secret)
        return EnrolFacts(
            None,
            plain("enrol-slot", err, "The secret could not be stored in the TPM. " + _words(err)),
            wrong_passphrase=isinstance(err, WrongPassphrase),
        )
    if removed is not None:
        detail("enrol-slot", f"removed an index this runtime did not define: {removed}")
    hotp_message = ""
    if hotp_admin_pin is not None:
        programmed = program_token(tpm, secret, hotp_admin_pin, owner_passphrase, settings)
        if programmed is not None and not programmed.ok:
            wipe_buffer(secret)
            return EnrolFacts(
                None,
                f"{programmed.message} Nothing was sealed: the previous secret stays in place.",
                token_refused=True,
                wrong_pin=programmed.wrong_pin,
            )
        hotp_message = programmed.message if programmed is not None else ""
    try:
        # One NV write: a power cut leaves the old secret or the new one.
        nv.store_sealed(tpm, sealed, handles.TOTP_SEALED_NV, bytes(owner_passphrase))
    except (TpmError, ValueError) as err:
        wipe_buffer(secret)
        problem = "The secret could not be stored in the TPM. " + _words(err)
        if hotp_message:
            problem += (
                " The HOTP token already holds the new secret: generate the "
                "secret again so that the TPM holds it too."
            )
        return EnrolFacts(
            None,
            plain("enrol-store", err, problem),
            wrong_passphrase=isinstance(err, WrongPassphrase),
        )
    bootlog.stage("secret-sealed", pcrs=",".join(str(p) for p in board.seal_pcrs))
    return EnrolFacts(secret, sealed_pcrs=tuple(board.seal_pcrs), hotp_message=hotp_message)


def _words(err: Exception) -> str:
    """A TPM error's plain words; a ValueError here is this runtime's fault."""
    if isinstance(err, TpmError):
        return err.plain()
    return "This is a fault in the runtime; the details are in its log."
