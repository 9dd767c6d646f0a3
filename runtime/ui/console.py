"""Make the console usable by a full-screen UI, and find what it can show.

On a serial console (ttyS0) the kernel does not know the far terminal's size and
reports 0 columns and 0 rows; urwid would then lay out a 0x0 screen. We cannot ask
the terminal reliably over a bare serial line, so the board configuration gives a size.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import struct
import termios
from collections.abc import Mapping

# struct winsize: rows, columns, x pixels, y pixels (unsigned short each).
_WINSIZE = struct.Struct("HHHH")
_MAX_SIDE = 0xFFFF
# Terminals with no UTF-8, whatever the locale says.
_ASCII_TERMS = frozenset({"vt100", "vt102", "dumb"})


def prepare_console(fd: int, columns: int, rows: int) -> tuple[int, int]:
    """Give the tty on ``fd`` a size if it has none; return (columns, rows) in force.

    A size already set (a real terminal, or an earlier call) is kept. If ``fd`` is not
    a tty, or the size cannot be read or set, the given size is returned: the UI then
    lays out for it, which is the best guess there is.
    """
    if not (0 < columns <= _MAX_SIDE and 0 < rows <= _MAX_SIDE):
        raise ValueError(f"console size must be positive, got {columns}x{rows}")
    try:
        packed = fcntl.ioctl(fd, termios.TIOCGWINSZ, bytes(_WINSIZE.size))
    except (OSError, ValueError):  # not a tty, closed or negative fd
        return columns, rows
    current_rows, current_columns, _, _ = _WINSIZE.unpack(packed)
    if current_rows and current_columns:
        return current_columns, current_rows
    with contextlib.suppress(OSError):  # e.g. a tty that refuses it: lay out for it anyway
        fcntl.ioctl(fd, termios.TIOCSWINSZ, _WINSIZE.pack(rows, columns, 0, 0))
    return columns, rows


def ensure_term_env() -> str:
    """Set TERM to "linux" when it is unset or "dumb"; return TERM.

    The kernel starts init with TERM=linux, but a shell or a test harness may leave it
    unset or "dumb", and urwid's raw display picks its escape sequences from TERM.
    """
    term = os.environ.get("TERM", "")
    if term in ("", "dumb"):
        term = os.environ["TERM"] = "linux"
    return term


def detect_unicode(environ: Mapping[str, str] | None = None) -> bool:
    """True when the terminal shows UTF-8: the locale in force (LC_ALL, else
    LC_CTYPE, else LANG, as the C library decides) names UTF-8 and TERM is not
    one that has none. The board's console runs LC_ALL=C.UTF-8 TERM=linux."""
    env = os.environ if environ is None else environ
    if env.get("TERM", "") in _ASCII_TERMS:
        return False
    for name in ("LC_ALL", "LC_CTYPE", "LANG"):
        value = env.get(name, "")
        if value:
            return "UTF-8" in value.upper().replace("UTF8", "UTF-8")
    return False
