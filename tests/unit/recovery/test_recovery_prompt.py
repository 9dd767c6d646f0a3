"""The recovery gate's conversation on a plain console: the challenge fits 60
and 80 columns (the line to sign alone on its line, its code in groups, a QR
code of exactly that line), pasted answers are read to the end of their
block, and after a refusal the owner may try again, take a new challenge or
leave with Enter or Ctrl-D."""

from __future__ import annotations

import io
import os
import select
import termios
from collections.abc import Iterator

import pytest

from runtime.recovery import prompt
from runtime.recovery.auth import MAX_RESPONSE_CHARS, Choice, Progress, new_challenge
from runtime.recovery.prompt import (
    NORMAL,
    REVERSE,
    ConsolePrompter,
    challenge_lines,
    parse_choice,
    qr_painter,
    read_answer,
    refusal_lines,
)
from runtime.secrets.otp_enrol import qr_matrix

CHALLENGE = new_challenge(lambda n: bytes.fromhex("0123456789abcdeffedcba9876543210")[:n])
FIRST = Progress(1, 1, 3)
TOP = {" ": False, "\u2580": True, "\u2584": False, "\u2588": True}
BOTTOM = {" ": False, "\u2580": False, "\u2584": True, "\u2588": True}


def lines_of(text: str) -> io.StringIO:
    return io.StringIO(text)


def decoded(rows: list[str], unicode: bool) -> list[list[bool]]:
    if not unicode:
        return [[row[2 * i] == "#" for i in range(len(row) // 2)] for row in rows]
    matrix = []
    for row in rows:
        matrix.append([TOP[c] for c in row])
        matrix.append([BOTTOM[c] for c in row])
    return matrix


# -- the layout --------------------------------------------------------------------


@pytest.mark.parametrize("width", [60, 80])
@pytest.mark.parametrize("unicode", [True, False])
def test_every_line_fits_and_the_line_to_sign_stands_alone(width: int, unicode: bool) -> None:
    lines = challenge_lines(CHALLENGE, FIRST, width=width, unicode=unicode)
    assert all(len(line) < width for line in lines), max(lines, key=len)
    assert lines.count(CHALLENGE.text) == 1  # on a line of its own, nothing around it
    said = " ".join(" ".join(lines).split())
    assert "Owner authentication, challenge 1, try 1 of 3." in said
    assert "Ctrl-D: leave without a shell" in said


def test_on_80x25_the_whole_challenge_fits_one_screen() -> None:
    lines = challenge_lines(CHALLENGE, FIRST, width=80, unicode=True)
    assert len(lines) + 2 <= 25  # with the blank line before it and the cursor's line


@pytest.mark.parametrize("width", [60, 80])
def test_the_qr_code_holds_exactly_the_line_to_sign(width: int) -> None:
    lines = challenge_lines(CHALLENGE, FIRST, width=width, unicode=True)
    matrix = qr_matrix(CHALLENGE.text)
    rows = [line[: len(matrix[0])] for line in lines[: (len(matrix) + 1) // 2]]
    got = decoded(rows, unicode=True)
    assert got[: len(matrix)] == matrix
    assert not any(any(row) for row in got[len(matrix) :])  # an odd row is padded light
    assert "the QR code holds it too" in " ".join(lines)


def test_the_code_is_beside_the_qr_code_in_groups_for_reading_out() -> None:
    lines = challenge_lines(CHALLENGE, FIRST, width=60, unicode=True)
    rows = lines[: (len(qr_matrix(CHALLENGE.text)) + 1) // 2]
    beside = [row[len(rows[0]) :].strip() for row in rows if len(row) > len(rows[0])]
    assert beside == [
        "The line's code,",
        "to read out:",
        "1  01234567",
        "2  89abcdef",
        "3  fedcba98",
        "4  76543210",
    ]
    assert CHALLENGE.code == "01234567 89abcdef fedcba98 76543210"


def test_without_utf8_the_qr_code_is_drawn_in_ascii_when_it_fits() -> None:
    wide = challenge_lines(CHALLENGE, FIRST, width=80, unicode=False)
    matrix = qr_matrix(CHALLENGE.text)
    assert decoded(wide[: len(matrix)], unicode=False) == matrix
    narrow = challenge_lines(CHALLENGE, FIRST, width=60, unicode=False)
    assert not any("#" in line for line in narrow)
    assert "too narrow for its QR code" in " ".join(" ".join(narrow).split())


def test_the_qr_code_is_painted_dark_on_light() -> None:
    paint = qr_painter(unicode=True)
    assert paint("\u2580 \u2588") == f"{REVERSE}\u2580 \u2588{NORMAL}"
    ascii_paint = qr_painter(unicode=False)
    # a dark module ('##') is the terminal's own dark ground; a light one reversed
    assert ascii_paint("##  ##") == f"  {REVERSE}  {NORMAL}  "
    painted = challenge_lines(CHALLENGE, FIRST, width=60, unicode=True, paint=paint)
    assert painted[0].startswith(REVERSE)
    assert CHALLENGE.text in painted  # the line to sign is never painted


@pytest.mark.parametrize("width", [60, 80])
def test_refusal_lines_fit_and_offer_what_is_left(width: int) -> None:
    long = (
        "the signature does not fit this challenge's line: another text was signed "
        "(an older challenge, or the line typed differently?), or the block changed "
        "while it was copied."
    )
    lines = refusal_lines(long, 2, True, width=width)
    assert all(len(line) < width for line in lines)
    said = " ".join(" ".join(lines).split())
    assert "t and Enter: try again with this challenge (2 tries left)" in said
    assert "n and Enter: a new challenge to sign" in said
    assert said.endswith("Enter or Ctrl-D: leave without a shell")
    last = " ".join(refusal_lines("nothing was pasted.", 1, False, width=width))
    assert "(1 try left)" in last and "new challenge" not in last
    none_left = " ".join(refusal_lines("nothing was pasted.", 0, False, width=width))
    assert "No tries are left." in none_left and "Enter" not in none_left


def test_armor_markers_are_never_broken_across_lines() -> None:
    text = (
        "that is not a signature block. Paste everything from its '-----BEGIN PGP' "
        "line to its '-----END PGP SIGNATURE-----' line."
    )
    for width in range(40, 81):
        joined = "\n".join(refusal_lines(text, 1, True, width=width))
        assert "-----BEGIN PGP" in joined and "-----END PGP SIGNATURE-----" in joined


# -- reading an answer ---------------------------------------------------------------

DETACHED = "-----BEGIN PGP SIGNATURE-----\n\nAAAA\n=abcd\n-----END PGP SIGNATURE-----\n"


def test_an_answer_ends_at_the_end_line() -> None:
    source = lines_of(DETACHED + "not read\n")
    assert read_answer(source.readline) == DETACHED
    assert source.readline() == "not read\n"


def test_ctrl_d_at_once_leaves_and_an_empty_line_is_nothing_pasted() -> None:
    assert read_answer(lines_of("").readline) is None
    assert read_answer(lines_of("\nsomething\n").readline) == ""
    assert read_answer(lines_of("  \r\n").readline) == ""


def test_enter_always_ends_an_answer() -> None:
    # A PIN typed by mistake: Enter ends it (no block was begun).
    assert read_answer(lines_of("1234\n\nnot read\n").readline) == "1234\n"
    # In a block one empty line belongs to it; two in a row end it.
    begun = "-----BEGIN PGP SIGNATURE-----\n\nAAAA\n"
    assert read_answer(lines_of(begun + "\n\nnot read\n").readline) == begun + "\n"
    # Ctrl-D after some lines gives them to the check.
    assert read_answer(lines_of(begun).readline) == begun


def test_a_paste_far_too_long_is_cut_for_the_check_to_refuse() -> None:
    text = read_answer(lines_of("-----BEGIN PGP SIGNATURE-----\n" + "A" * 80_000 + "\n").readline)
    assert text is not None and len(text) > MAX_RESPONSE_CHARS


@pytest.mark.parametrize(
    ("line", "tries_left", "new_allowed", "choice"),
    [
        ("\n", 2, True, Choice.LEAVE),
        ("q\n", 2, True, Choice.LEAVE),
        ("t\n", 2, True, Choice.AGAIN),
        (" T \n", 1, False, Choice.AGAIN),
        ("t\n", 0, True, None),
        ("n\n", 0, True, Choice.NEW),
        ("n\n", 2, False, None),
        ("yes\n", 2, True, None),
    ],
)
def test_parse_choice(line: str, tries_left: int, new_allowed: bool, choice: Choice | None) -> None:
    assert parse_choice(line, tries_left, new_allowed) is choice


# -- the prompter ---------------------------------------------------------------------


class Screen:
    def __init__(self, typed: str) -> None:
        self.source = lines_of(typed)
        self.text = ""
        self.drained = 0

    def write(self, text: str) -> None:
        self.text += text

    def drain(self) -> None:
        self.drained += 1

    def prompter(self, width: int = 80) -> ConsolePrompter:
        return ConsolePrompter(self.source.readline, self.write, self.drain, width)


def test_the_prompter_shows_the_challenge_then_reads_the_paste() -> None:
    screen = Screen(DETACHED)
    assert screen.prompter().answer(CHALLENGE, FIRST) == DETACHED
    assert f"\n{CHALLENGE.text}\n" in screen.text
    assert screen.drained == 1  # what was typed before the question does not answer it


def test_after_a_refusal_t_tries_again_and_unclear_answers_are_asked_again() -> None:
    screen = Screen("yes\nn\nt\n")
    assert screen.prompter().refused("nothing was pasted.", 2, False) is Choice.AGAIN
    assert screen.text.count("> ") == 3
    assert screen.text.count("Type t and Enter, or just Enter to leave.") == 2
    assert screen.drained == 1


def test_after_a_refusal_enter_ctrl_d_or_endless_nonsense_leave() -> None:
    for typed in ("\n", "", "x\n" * 10):
        screen = Screen(typed)
        assert screen.prompter().refused("nothing was pasted.", 1, True) is Choice.LEAVE
    assert screen.text.count("> ") == prompt.UNCLEAR_CHOICES


def test_with_nothing_left_to_offer_nothing_is_asked() -> None:
    screen = Screen("t\n")
    assert screen.prompter().refused("nothing was pasted.", 0, False) is Choice.LEAVE
    assert "> " not in screen.text
    assert screen.source.readline() == "t\n"  # not read


# -- the real console: a pseudo-terminal ----------------------------------------------


@pytest.fixture
def pty_stdin(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """sys.stdin on a pty's terminal end; yields the other end (the keyboard)."""
    keyboard, terminal = os.openpty()
    stdin = os.fdopen(terminal, "r", closefd=True)
    monkeypatch.setattr("sys.stdin", stdin)
    try:
        yield keyboard
    finally:
        stdin.close()
        os.close(keyboard)


def test_line_mode_gives_lines_with_echo(pty_stdin: int) -> None:
    import sys

    fd = sys.stdin.fileno()
    attrs = termios.tcgetattr(fd)
    attrs[3] &= ~(termios.ICANON | termios.ECHO)  # as a crashed full-screen UI may leave it
    termios.tcsetattr(fd, termios.TCSANOW, attrs)
    prompt.line_mode()
    lflag = termios.tcgetattr(fd)[3]
    assert lflag & termios.ICANON and lflag & termios.ECHO


def test_drain_throws_away_what_was_typed_before_the_question(pty_stdin: int) -> None:
    import sys

    prompt.line_mode()
    os.write(pty_stdin, b"rest of a paste\n-----END PGP SIGNATURE-----\n")
    prompt.drain_console(quiet=0.05)
    fd = sys.stdin.fileno()
    assert select.select([fd], [], [], 0.05)[0] == []
    os.write(pty_stdin, b"t\n")
    assert prompt.read_console_line() == "t\n"


def test_not_a_terminal_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", lines_of("t\n"))
    prompt.line_mode()
    prompt.drain_console()
    assert prompt.read_console_line() == "t\n"  # nothing was thrown away
