"""Whether the recovery shell may open, and in which order its guards run.

The order is the security: PCR 4 is extended first, so from then on nothing
sealed to the normal boot (TOTP/HOTP secret, disk key) unseals; then the
TPM's platform hierarchy is locked, so the shell cannot leave in the TPM
what survives a TPM reset (an NV index at the TOTP secret's place); then the
secrets already in RAM are wiped; only then is the owner asked to
authenticate. A failed or abandoned authentication therefore leaves a
machine that can no longer unseal anything until it reboots. Any failure
closes the gate: no shell.

Pure ordering logic: the TPM, the RAM store and the signature check come in
as callables, so every branch is unit-tested with fakes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from runtime.recovery.auth import AuthResult

PCR_NOTE = (
    "PCR 4 now records 'recovery': the TOTP/HOTP secret and the disk key "
    "cannot be unsealed until the next boot."
)
EXIT_HINT = "Type exit to leave the shell; only a fresh boot lets the secrets unseal again."
RESTART = "No shell is opened. Restart the machine."


@dataclass(frozen=True)
class GateResult:
    allowed: bool
    lines: tuple[str, ...]  # what the user is told, in order


def _describe(err: BaseException) -> str:
    return str(err) or type(err).__name__


def _lock_failure(err: BaseException) -> str:
    """The words for a platform hierarchy left unlocked: a TPM error's own plain
    words (runtime.tpm.errors.PlatformNotLocked.plain), else the exception's."""
    words = getattr(err, "plain", None)
    said = words() if callable(words) else None
    if isinstance(said, str) and said:
        return said
    return (
        f"The TPM's platform authority could not be locked ({_describe(err)}): the "
        "shell could leave something in the TPM that survives a TPM reset."
    )


def open_recovery(
    reason: str,
    *,
    restricted: bool,
    extend_pcr4: Callable[[], None],
    lock_platform: Callable[[], object],
    wipe_secrets: Callable[[], int],
    owner_key: str | None,
    authenticate: Callable[[], AuthResult],
    key_required: bool = False,
) -> GateResult:
    """Run the guards in order and say whether the shell may open.

    ``owner_key`` is the owner's public key file, or None when no owner key
    is installed (then nobody is asked to authenticate, as in Heads), unless
    ``key_required`` (CONFIG_HAVE_GPG_KEY_BACKUP=y): then no shell opens.
    """
    head = f"Recovery shell requested: {reason}"
    if key_required and owner_key is None:
        return GateResult(
            False,
            (
                head,
                "The settings ask for the owner's key before the recovery shell "
                "(CONFIG_HAVE_GPG_KEY_BACKUP=y), and the firmware holds no owner key, so "
                "nobody can be authenticated.",
                "Nothing was changed. Restart the machine; put the owner's key in the firmware "
                "to use the shell.",
            ),
        )
    if restricted:
        # Nothing is extended or wiped: the machine is only to be restarted.
        return GateResult(
            False,
            (
                head,
                "Restricted boot is on, so the recovery shell is disabled.",
                "Nothing was changed. Restart the machine; the shell can be allowed again "
                "by turning restricted boot off in the configuration.",
            ),
        )
    # Every failure below fails closed; the reason is shown, never a traceback.
    try:
        extend_pcr4()
    except Exception as err:
        return GateResult(
            False,
            (
                head,
                f"PCR 4 could not be extended to record the recovery shell ({_describe(err)}).",
                "Without that record the shell could unseal this boot's secrets. " + RESTART,
            ),
        )
    try:
        lock_platform()
    except Exception as err:
        return GateResult(False, (head, PCR_NOTE, _lock_failure(err), RESTART))
    try:
        wiped = wipe_secrets()
    except Exception as err:
        return GateResult(
            False,
            (
                head,
                PCR_NOTE,
                f"The secrets in RAM could not be wiped ({_describe(err)}); a shell could "
                "read them. No shell is opened. Power off to clear RAM.",
            ),
        )
    wiped_line = f"{wiped} secret file(s) were wiped from RAM."
    if owner_key is None:
        auth_line = "No owner key is installed, so no authentication is asked for."
    else:
        try:
            auth = authenticate()
        except Exception as err:
            auth = AuthResult(False, f"the check itself failed ({_describe(err)}).")
        if not auth.ok:
            return GateResult(
                False,
                (
                    head,
                    PCR_NOTE,
                    wiped_line,
                    f"Owner authentication failed: {auth.reason}",
                    RESTART,
                ),
            )
        auth_line = f"Owner authenticated: {auth.reason}"
    return GateResult(True, (head, PCR_NOTE, wiped_line, auth_line, EXIT_HINT))
