"""Heads' saved default boot entry: `kexec_default.<N>.txt` in /boot holds the
text of line N (1-based) of Heads' listing (heads_listing.py). Heads boots it
only while line N still reads exactly the same; otherwise the entries changed
(a kernel update) and the user must choose again. We apply the same rule, so
a default saved by Heads selects the same entry here, and we also say where
the entry went when it only moved.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass

from runtime.boot_configs.entry import ParseWarning
from runtime.boot_configs.fs import BootFS

_NAME = re.compile(r"^kexec_default\.([0-9]+)\.txt$")
#: a line number beyond this is no menu's: refuse it rather than trust it
MAX_INDEX = 100_000


@dataclass(frozen=True)
class SavedDefault:
    index: int  # 1-based, as in the file name
    line: str  # the entry text, trailing newlines removed (as `$(cat f)` does)
    source: str  # the file's path


class DefaultStatus(enum.StrEnum):
    SAME = "same"  # line N reads as saved: boot it
    CHANGED = "changed"  # line N differs (or is gone): choose again


@dataclass(frozen=True)
class DefaultMatch:
    status: DefaultStatus
    index: int | None  # 0-based position in the listing when SAME
    #: when CHANGED: where the saved text now stands, if it is still listed
    moved_to: int | None = None

    @property
    def reason(self) -> str:
        if self.status is DefaultStatus.SAME:
            return "the saved default entry is unchanged"
        if self.moved_to is not None:
            return (
                f"the saved default entry moved to position {self.moved_to + 1}: "
                "the list of boot entries changed, choose the default again"
            )
        return "the saved default entry is no longer offered: choose the default again"


def default_file_index(name: str) -> int | None:
    """N of a `kexec_default.N.txt` name, None for any other name."""
    m = _NAME.match(name)
    if not m or len(m.group(1)) > 6:
        return None
    n = int(m.group(1))
    return n if 1 <= n <= MAX_INDEX else None


def read_saved_default(
    fs: BootFS, names: Sequence[str], directory: str = "/"
) -> tuple[SavedDefault | None, list[ParseWarning]]:
    """The saved default among the file names in directory (Heads takes the
    first `kexec_default.*.txt` in the shell's sorted glob order)."""
    warnings: list[ParseWarning] = []
    candidates = sorted(
        (
            n
            for n in names
            if n.startswith("kexec_default.")
            and n.endswith(".txt")
            and n != "kexec_default_hashes.txt"
        ),
        key=lambda n: n.encode(),
    )
    for name in candidates:
        path = f"{directory.rstrip('/')}/{name}"
        index = default_file_index(name)
        if index is None:
            warnings.append(ParseWarning(path, 0, "not a default entry file name; ignored"))
            continue
        text = fs.read_text(path)
        if text is None:
            warnings.append(ParseWarning(path, 0, "unreadable"))
            return None, warnings
        others = [n for n in candidates if n != name]
        if others:
            warnings.append(
                ParseWarning(path, 0, f"more than one saved default; using this one, not {others}")
            )
        return SavedDefault(index, text.rstrip("\n"), path), warnings
    return None, warnings


def match_saved_default(listing: Sequence[str], saved: SavedDefault) -> DefaultMatch:
    """Heads' rule: line N must equal the saved text exactly."""
    position = saved.index - 1
    if position < len(listing) and listing[position] == saved.line:
        return DefaultMatch(DefaultStatus.SAME, position)
    moved = next((i for i, line in enumerate(listing) if line == saved.line), None)
    return DefaultMatch(DefaultStatus.CHANGED, None, moved)


def saved_default_file(listing: Sequence[str], position: int) -> tuple[str, str]:
    """(file name, content) that saves listing[position] as the default, in
    the form Heads writes and reads."""
    if not 0 <= position < len(listing):
        raise IndexError(position)
    return f"kexec_default.{position + 1}.txt", listing[position] + "\n"
