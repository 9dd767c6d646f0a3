"""`python3.11 -I -m runtime.recovery --reason TEXT`: run by /init before it
opens a recovery shell (after the runtime crashed, or when the runtime exits
asking for the shell). Exit status 0: open the shell; anything else: do not.

Talks to the console over plain stdin/stdout: no UI is running any more.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from runtime import bootlog
from runtime.error_detail import describe, detail
from runtime.image_files import OWNER_KEY_PATH as OWNER_KEY
from runtime.recovery.auth import AuthResult, authenticate
from runtime.recovery.gate import open_recovery
from runtime.recovery.prompt import (
    console_columns,
    console_prompter,
    drain_console,
    layout_width,
    wrap_lines,
)
from runtime.secrets.ram import SECRET_DIR, SecretDir

RESTRICTED_FLAG = "/etc/runtime/restricted"
RESTRICTED_ENV = "RUNTIME_RESTRICTED_BOOT"


@dataclass(frozen=True)
class Paths:
    """Where the gate looks; tests point these into a temporary directory."""

    secret_dir: str = SECRET_DIR
    owner_key: str = OWNER_KEY
    restricted_flag: str = RESTRICTED_FLAG
    tcti: str | None = None  # None: the kernel's TPM (or RUNTIME_TPM_TCTI)


def _settings_restricted() -> bool:
    from runtime.config import load_settings

    return load_settings().settings.restricted_boot


def _settings_key_required() -> bool:
    from runtime.config import load_settings

    return bool(load_settings().settings.have_gpg_key_backup)


def _settings_pin() -> bytes | None:
    from runtime.config import load_settings

    return load_settings().primary_name_pin()


def restricted_mode(
    flag_file: str = RESTRICTED_FLAG,
    environ: Mapping[str, str] = os.environ,
    from_settings: Callable[[], bool] = _settings_restricted,
) -> bool:
    """True when the recovery shell is forbidden: CONFIG_RESTRICTED_BOOT=y in the
    image's settings (as in Heads), or the flag file / environment override.

    Every source can only turn restriction on, never off.
    """
    if os.path.exists(flag_file) or environ.get(RESTRICTED_ENV, "") in ("y", "yes", "1"):
        return True
    return from_settings()


def extend_pcr4(tcti: str | None = None) -> None:
    """Record the recovery shell in PCR 4 as Heads does (sha256 of "recovery")."""
    from runtime.tpm.connection import Tpm
    from runtime.tpm.log_journal import RUNTIME_JOURNAL
    from runtime.tpm.pcr_roles import BOOT_MODE_PCR, BootMode
    from runtime.tpm.pcrs import extend_string

    # the runtime started after the shell reads this extend back from the journal
    tpm = Tpm.connect(tcti, journal=RUNTIME_JOURNAL if tcti is None else None)
    try:
        extend_string(tpm, BOOT_MODE_PCR, BootMode.RECOVERY, "recovery-shell")
    finally:
        tpm.close()


#: Said when the TPM is not the one the owner's settings pin (the gate then
#: adds "Restart the machine").
IDENTITY_CHANGED = (
    "TPM identity changed: the TPM's storage key is not the one this firmware was set up "
    "with (a different TPM, a reset done elsewhere, or someone on the TPM bus), so its "
    "platform authority was not locked: no shell."
)
IDENTITY_HINT = (
    "If you reset or replaced the TPM yourself, put its new storage key's name "
    "in CONFIG_TPM_PRIMARY_NAME and flash the rebuilt firmware."
)


def lock_platform(
    tcti: str | None = None, pinned_name: Callable[[], bytes | None] = _settings_pin
) -> str:
    """Lock the TPM's platform hierarchy (runtime.kexec.finalize.lock_platform):
    open, it lets the shell define NV indexes that survive a TPM reset, such as
    one at the TOTP secret's place. PlatformNotLocked if it cannot be.

    The lock's new value crosses the bus in a session salted with the storage
    key, so only the key the owner pins (CONFIG_TPM_PRIMARY_NAME) will do, as
    for the main runtime: TpmIdentityChanged, with words of its own, if the TPM
    holds another or none."""
    from runtime.kexec.finalize import describe_lock
    from runtime.kexec.finalize import lock_platform as lock
    from runtime.tpm.connection import Tpm
    from runtime.tpm.errors import PlatformNotLocked, TpmError, TpmIdentityChanged

    try:
        tpm = Tpm.connect(tcti, pinned_primary_name=pinned_name())
        try:
            # checked first: inside the lock it would be said as a lock failure
            tpm.check_identity()
            locked = lock(tpm)
        finally:
            tpm.close()
    except TpmError as err:
        detail("recovery", f"platform hierarchy not locked: {describe(err)}")
        if isinstance(err, TpmIdentityChanged):
            raise TpmIdentityChanged(
                err.message, rc=err.rc, summary=IDENTITY_CHANGED, hint=IDENTITY_HINT
            ) from err
        if isinstance(err, PlatformNotLocked):
            raise
        raise PlatformNotLocked(
            f"The platform hierarchy was not locked: {err.message}", rc=err.rc
        ) from err
    bootlog.stage("platform-lock", outcome=str(locked))
    return describe_lock(locked)


def _console_authenticate(paths: Paths) -> AuthResult:
    try:
        # The temporary GnuPG homes (public keys only) live in RAM, in the wiped directory.
        return authenticate(
            console_prompter(),
            paths.owner_key,
            work_dir=paths.secret_dir,
            log=lambda line: detail("recovery", line),
        )
    except Exception as err:
        # the gate says it in a line and opens no shell; the log keeps the detail
        detail("recovery", f"the check failed: {describe(err)}")
        raise
    finally:
        # What was typed or pasted after the last answer must not reach the
        # shell or the runtime started next.
        drain_console()


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python3.11 -m runtime.recovery",
        description="Decide whether /init may open a recovery shell (exit 0: yes).",
    )
    parser.add_argument(
        "--reason", default="no reason was given", help="why the shell is wanted, shown to the user"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None, paths: Paths | None = None) -> int:
    where = paths or Paths()
    args = _parse(sys.argv[1:] if argv is None else argv)
    owner_key = where.owner_key if os.path.exists(where.owner_key) else None
    try:
        result = open_recovery(
            args.reason,
            restricted=restricted_mode(where.restricted_flag),
            extend_pcr4=lambda: extend_pcr4(where.tcti),
            lock_platform=lambda: lock_platform(where.tcti),
            wipe_secrets=SecretDir(where.secret_dir).wipe_all,
            owner_key=owner_key,
            authenticate=lambda: _console_authenticate(where),
            key_required=_settings_key_required(),
        )
    except KeyboardInterrupt:
        print("\nrecovery: interrupted; no shell is opened.", flush=True)
        return 1
    width = layout_width(console_columns())
    for line in result.lines:
        print("\n".join(wrap_lines(line, width)))
    sys.stdout.flush()
    bootlog.stage("recovery-gate", allowed="yes" if result.allowed else "no")
    return 0 if result.allowed else 1


if __name__ == "__main__":
    sys.exit(main())
