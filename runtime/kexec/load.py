"""Running kexec: load a plan, or unload it. The loaded kernel is started by
/init (``kexec -e``) once the runtime has exited, not from here."""

from __future__ import annotations

import contextlib
import os
import subprocess

from runtime.error_detail import describe, detail
from runtime.kexec.errors import KexecError
from runtime.kexec.plan import INITRD_ALIGN, KexecPlan

KEXEC = "kexec"
TIMEOUT = 120  # loading a large initrd from slow USB media takes tens of seconds
_CHUNK = 1 << 20
# Replace, never follow, whatever sits at the output path.
_OUT_FLAGS = os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC


def write_initrd(plan: KexecPlan) -> int:
    """Concatenate the plan's initrd parts into its output file (mode 0600, as
    a part may carry a disk key); returns the bytes written. No-op without parts."""
    if not plan.initrd_parts or plan.initrd_out is None:
        return 0
    out = plan.initrd_out
    try:
        if os.path.lexists(out):
            os.unlink(out)
        fd = os.open(out, _OUT_FLAGS, 0o600)
    except OSError as err:
        raise KexecError(f"Cannot create the combined initrd {out}: {err.strerror}.") from err
    written = 0
    try:
        with os.fdopen(fd, "wb") as dest:
            for part in plan.initrd_parts:
                with open(part, "rb") as src:
                    while chunk := src.read(_CHUNK):
                        dest.write(chunk)
                        written += len(chunk)
                pad = -written % INITRD_ALIGN
                dest.write(bytes(pad))
                written += pad
    except OSError as err:
        with contextlib.suppress(OSError):
            os.unlink(out)  # a truncated initrd must not be loaded by a later retry
        raise KexecError(f"Cannot write the combined initrd {out}: {err.strerror}.") from err
    return written


#: what to do when kexec refuses, by what it was asked
_NEXT_STEP = {
    "-l": "The entry's kernel or initrd may not be one this machine can start: choose "
    "another entry, or check the entry from the recovery shell.",
}
_RETRY = "Restart and try again."


def _run(binary: str, args: list[str], action: str, timeout: float) -> None:
    try:
        subprocess.run(
            [binary, *args],
            check=True,
            timeout=timeout,
            capture_output=True,
            stdin=subprocess.DEVNULL,
        )
    except FileNotFoundError as err:
        raise KexecError(f"{action} failed: the kexec program {binary} is missing.") from err
    except subprocess.TimeoutExpired as err:
        raise KexecError(f"{action} failed: kexec did not finish within {timeout} s.") from err
    except subprocess.CalledProcessError as err:
        # kexec's own words and exit status are for the log: the screen says what to do
        detail("kexec", describe(err))
        said = "" if (err.stderr or b"").strip() else " without giving a reason"
        next_step = _NEXT_STEP.get(args[0] if args else "", _RETRY)
        raise KexecError(f"{action} failed: kexec refused it{said}. {next_step}") from err
    except OSError as err:
        raise KexecError(f"{action} failed: cannot run {binary} ({err.strerror}).") from err


def load(plan: KexecPlan, *, kexec_binary: str = KEXEC, timeout: float = TIMEOUT) -> None:
    """Write the combined initrd if the plan has one, then ``kexec -l``."""
    write_initrd(plan)
    _run(kexec_binary, list(plan.args), "Loading the kernel", timeout)


def unload(*, kexec_binary: str = KEXEC, timeout: float = TIMEOUT) -> None:
    """``kexec -u``: forget a loaded kernel (after the user backs out)."""
    _run(kexec_binary, ["-u"], "Unloading the kernel", timeout)
