"""DevicePlatform's TPM ownership: the dictionary-attack lockout (its state,
clearing it with the lockout passphrase) and resetting the TPM to a new
owner, each failure turned into facts in plain words."""

from __future__ import annotations

from typing import TYPE_CHECKING

from runtime import bootlog
from runtime.error_detail import describe, detail, plain
from runtime.state.platform import ClearLockoutFacts, LockoutFacts, LockoutOutcome, ResetFacts
from runtime.tpm import ownership
from runtime.tpm.errors import (
    LockoutPassphraseBlocked,
    TpmError,
    WrongLockoutPassphrase,
    WrongPassphrase,
)

if TYPE_CHECKING:
    from runtime.tpm.connection import Tpm

#: a reset with the storage key pinned would make a key the pin then refuses
PINNED_RESET_PROBLEM = (
    "This firmware pins the TPM's storage key (CONFIG_TPM_PRIMARY_NAME), and a "
    "reset makes a new one that the pin refuses, so no new secret could be "
    "sealed. Remove CONFIG_TPM_PRIMARY_NAME from your config.user, flash the "
    "rebuilt firmware and reset the TPM then; pin the new key afterwards. "
    "Nothing was changed."
)


def reset_needs_current_passphrase(tpm: Tpm) -> bool:
    try:
        return ownership.clear_needs_lockout_passphrase(tpm)
    except TpmError as err:
        detail("tpm-reset", describe(err))
        return True  # ask: a wrong guess here costs the user one try, not the TPM


def tpm_lockout(tpm: Tpm | None) -> LockoutFacts:
    if tpm is None:
        return LockoutFacts(problem="No TPM answered.")
    try:
        state = ownership.da_state(tpm)
    except TpmError as err:
        return LockoutFacts(problem=plain("tpm-lockout", err, err.plain()))
    return LockoutFacts(
        locked_out=state.in_lockout,
        failures=state.failures,
        max_tries=state.max_tries,
        recovery_seconds=state.recovery_seconds,
        lockout_recovery_seconds=state.lockout_recovery_seconds,
        passphrase_set=state.lockout_auth_set,
    )


def clear_lockout(tpm: Tpm, lockout_passphrase: bytearray | None) -> ClearLockoutFacts:
    outcome = LockoutOutcome.CLEARED
    try:
        ownership.clear_lockout(
            tpm, None if lockout_passphrase is None else bytes(lockout_passphrase)
        )
    except WrongLockoutPassphrase as err:
        if err.rc is None:  # refused before any try: the TPM waits for nothing
            return ClearLockoutFacts(LockoutOutcome.FAILED, plain("tpm-lockout", err, err.plain()))
        detail("tpm-lockout", describe(err))
        outcome = LockoutOutcome.WRONG_PASSPHRASE
    except LockoutPassphraseBlocked as err:
        detail("tpm-lockout", describe(err))
        outcome = LockoutOutcome.BLOCKED
    except TpmError as err:
        return ClearLockoutFacts(
            LockoutOutcome.FAILED,
            plain("tpm-lockout", err, "The lockout was not cleared. " + err.plain()),
        )
    bootlog.stage("tpm-lockout", outcome=str(outcome))
    if outcome is LockoutOutcome.CLEARED:
        return ClearLockoutFacts(outcome)
    # the wait after a wrong one is the TPM's own setting (Heads' may differ)
    wait = tpm_lockout(tpm)
    return ClearLockoutFacts(outcome, lockout_recovery_seconds=wait.lockout_recovery_seconds)


def reset_tpm(
    tpm: Tpm, key_type: str, owner_passphrase: bytearray, current_lockout: bytearray | None
) -> ResetFacts:
    """Clear the TPM and take ownership with a new ``key_type`` storage key
    (CONFIG_PRIMARY_KEY_TYPE: only a reset makes a new one)."""

    if tpm.identity_pinned:
        # refused before clearing, not half-way through
        return ResetFacts(problem=PINNED_RESET_PROBLEM)
    try:
        used = ownership.reset_tpm(
            tpm,
            bytes(owner_passphrase),
            None if current_lockout is None else bytes(current_lockout),
            key_type=key_type,
        )
    except WrongPassphrase as err:
        detail("tpm-reset", describe(err))
        if current_lockout is None:
            return ResetFacts(needs_lockout_passphrase=True)
        return ResetFacts(
            problem=(
                "The TPM refused the current passphrase, and this firmware does not allow "
                "clearing the TPM without it. The TPM now refuses every try until the "
                "machine restarts: reboot (Options > Reboot), then reset the TPM again "
                "with the passphrase set at its last reset. Nothing was changed."
            )
        )
    except ownership.OwnershipIncomplete as err:
        return ResetFacts(problem=plain("tpm-reset", err, err.plain()), cleared=True)
    except TpmError as err:
        return ResetFacts(problem=plain("tpm-reset", err, "The TPM was not reset. " + err.plain()))
    except ValueError as err:
        if not ownership.key_type_supported(tpm, key_type):
            return ResetFacts(
                problem=plain(
                    "tpm-reset",
                    err,
                    (
                        f"This TPM cannot make the {key_type.upper()} storage key the settings "
                        "ask for (CONFIG_PRIMARY_KEY_TYPE). Nothing was changed: set "
                        "CONFIG_PRIMARY_KEY_TYPE to the other type."
                    ),
                )
            )
        # reset_tpm checks the length before clearing; the steps ask for 8 to 32
        return ResetFacts(
            problem=plain(
                "tpm-reset",
                err,
                (
                    "The new owner passphrase was not accepted: the TPM takes 1 to 32 bytes "
                    "(a letter with an accent takes two). Nothing was changed: reset the TPM "
                    "again with a shorter one."
                ),
            )
        )
    bootlog.stage("tpm-reset", hierarchy=used)
    return ResetFacts()
