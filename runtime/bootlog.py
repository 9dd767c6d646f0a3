"""The runtime's stage log: one line per boot stage, timestamped with the
kernel's boot clock, so the benchmark can tell where the time goes.

Lines always go to /run/runtime.log. The console sees them only when the
kernel command line holds the word ``runtime.trace`` (the QEMU test and
benchmark harness adds it; a user's boot never has it), or when the owner's
settings ask for them (CONFIG_QUIET_MODE=n: the stages; CONFIG_DEBUG_OUTPUT=y:
the failures' technical details too): the console is the user's, and a burst
of trace lines would scroll away what they must read. The lines logged while
the UI owns the screen are held back and printed when it lets go. No secret
is ever passed here.
"""

from __future__ import annotations

import enum
import sys
import time

LOG_PATH = "/run/runtime.log"
#: Read once, on the first line logged; tests point it at a file of their own.
CMDLINE_PATH = "/proc/cmdline"
#: The kernel parameter that puts the stage lines on the console too.
TRACE_PARAM = "runtime.trace"


class ConsoleLevel(enum.IntEnum):
    """What the owner's settings put on the console (the log has everything)."""

    QUIET = 0
    STAGES = 1
    DEBUG = 2  # the stages and each failure's technical detail


_trace: bool | None = None  # None until the command line has been read
_level = ConsoleLevel.QUIET
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


def set_console_level(level: ConsoleLevel) -> None:
    """From the settings, once they are read; lines logged before it that the
    console was not shown wait for the next flush."""
    global _level
    _level = level
    if _echo and _console_on():
        _flush()


def _console_on() -> bool:
    return trace_on() or _level >= ConsoleLevel.STAGES


def _printable(text: str) -> str:
    """A control character would drive the terminal the lines reach."""
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


def stage(name: str, **fields: object) -> None:
    extra = _printable("".join(f" {key}={value}" for key, value in fields.items()))
    _log_line(f"runtime: t={since_boot():.3f} stage={name}{extra}", to_console=True)


def detail(text: str) -> None:
    """A failure's technical detail (runtime.error_detail): the log, and the
    console at the debug level only."""
    _log_line(
        f"runtime: t={since_boot():.3f} detail {text}", to_console=_level >= ConsoleLevel.DEBUG
    )


def _log_line(line: str, to_console: bool) -> None:
    if to_console:
        _lines.append(line)
    try:
        with open(LOG_PATH, "a", encoding="utf-8", errors="replace") as f:
            f.write(line + "\n")
    except OSError:
        pass  # a read-only or missing /run must not stop the boot
    if to_console and _echo and _console_on():
        _flush()


def _flush() -> None:
    global _echoed
    for pending in _lines[_echoed:]:
        print(pending, file=sys.stderr, flush=True)
    _echoed = len(_lines)


def echo_to_console(enabled: bool) -> None:
    """Off while the UI owns the screen. On again prints what was logged
    meanwhile, but only with the trace or the owner's console level on: quiet,
    nothing is ever printed."""
    global _echo
    _echo = enabled
    if enabled and _console_on():
        _flush()


def report_crash(err: BaseException) -> None:
    """An unexpected error: plain words on the console, the traceback in the log only."""
    import traceback

    try:
        with open(LOG_PATH, "a") as f:
            traceback.print_exception(err, file=f)
    except OSError:
        pass
    print(
        f"\nThe runtime stopped on an internal error ({type(err).__name__}: {err}).\n"
        f"Nothing was changed. The details are in {LOG_PATH}.",
        file=sys.stderr,
        flush=True,
    )
