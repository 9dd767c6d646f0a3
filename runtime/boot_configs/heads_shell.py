"""The few shell behaviours Heads' line-based config scan depends on, so that
our copy of its listing prints the same bytes: how `read` (without -r) splits a
file into lines, how `echo $x` collapses blanks, how `cut` picks fields, and
what `eval "echo \"$entry\""` leaves of an entry.

Nothing is ever run: where Heads' shell would run a command (a backquote or
`$(...)` inside a boot entry), we substitute nothing and say so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: bash's default IFS
IFS_BLANKS = " \t\n"
_BLANK_RUN = re.compile(r"[ \t\n]+")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: ${name<operator>...}: a parameter expansion with an operator (${x:-y})
_NAME_OPERATOR = re.compile(r"[A-Za-z_][A-Za-z0-9_]*[:#%/^,-].*")


def read_lines(text: str, raw: bool = False) -> list[str]:
    """Lines as `while read line` yields them: surrounding blanks stripped
    (unless backslash-quoted), a backslash quotes the next character and joins
    a line ending in one with the next, NUL bytes dropped, and a last line
    without a newline lost (read fails at end of file even after reading).
    raw: `read -r`, where a backslash is an ordinary character."""
    lines: list[str] = []
    cur: list[tuple[str, bool]] = []  # (character, quoted by a backslash)

    def finish() -> str:
        lo, hi = 0, len(cur)
        while lo < hi and cur[lo][0] in IFS_BLANKS and not cur[lo][1]:
            lo += 1
        while hi > lo and cur[hi - 1][0] in IFS_BLANKS and not cur[hi - 1][1]:
            hi -= 1
        # bash: once the line is more than one word, its trailing blanks go
        # even when backslash-quoted ('a \\ ' reads as 'a', 'a\\ ' as 'a ')
        if any(c in IFS_BLANKS and not quoted for c, quoted in cur[lo:hi]):
            while hi > lo and cur[hi - 1][0] in IFS_BLANKS:
                hi -= 1
        return "".join(c for c, _ in cur[lo:hi])

    text = text.replace("\0", "")
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\" and not raw:
            if i + 1 < len(text) and text[i + 1] != "\n":
                cur.append((text[i + 1], True))
            i += 2  # a backslash-newline pair vanishes; a trailing backslash too
            continue
        if c == "\n":
            lines.append(finish())
            cur = []
        else:
            cur.append((c, False))
        i += 1
    return lines


def collapse(text: str) -> str:
    """`echo $text`: words split on blanks and joined by one space."""
    return " ".join(w for w in _BLANK_RUN.split(text) if w)


def cut_field(text: str, delim: str, first: int, to_end: bool = False) -> str:
    """`cut -d<delim> -f<first>` (or `-f<first>-`), 1-based, one line. A line
    without the delimiter comes out whole, as cut prints it."""
    if delim not in text:
        return text
    fields = text.split(delim)
    if to_end:
        return delim.join(fields[first - 1 :])
    return fields[first - 1] if first <= len(fields) else ""


def cut_chars_from(text: str, first: int) -> str:
    """`cut -c<first>-`, 1-based."""
    return text[first - 1 :]


#: outside quotes these end the echo command: a pipe, a list, a redirection
_OPERATORS = frozenset(";&|<>()")


class _ShellError(Exception):
    """The eval would fail (unbalanced quotes, a bad ${...}): Heads prints an
    empty line then."""


class _Eval:
    """`eval "echo \"$entry\""` for an entry whose variables are all unset."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.i = 0
        self.ran_command = False
        #: outside quotes, operators, globs, braces and '~' mean more shell
        #: than we copy: the result is a best guess
        self.approximate = False

    def run(self) -> str:
        out: list[str] = []
        in_double = True  # the entry starts inside the double quotes eval adds
        while self.i < len(self.text):
            c = self.text[self.i]
            if c == '"':
                in_double = not in_double
                self.i += 1
            elif c == "$":
                out.append(self._dollar())
            elif c == "`":
                end = self.text.find("`", self.i + 1)
                if end < 0:
                    raise _ShellError
                self.i = end + 1
                self.ran_command = True
            elif c == "\\":
                nxt = self.text[self.i + 1 : self.i + 2]
                if in_double and nxt not in ('"', "\\", "$", "`"):
                    out.append("\\")
                    self.i += 1
                else:
                    out.append(nxt)
                    self.i += 2
            elif c == "'" and not in_double:
                end = self.text.find("'", self.i + 1)
                if end < 0:
                    raise _ShellError
                out.append(self.text[self.i + 1 : end])
                self.i = end + 1
            else:
                if not in_double and (c in _OPERATORS or c in "*?[{~"):
                    self.approximate = True
                out.append(c)
                self.i += 1
        if not in_double:
            raise _ShellError  # eval's own closing quote opens a string never closed
        return "".join(out)

    def _dollar(self) -> str:
        """Skip one expansion; every variable is unset, so it gives nothing,
        except a '$' that starts none, which stays. Looks at the text in place
        (no copy of the rest per '$'), so an entry costs time linear in its size."""
        text, start = self.text, self.i + 1
        nxt = text[start : start + 1]
        if nxt == "(":
            # $(cmd) or $((arith)): skip to the matching parenthesis
            depth = 0
            j = start
            while j < len(text):
                c = text[j]
                depth += 1 if c == "(" else -1 if c == ")" else 0
                j += 1
                if depth == 0:
                    break
            if depth:
                raise _ShellError
            self.i = j
            self.ran_command = True
            return ""
        if nxt == "{":
            end = text.find("}", start + 1)
            if end < 0 or not _NAME.fullmatch(text, start + 1, end):
                # ${} and ${a b} are bad substitutions; ${x:-y} and friends
                # are more shell than a boot entry should hold
                if end < 0 or not _NAME_OPERATOR.fullmatch(text, start + 1, end):
                    raise _ShellError
                self.approximate = True
            self.i = len(text) if end < 0 else end + 1
            return ""
        m = _NAME.match(text, start)
        if m:
            self.i = m.end()
            return ""
        if nxt and (nxt.isdigit() or nxt in "@*#?-$!_"):
            # $1, $@, $$ ...: positional and special parameters; Heads' values
            # (a process id, its own name) cannot be known, and entries do not use them
            self.approximate = self.approximate or nxt in "0$!-_"
            self.i += 2
            return ""
        self.i += 1
        return "$"


@dataclass(frozen=True)
class Echoed:
    """What `echo $(eval "echo \"$entry\"")` printed for one entry."""

    text: str
    #: Heads' shell would have run a command here; we substituted nothing
    ran_command: bool = False
    #: the eval failed in Heads' shell, which then prints an empty line
    failed: bool = False
    #: the entry used shell features we do not copy (globs, operators, $0)
    approximate: bool = False


def eval_echo(entry: str) -> Echoed:
    ev = _Eval(entry)
    try:
        text = ev.run()
    except _ShellError:
        return Echoed("", failed=True)
    return Echoed(collapse(text), ev.ran_command, False, ev.approximate)
