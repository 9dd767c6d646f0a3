"""GRUB's environment block (grubenv): where Fedora keeps `kernelopts` and
`saved_entry` for its BLS entries.

Format: a '# GRUB Environment Block' header line, then `key=value` lines,
then '#' padding up to the block size (1024 bytes). GRUB escapes a backslash
or a newline inside a value with a backslash. The file is edited by hand and
by tools that crash halfway, so garbage lines become warnings, never errors.
"""

from __future__ import annotations

import re

from runtime.boot_configs.entry import ParseWarning

HEADER = "# GRUB Environment Block"

# GRUB itself accepts any key without '=' or newline; a name that could not be
# a GRUB variable ($name) is more likely garbage, so we warn and skip it.
_KEY = re.compile(r"[A-Za-z0-9_]+")


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Split on newlines that are not backslash-escaped, undoing the escapes,
    and keep the 1-based line where each logical line starts."""
    out: list[tuple[int, str]] = []
    buf: list[str] = []
    start = lineno = 1
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            buf.append(nxt)
            if nxt == "\n":
                lineno += 1
            i += 2
            continue
        if ch == "\n":
            out.append((start, "".join(buf)))
            buf = []
            lineno += 1
            start = lineno
        else:
            buf.append(ch)
        i += 1
    if buf:
        out.append((start, "".join(buf)))
    return out


def parse_grubenv(text: str, source: str = "grubenv") -> tuple[dict[str, str], list[ParseWarning]]:
    """Variables of one grubenv file, and warnings for whatever was skipped.

    A later assignment wins, as GRUB's own reader would leave it."""
    values: dict[str, str] = {}
    warnings: list[ParseWarning] = []
    lines = _logical_lines(text)
    if not lines or lines[0][1] != HEADER:
        warnings.append(ParseWarning(source, 1, "missing '# GRUB Environment Block' header"))
    for lineno, line in lines:
        if not line or line.startswith("#"):
            continue  # the header, comments and the '#' padding
        key, sep, value = line.partition("=")
        if not sep or not _KEY.fullmatch(key):
            warnings.append(ParseWarning(source, lineno, f"not a key=value line: {line[:60]!r}"))
            continue
        values[key] = value
    return values, warnings
