"""The GRUB menu as it is built: entries in order, and the three names GRUB's
`default` may give each one.

`default` names an item by its title, by its `--id`, or by its position,
each as a path through the submenus joined with '>' ("Advanced>Debian",
"gnulinux-advanced>gnulinux-6.1", "1>2"). Positions count menu items per
level, submenus included.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from runtime.boot_configs.entry import BootEntry

#: menuentry/submenu options that take the next word as their value
_OPTS_WITH_ARG = frozenset({"--class", "--users", "--hotkey", "--id"})


def menu_title(args: Sequence[str]) -> tuple[str | None, str]:
    """(title, id) from a menuentry or submenu line after the keyword; the
    title is None when the line gives none."""
    positional: list[str] = []
    entry_id = ""
    i = 0
    while i < len(args):
        a = args[i]
        if a in _OPTS_WITH_ARG:
            if a == "--id" and i + 1 < len(args):
                entry_id = args[i + 1]
            i += 2
            continue
        if a.startswith("--id="):
            entry_id = a[5:]
        elif not a.startswith("--"):
            positional.append(a)
        i += 1
    if not positional:
        return None, entry_id
    if not entry_id and len(positional) > 1:
        entry_id = positional[1]  # `$menuentry_id_option` expanded empty: id stays positional
    return positional[0], entry_id


class Menu:
    def __init__(self) -> None:
        self.entries: list[BootEntry] = []
        # per entry: (title path, id path, index path), each joined with '>'
        self.ids: list[tuple[str, str, str]] = []
        # items counted so far at each open menu level
        self.counters: list[int] = [0]
        self.titles: list[str] = []
        self.id_path: list[str] = []
        self.index_path: list[str] = []

    def _next_index(self) -> str:
        return ">".join([*self.index_path, str(self.counters[-1])])

    def add(self, entry: BootEntry, entry_id: str) -> None:
        self.ids.append(
            (
                ">".join([*self.titles, entry.name]),
                ">".join([*self.id_path, entry_id or entry.name]),
                self._next_index(),
            )
        )
        self.counters[-1] += 1
        self.entries.append(entry)

    def add_bls(self, entries: Sequence[BootEntry]) -> None:
        """BLS entries are menu items of their own; the id is the file name."""
        self.entries.extend(entries)
        for e in entries:
            bls_id = posixpath.basename(e.source).removesuffix(".conf")
            self.ids.append((e.name, bls_id, self._next_index()))
            self.counters[-1] += 1

    @contextmanager
    def submenu(self, title: str, submenu_id: str) -> Iterator[None]:
        """Entries added inside belong to this submenu, which is one item."""
        self.index_path.append(str(self.counters[-1]))
        self.id_path.append(submenu_id or title)
        self.titles.append(title)
        self.counters.append(0)
        try:
            yield
        finally:
            self.counters.pop()
            self.counters[-1] += 1
            self.titles.pop()
            self.id_path.pop()
            self.index_path.pop()

    def default_index(self, default: str | None) -> int | None:
        """Which entry `default` names, None when none (or nothing is named)."""
        if not default:
            return None
        for i, (title, entry_id, index) in enumerate(self.ids):
            if default in (title, entry_id, index):
                return i
        # a bare title or id of an entry inside a submenu
        for i, (title, entry_id, _) in enumerate(self.ids):
            if default in (title.split(">")[-1], entry_id.split(">")[-1]):
                return i
        return None
