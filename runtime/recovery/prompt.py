"""The recovery gate's conversation on the plain console (no UI runs any
more): the challenge laid out to fit a serial console of 60 or 80 columns,
the pasted answer read up to the end of its signature block, and what the
owner may do after a refused answer.

The layout is pure (width and UTF-8 come in as arguments) so the tests check
every line's length; ConsolePrompter does the reading and writing.
"""

from __future__ import annotations

import os
import select
import shutil
import sys
import termios
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from runtime.recovery.auth import (
    END_SIGNATURE,
    MAX_RESPONSE_CHARS,
    Challenge,
    Choice,
    Progress,
)

REVERSE, NORMAL = "\x1b[7m", "\x1b[0m"  # SGR: reverse video, back to normal
MAX_WIDTH = 80  # wider consoles get the 80-column layout
MIN_WIDTH = 40
QR_GAP = "  "
LEAVE_LINE = "Enter or Ctrl-D: leave without a shell"
#: unclear answers to "what now?" before the gate takes it as leaving
UNCLEAR_CHOICES = 5
#: a paste still arriving after its end line is thrown away until the line is
#: quiet this long (at 115200 baud a signature block takes about 0.1 s)
DRAIN_QUIET_S = 0.3
DRAIN_MOST_S = 3.0

#: kept on one line when wrapped: the owner looks for them as they are
UNBROKEN = ("-----BEGIN PGP", "-----END PGP SIGNATURE-----", "Ctrl-D", "gpg --clearsign")
_NBSP = "\N{NO-BREAK SPACE}"  # textwrap breaks at ASCII whitespace only


def wrap_lines(text: str, width: int) -> list[str]:
    for phrase in UNBROKEN:
        text = text.replace(phrase, phrase.replace(" ", _NBSP))
    # one column spare: some terminals wrap a line that fills the last column
    lines = textwrap.wrap(
        text, width=width - 1, break_on_hyphens=False, break_long_words=False
    ) or [""]
    return [line.replace(_NBSP, " ") for line in lines]


def layout_width(columns: int) -> int:
    return max(MIN_WIDTH, min(columns, MAX_WIDTH))


def _unpainted(row: str) -> str:
    return row


def qr_painter(unicode: bool) -> Callable[[str], str]:
    """Dark modules on a light ground, as the runtime's UI draws them: a
    terminal's light-on-dark would give a negative, which not every phone
    reads. Reverse video, which even a VT100 has."""
    if unicode:
        # the half blocks are the dark modules: drawn in the background colour
        return lambda row: f"{REVERSE}{row}{NORMAL}"

    def ascii_row(row: str) -> str:
        # '##' is a dark module: a plain space; a light one a reversed space
        return "".join(
            f"{REVERSE}{' ' * len(run)}{NORMAL}" if run.startswith(" ") else " " * len(run)
            for run in _runs(row)
        )

    return ascii_row


def _runs(row: str) -> list[str]:
    runs: list[str] = []
    for char in row:
        if runs and runs[-1][0] == char:
            runs[-1] += char
        else:
            runs.append(char)
    return runs


def challenge_lines(
    challenge: Challenge,
    progress: Progress,
    *,
    width: int = MAX_WIDTH,
    unicode: bool = True,
    paint: Callable[[str], str] = _unpainted,
) -> list[str]:
    """The challenge screen: the QR code of the line to sign (when it fits),
    the line's code in groups beside it for reading out, the line itself on
    its own, and what to do. Every line fits ``width`` columns (40 or more)
    when ``paint`` adds no escape sequences; on 80x25 it all fits one screen
    with the cursor line."""
    from runtime.secrets.otp_enrol import qr_text  # segno only once a challenge is shown

    width = layout_width(width)
    lines: list[str] = []
    qr = qr_text(challenge.text, unicode=unicode)
    qr_width = max(len(row) for row in qr)
    if qr_width < width:
        groups = challenge.code.split()
        side = [
            "The line's code,",
            "to read out:",
            "",
            *(f"  {i}  {group}" for i, group in enumerate(groups, 1)),
        ]
        if qr_width + len(QR_GAP) + max(len(s) for s in side) < width:
            top = max(0, (len(qr) - len(side)) // 2)
            beside = [""] * top + side
            lines += [
                paint(row) + (QR_GAP + beside[i] if i < len(beside) and beside[i] else "")
                for i, row in enumerate(qr)
            ]
        else:
            lines += [paint(row) for row in qr]
        where = "the QR code holds it too"
    else:
        where = "the console is too narrow for its QR code"
    lines += wrap_lines(
        f"Owner authentication, challenge {progress.challenge}, try "
        f"{progress.attempt} of {progress.tries}. Sign this line with the "
        f"owner's key ({where}):",
        width,
    )
    lines.append(challenge.text)
    lines += wrap_lines(
        "For example gpg --clearsign on another computer. Paste the whole "
        "signature block here; Ctrl-D: leave without a shell.",
        width,
    )
    return lines


def refusal_lines(
    reason: str, tries_left: int, new_allowed: bool, *, width: int = MAX_WIDTH
) -> list[str]:
    """Why the answer was refused and what the owner may do now."""
    width = layout_width(width)
    lines = ["", *wrap_lines(f"Not accepted: {reason}", width)]
    if not tries_left and not new_allowed:
        return [*lines, *wrap_lines("No tries are left.", width)]
    if tries_left:
        tries = "1 try" if tries_left == 1 else f"{tries_left} tries"
        lines += wrap_lines(f"t and Enter: try again with this challenge ({tries} left)", width)
    else:
        lines += wrap_lines("No tries are left for this challenge.", width)
    if new_allowed:
        lines += wrap_lines("n and Enter: a new challenge to sign", width)
    return [*lines, *wrap_lines(LEAVE_LINE, width)]


def read_answer(read_line: Callable[[], str]) -> str | None:
    """Pasted lines up to the end of a signature block.

    None: Ctrl-D (end of input) before anything, the owner leaves. "": an
    empty first line, nothing was pasted. An empty line also ends an answer
    that has no signature block begun (a PIN typed by mistake, say), and two
    empty lines in a row end any: a signature block never holds two, so
    Enter always gets the owner out of here.
    """
    lines: list[str] = []
    size = 0
    in_block = False
    after_blank = False
    while True:
        line = read_line()
        if line == "":
            return "".join(lines) if lines else None
        if not line.strip():
            if not lines:
                return ""
            if not in_block or after_blank:
                return "".join(lines)
            after_blank = True
        else:
            after_blank = False
        lines.append(line)
        size += len(line)
        stripped = line.strip()
        in_block = in_block or stripped.startswith("-----BEGIN PGP")
        if stripped == END_SIGNATURE or size > MAX_RESPONSE_CHARS:
            # Too long is returned as it is: the check refuses it with a reason.
            return "".join(lines)


def parse_choice(line: str, tries_left: int, new_allowed: bool) -> Choice | None:
    """The owner's answer to "what now?"; None when it is none of the choices."""
    word = line.strip().lower()
    if word in ("", "q", "quit", "leave"):
        return Choice.LEAVE
    if word in ("t", "try", "again") and tries_left:
        return Choice.AGAIN
    if word in ("n", "new") and new_allowed:
        return Choice.NEW
    return None


@dataclass
class ConsolePrompter:
    """auth.Console over lines of text: ``read_line`` returns "" at end of
    input (Ctrl-D); ``drain`` throws away input typed or pasted before a
    question (the rest of a paste must not answer it)."""

    read_line: Callable[[], str]
    write: Callable[[str], None]
    drain: Callable[[], None] = field(default=lambda: None)
    width: int = MAX_WIDTH
    unicode: bool = True
    ansi: bool = False  # the console takes escape sequences (reverse video)

    def _show(self, lines: list[str]) -> None:
        self.write("".join(line + "\n" for line in lines))

    def answer(self, challenge: Challenge, progress: Progress) -> str | None:
        self.drain()
        paint = qr_painter(self.unicode) if self.ansi else _unpainted
        self._show(
            [
                "",
                *challenge_lines(
                    challenge, progress, width=self.width, unicode=self.unicode, paint=paint
                ),
            ]
        )
        return read_answer(self.read_line)

    def refused(self, reason: str, tries_left: int, new_allowed: bool) -> Choice:
        self.drain()
        self._show(refusal_lines(reason, tries_left, new_allowed, width=self.width))
        if not tries_left and not new_allowed:
            return Choice.LEAVE
        for _ in range(UNCLEAR_CHOICES):
            self.write("> ")
            line = self.read_line()
            if line == "":
                self.write("\n")  # Ctrl-D leaves the cursor after the prompt
                return Choice.LEAVE
            choice = parse_choice(line, tries_left, new_allowed)
            if choice is not None:
                return choice
            keys = ["t" if tries_left else "", "n" if new_allowed else ""]
            self._show(
                [f"Type {' or '.join(k for k in keys if k)} and Enter, or just Enter to leave."]
            )
        return Choice.LEAVE


# -- the real console -------------------------------------------------------------


def console_columns() -> int:
    """The console's width; a serial line that does not know it counts as 80."""
    return shutil.get_terminal_size((MAX_WIDTH, 25)).columns


def console_unicode() -> bool:
    """Whether the QR code may be drawn with half blocks, as the runtime's UI decides."""
    from runtime.ui.console import detect_unicode

    encoding = (sys.stdout.encoding or "").lower().replace("-", "")
    return detect_unicode() and encoding == "utf8"


def console_ansi() -> bool:
    """Whether the console is a terminal that takes escape sequences."""
    try:
        tty = sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False
    return tty and os.environ.get("TERM", "") not in ("", "dumb")


def _tty_fd() -> int | None:
    try:
        fd = sys.stdin.fileno()
    except (AttributeError, OSError, ValueError):
        return None  # replaced by something that is not a file (tests)
    return fd if os.isatty(fd) else None


def line_mode() -> None:
    """Lines with echo, Enter as newline and Ctrl-D as end of input on the
    console, whatever a crashed UI left behind."""
    fd = _tty_fd()
    if fd is None:
        return
    try:
        attrs = termios.tcgetattr(fd)
        attrs[0] = (attrs[0] | termios.ICRNL) & ~(termios.INLCR | termios.IGNCR)
        attrs[1] |= termios.OPOST | termios.ONLCR
        attrs[3] |= termios.ICANON | termios.ECHO | termios.ECHOE
        attrs[6][termios.VEOF] = b"\x04"
        termios.tcsetattr(fd, termios.TCSANOW, attrs)
    except termios.error:
        pass  # a console that refuses keeps its settings; reading still works


def drain_console(quiet: float = DRAIN_QUIET_S, most: float = DRAIN_MOST_S) -> None:
    """Throw away pending console input until it is quiet for ``quiet`` s."""
    fd = _tty_fd()
    if fd is None:
        return
    deadline = time.monotonic() + most
    try:
        while time.monotonic() < deadline:
            termios.tcflush(fd, termios.TCIFLUSH)
            ready, _, _ = select.select([fd], [], [], quiet)
            if not ready:
                return
    except (termios.error, OSError):
        pass


def read_console_line() -> str:
    """One line from stdin; "" at end of input or when the console fails."""
    raw = getattr(sys.stdin, "buffer", None)
    try:
        if raw is None:
            return sys.stdin.readline()
        # bytes, so that line noise on a serial console is a bad answer, not an error
        return bytes(raw.readline()).decode("utf-8", errors="replace")
    except (OSError, ValueError):
        return ""


def write_console(text: str) -> None:
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except (OSError, ValueError):
        pass  # nobody to tell: the answer read next decides


def console_prompter() -> ConsolePrompter:
    line_mode()
    return ConsolePrompter(
        read_console_line,
        write_console,
        drain_console,
        console_columns(),
        console_unicode(),
        console_ansi(),
    )
