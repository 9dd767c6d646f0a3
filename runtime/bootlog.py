"""The runtime's stage log: one line per boot stage, timestamped with the
kernel's boot clock, so the benchmark can tell where the time goes.

Lines always go to /run/runtime.log. The console sees them only when the
kernel command line holds the word ``runtime.trace`` (the QEMU test and
benchmark harness adds it; a user's boot never has it): the console is the
user's, and a burst of trace lines would scroll away what they must read.
With the trace on, the lines logged while the UI owns the screen are held
back and printed when it lets go. No secret is ever passed here.
"""

from __future__ import annotations

import sys
import time

LOG_PATH = "/run/runtime.log"
#: Read once, on the first line logged; tests point it at a file of their own.
CMDLINE_PATH = "/proc/cmdline"
#: The kernel parameter that puts the stage lines on the console too.
TRACE_PARAM = "runtime.trace"

_trace: bool | None = None  # None until the command line has been read
_echo = True  # False while the UI owns the screen
_lines: list[str] = []
_echoed = 0  # how many of _lines the console has seen


def since_boot() -> float:
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def trace_on() -> bool:
    """Whether the kernel command line asks for the trace on the console."""
    global _trace
    if _trace is None:
        try:
            with open(CMDLINE_PATH, encoding="utf-8", errors="replace") as f:
                _trace = TRACE_PARAM in f.read().split()
        except OSError:
            _trace = False  # no /proc (a host tool, a test): quiet
    return _trace


def stage(name: str, **fields: object) -> None:
    extra = "".join(f" {key}={value}" for key, value in fields.items())
    line = f"runtime: t={since_boot():.3f} stage={name}{extra}"
    _lines.append(line)
    try:
        with open(LOG_PATH, "a") as f:
            f.write(line + "\n")
    except OSError:
        pass  # a read-only or missing /run must not stop the boot
    if _echo and trace_on():
        _flush()


def _flush() -> None:
    global _echoed
    for pending in _lines[_echoed:]:
        print(pending, file=sys.stderr, flush=True)
    _echoed = len(_lines)


def echo_to_console(enabled: bool) -> None:
    """Off while the UI owns the screen. On again prints what was logged
    meanwhile, but only with the trace on: otherwise nothing is ever printed."""
    global _echo
    _echo = enabled
    if enabled and trace_on():
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
