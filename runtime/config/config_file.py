"""Heads' config file format, read without a shell and written atomically.

Owners carry their Heads config.user over, so the lines look like Heads'
(`export CONFIG_NAME="value"`). Heads sources these files with a shell; here
a line is data: one pair of quotes around the whole value at most, no
expansion of any kind, and every line that is not exactly an assignment, a
comment or blank is reported with its file and line number.
"""

from __future__ import annotations

import contextlib
import os
from typing import Literal, NamedTuple

Severity = Literal["error", "warning", "note"]

KEY_PREFIX = "CONFIG_"
_KEY_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
# Unquoted values: characters no shell treats specially anywhere in a word.
_BARE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./:,+=@%")
_BLANKS = " \t"
QUOTE_HINT = 'write it as CONFIG_NAME="value"'


# NamedTuples, not dataclasses: a tenth of the import time, and boots are slow.
class Problem(NamedTuple):
    """Something wrong (or worth knowing) in a config file, in plain words."""

    path: str
    line: int | None
    key: str | None
    message: str
    severity: Severity = "error"

    def __str__(self) -> str:
        where = self.path if self.line is None else f"{self.path}, line {self.line}"
        what = f"{self.key}: " if self.key else ""
        return f"{self.severity.capitalize()} in {where}: {what}{self.message}"


class Assignment(NamedTuple):
    """One `CONFIG_NAME=value` line, the value with its quotes removed."""

    path: str
    line: int
    key: str
    value: str


class ParsedFile(NamedTuple):
    assignments: list[Assignment]
    problems: list[Problem]


class LineError(ValueError):
    """A line that is not an assignment this format accepts (message says why)."""


def is_key(name: str) -> bool:
    return (
        name.startswith(KEY_PREFIX)
        and len(name) > len(KEY_PREFIX)
        and all(c in _KEY_CHARS for c in name)
    )


def has_control(text: str) -> bool:
    """Tabs, line breaks, escapes, invisible formatting: anything that would not
    show as itself on the console (values are displayed there)."""
    return not text.isprintable()


def parse_line(text: str) -> tuple[str, str] | None:
    """(key, value) for an assignment, None for a blank or comment line.

    Raises LineError for anything else."""
    body = text.strip(_BLANKS)
    if not body or body.startswith("#"):
        return None
    # Tabs may separate; inside a value each value type refuses them.
    if has_control(body.replace("\t", " ")):
        raise LineError(
            "the line contains a control or invisible character (an escape, "
            "a carriage return or similar); retype it without"
        )
    if body.startswith("export") and body[6:7] in (" ", "\t"):
        body = body[6:].lstrip(_BLANKS)
    name, equals, rest = body.partition("=")
    if not equals:
        raise LineError(f"this is not a setting: expected CONFIG_NAME=value; {QUOTE_HINT}")
    if name != name.rstrip(_BLANKS) or rest[:1] in (" ", "\t"):
        raise LineError(
            "spaces around '=' are not allowed (a shell would run the name as a "
            f"command); {QUOTE_HINT}"
        )
    if not is_key(name):
        hint = f" (did you mean {name.upper()}?)" if is_key(name.upper()) else ""
        raise LineError(
            f"{name!r} is not a setting name: names are CONFIG_ followed by "
            f"capital letters, digits and _{hint}"
        )
    value, tail = _value(rest)
    tail = tail.lstrip(_BLANKS)
    if tail and not tail.startswith("#"):
        raise LineError(
            f"unexpected text after the value: {tail!r}; only a # comment may "
            "follow it, and a value with spaces must be in quotes"
        )
    return name, value


def _value(rest: str) -> tuple[str, str]:
    """The value at the start of rest, and what follows it."""
    if rest.startswith("'"):
        end = rest.find("'", 1)
        if end < 0:
            raise LineError("the closing ' is missing (a value cannot span lines)")
        return rest[1:end], _after_quote(rest[end + 1 :])
    if rest.startswith('"'):
        return _double_quoted(rest)
    end = 0
    while end < len(rest) and rest[end] not in _BLANKS:
        end += 1
    word = rest[:end]
    for c in word:
        if c in "$`":
            raise LineError(_expansion(c))
        if c not in _BARE_CHARS:
            raise LineError(
                f"the character {c!r} needs quotes: a shell would treat it specially; {QUOTE_HINT}"
            )
    return word, rest[end:]


def _double_quoted(rest: str) -> tuple[str, str]:
    out: list[str] = []
    i = 1
    while i < len(rest):
        c = rest[i]
        if c == '"':
            return "".join(out), _after_quote(rest[i + 1 :])
        if c == "\\":
            nxt = rest[i + 1 : i + 2]
            if nxt not in ('"', "\\"):
                shown = "\\" + nxt if nxt else "\\ at the end"
                raise LineError(
                    f"the escape {shown} is not supported: inside double quotes "
                    'only \\" and \\\\ are'
                )
            out.append(nxt)
            i += 2
            continue
        if c in "$`":
            raise LineError(_expansion(c) + " (single quotes keep a $ literally)")
        out.append(c)
        i += 1
    raise LineError('the closing " is missing (a value cannot span lines)')


def _after_quote(tail: str) -> str:
    if tail and tail[0] not in _BLANKS:
        raise LineError(
            f"unexpected text right after the closing quote: {tail!r}; put the "
            "whole value inside one pair of quotes"
        )
    return tail


def _expansion(c: str) -> str:
    what = "command substitution" if c == "`" else "variable or command expansion"
    return (
        f"{c!r} would be {what} in a shell; this file is read without a shell and "
        "nothing is expanded, so write the value itself"
    )


def parse_config(data: bytes, path: str) -> ParsedFile:
    """Every assignment and every problem in a file's bytes; never raises."""
    assignments: list[Assignment] = []
    problems: list[Problem] = []
    first_line: dict[str, int] = {}
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    if any(raw.endswith(b"\r") for raw in lines):
        problems.append(
            Problem(
                path,
                None,
                None,
                "the file has Windows line ends (CR LF); they were read as plain line ends",
                "warning",
            )
        )
    for number, raw in enumerate(lines, start=1):
        try:
            text = raw.removesuffix(b"\r").decode("utf-8")
            parsed = parse_line(text)
        except UnicodeDecodeError:
            problems.append(
                Problem(
                    path, number, None, "the line is not UTF-8 text, so it was skipped; retype it"
                )
            )
            continue
        except LineError as err:
            problems.append(
                Problem(path, number, assigned_key(text), f"{err}. The line was skipped.")
            )
            continue
        if parsed is None:
            continue
        key, value = parsed
        if key in first_line:
            problems.append(
                Problem(
                    path,
                    number,
                    key,
                    f"set again (first on line "
                    f"{first_line[key]}); this later line is used. Remove "
                    "one of them.",
                    "warning",
                )
            )
        else:
            first_line[key] = number
        assignments.append(Assignment(path, number, key, value))
    return ParsedFile(assignments, problems)


def read_config(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def format_assignment(key: str, value: str) -> str:
    """The line Heads' own tools write, quoted so parse_line reads value back."""
    if has_control(value):
        raise LineError("a value cannot contain tabs, line breaks or other control characters")
    if "$" in value or "`" in value:
        if "'" in value:
            raise LineError(
                "a value cannot contain both ' and $ or ` (this file format "
                "has no way to write that)"
            )
        line = f"export {key}='{value}'"
    else:
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        line = f'export {key}="{escaped}"'
    if parse_line(line) != (key, value):  # the reader is the judge of the writer
        raise LineError(f"the value {value!r} cannot be written back readably")
    return line


def assigned_key(text: str) -> str | None:
    """The name a line assigns to, even when its value is malformed."""
    body = text.strip(_BLANKS)
    if body.startswith("export") and body[6:7] in (" ", "\t"):
        body = body[6:].lstrip(_BLANKS)
    name, equals, _ = body.partition("=")
    return name if equals and is_key(name) else None


def replace_assignment(text: str, keys: frozenset[str], line: str) -> str:
    """text with the first assignment to any of keys replaced by line, later ones
    dropped (they would override it), or line appended; other lines kept as they are."""
    # split("\n"), not splitlines(): that also splits at characters a value may hold.
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    out: list[str] = []
    placed = False
    for old in lines:
        if assigned_key(old.removesuffix("\r")) not in keys:
            out.append(old)
        elif not placed:
            out.append(line)
            placed = True
    if not placed:
        out.append(line)
    return "\n".join(out) + "\n"


def write_atomically(path: str, data: bytes) -> None:
    """Replace path with data so that a crash leaves the old or the new file, whole.

    Temp file in the same directory (rename is atomic only within one file
    system), fsync before the rename, fsync the directory after it."""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        mode = os.stat(path).st_mode & 0o777
    except FileNotFoundError:
        mode = 0o600
    temp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    # The runtime's pid is the same every boot: a crash's leftover must not block.
    _unlink_quietly(temp)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException:
        _unlink_quietly(temp)
        raise
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _unlink_quietly(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
