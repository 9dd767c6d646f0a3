"""The technical side of a failure: what the screen leaves out.

The screens say what failed in plain words and what to do next; the
exception behind it (a command's exit status and last lines, a TPM
response code, an NV index, an errno) goes here instead: appended to the
runtime's log (runtime.bootlog.LOG_PATH) and kept in memory, the last few,
so the UI can show them when asked (``recent_details``).

Never pass a secret here. ``describe`` names only a command's program, never
its arguments (a PIN or a secret may travel there), and never its stdout.
"""

from __future__ import annotations

import collections
import os
import sys

from runtime import bootlog

#: how many details stay in memory for the UI (older ones are in the log only)
MAX_KEPT = 16
#: one detail is a line, not a dump: a command's stderr can be long
MAX_CHARS = 600
_STDERR_LINES = 3
_CAUSE_DEPTH = 3

_recent: collections.deque[str] = collections.deque(maxlen=MAX_KEPT)


def _one_line(text: str) -> str:
    """Printable, on one line, bounded: a detail can quote a disk or a tool."""
    flat = " | ".join(part.strip() for part in text.splitlines() if part.strip())
    shown = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in flat)
    return shown if len(shown) <= MAX_CHARS else shown[: MAX_CHARS - 3] + "..."


def _program(cmd: object) -> str:
    """A command's program name only: its arguments may carry secrets."""
    if isinstance(cmd, (list, tuple)) and cmd:
        first = cmd[0]
    elif isinstance(cmd, (str, bytes, os.PathLike)):
        first = cmd
    else:
        return "a command"
    name = os.fsdecode(first) if isinstance(first, (str, bytes, os.PathLike)) else str(first)
    return os.path.basename(name.split()[0]) if name.strip() else "a command"


def _stderr_tail(stderr: object) -> str:
    if isinstance(stderr, bytes):
        stderr = stderr.decode("utf-8", "replace")
    if not isinstance(stderr, str):
        return ""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return " | ".join(lines[-_STDERR_LINES:])


def describe(err: BaseException) -> str:
    """An exception as one technical line for the log (and its causes)."""
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen and len(parts) < _CAUSE_DEPTH:
        seen.add(id(current))
        parts.append(_describe_one(current))
        current = current.__cause__
    return _one_line(" <- ".join(parts))


def _describe_one(err: BaseException) -> str:
    # not imported here: the import is not free at boot, and without it loaded
    # no error can be one of its own
    subprocess = sys.modules.get("subprocess")
    if subprocess is not None and isinstance(err, subprocess.CalledProcessError):
        said = _stderr_tail(err.stderr)
        return f"{_program(err.cmd)} exited with status {err.returncode}" + (
            f": {said}" if said else ""
        )
    if subprocess is not None and isinstance(err, subprocess.TimeoutExpired):
        return f"{_program(err.cmd)} did not finish within {err.timeout:g} s"
    text = f"{type(err).__name__}: {err}"
    details = getattr(err, "details", None)  # runtime.tpm.errors.TpmError: the code
    if callable(details):
        extra = details()
        if isinstance(extra, str) and extra and extra not in text:
            text += f" [{extra}]"
    return text


def detail(where: str, text: str) -> None:
    """Record the technical detail of a failure shown in plain words.
    ``where`` names the place (e.g. "sign-boot"); ``text`` holds no secret."""
    line = f"{where}: {_one_line(text)}"
    _recent.append(line)
    bootlog.detail(line)


def plain(where: str, err: BaseException, sentence: str) -> str:
    """Log ``err`` under ``where`` and give back ``sentence``, the screen's words:
    ``return Facts(problem=plain("seal", err, "The secret was not sealed."))``."""
    detail(where, describe(err))
    return sentence


def recent_details() -> tuple[str, ...]:
    """The last details recorded, oldest first (at most MAX_KEPT)."""
    return tuple(_recent)


def forget() -> None:
    """Drop the details kept in memory (the log keeps them)."""
    _recent.clear()
