"""One boot entry, whatever format it came from, and the warnings parsers give.

Paths are as the configuration names them, relative to the mounted /boot (or
ISO) root and starting with '/'; a parser resolves relative paths and
device prefixes before it makes an entry.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class EntryKind(enum.StrEnum):
    LINUX = "linux"  # a Linux kernel (bzImage): kexec's elf/bzImage loaders
    MULTIBOOT = "multiboot"  # Xen or another multiboot kernel with modules
    ELF = "elf"  # a plain ELF image (memtest and friends)


@dataclass(frozen=True)
class Module:
    """A multiboot module: a file and its own command line (Xen's dom0 kernel, initrd)."""

    path: str
    cmdline: str = ""


@dataclass(frozen=True)
class BootEntry:
    name: str
    kind: EntryKind
    kernel: str
    initrds: tuple[str, ...] = ()
    cmdline: str = ""
    modules: tuple[Module, ...] = ()  # multiboot only
    source: str = ""  # the configuration file, relative to the root
    line: int = 0  # where the entry starts in it (1-based; 0: not from a file)
    is_default: bool = False
    rank: int = 0  # position in the menu the configuration defines
    #: False when the kernel or an initrd is not on the file system: listed,
    #: with a warning, but never offered for booting.
    files_present: bool = True
    warnings: tuple[str, ...] = field(default_factory=tuple)
    #: other titles the configurations give this same boot (discover.py shows it once)
    also_listed_as: tuple[str, ...] = ()

    def loaded_files(self) -> list[tuple[str, str]]:
        """(path, what) of every file this boot loads, kernel first: what is verified
        before it is offered and what is copied to RAM for kexec."""
        files = [(self.kernel, "kernel")]
        files += [(p, "initrd") for p in self.initrds]
        files += [(m.path, "module") for m in self.modules]
        return files


@dataclass(frozen=True)
class ParseWarning:
    """Something a parser skipped or guessed: one line naming file and line."""

    source: str
    line: int
    message: str

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line else self.source
        # one line always: a hostile file name must not forge a second warning
        return " ".join(f"{where}: {self.message}".splitlines())


class ConfigSyntaxError(ValueError):
    """The only exception a parser may raise for bad input (callers turn it into
    a warning); anything else escaping a parser is a bug the fuzz tests catch."""
