"""The runtime's stage log: one line per boot stage, timestamped with the
kernel's boot clock, so the benchmark can tell where the time goes.

Lines go to /run/runtime.log always and to the console until the UI takes
it over. No secret is ever passed here.
"""

from __future__ import annotations

import sys
import time

LOG_PATH = "/run/runtime.log"
_echo = True
_lines: list[str] = []
_echoed = 0  # how many of _lines the console has seen


def since_boot() -> float:
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def stage(name: str, **fields: object) -> None:
    extra = "".join(f" {key}={value}" for key, value in fields.items())
    line = f"runtime: t={since_boot():.3f} stage={name}{extra}"
    _lines.append(line)
    try:
        with open(LOG_PATH, "a") as f:
            f.write(line + "\n")
    except OSError:
        pass  # a read-only or missing /run must not stop the boot
    if _echo:
        _flush()


def _flush() -> None:
    global _echoed
    for pending in _lines[_echoed:]:
        print(pending, file=sys.stderr, flush=True)
    _echoed = len(_lines)


def echo_to_console(enabled: bool) -> None:
    """Off while the UI owns the screen; on again prints what was logged meanwhile."""
    global _echo
    _echo = enabled
    if enabled:
        _flush()


def report_crash(err: BaseException) -> None:
    """An unexpected error: plain words on the console, the traceback in the log only."""
    import traceback

    try:
        with open(LOG_PATH, "a") as f:
            traceback.print_exception(err, file=f)
    except OSError:
        pass
    print(f"\nThe runtime stopped on an internal error ({type(err).__name__}: {err}).\n"
          f"Nothing was changed. The details are in {LOG_PATH}.", file=sys.stderr, flush=True)
