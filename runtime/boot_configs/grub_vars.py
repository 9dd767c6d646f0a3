"""The variables a GRUB configuration sets while it is read, how sure the
reader is of each value, and `$name` expansion as GRUB's shell does it.

A value is certain when a `set` ran on a path that is taken for sure. It is
uncertain when it comes from the machine (`search`, `regexp`, `probe`,
GRUB's own variables), from a branch whose condition could not be decided,
or from a body never run here (functions, loops). Conditions on uncertain
values are not decided.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from runtime.boot_configs.entry import ConfigSyntaxError
from runtime.boot_configs.grub_lexer import Word

#: a variable value longer than this is cut: `set a=$a$a` doubles each line.
MAX_VALUE = 64 * 1024
#: one word may not expand to more than this.
MAX_EXPANSION = 1024 * 1024

#: variables GRUB or the firmware set; their values are not in the configuration
_MACHINE_VARS = frozenset(
    {
        "root",
        "prefix",
        "cmdpath",
        "config_directory",
        "config_file",
        "chosen",
        "default",
        "fallback",
        "timeout",
        "lang",
        "locale_dir",
        "secondary_locale_dir",
        "pager",
        "debug",
        "gfxmode",
        "gfxpayload",
        "theme",
        "icondir",
        "color_normal",
        "color_highlight",
        "menu_color_normal",
        "menu_color_highlight",
        "superusers",
        "check_signatures",
        "shim_lock",
        "lockdown",
        "secureboot",
        "tpm_fail_fatal",
        "net_default_interface",
        "net_default_ip",
        "net_default_mac",
        "net_default_server",
        "pxe_default_server",
        "pxe_default_gateway",
        "enable_progress_indicator",
    }
)
_MACHINE_PREFIXES = ("grub_", "feature_", "net_", "pxe_", "efi_", "EFI_")


def _machine_supplied(name: str) -> bool:
    """Variables GRUB itself, the firmware or the menu supply at boot."""
    return (
        (not name[:1].isalpha() and name[:1] != "_")  # $1, $?, $# ...
        or name in _MACHINE_VARS
        or name.startswith(_MACHINE_PREFIXES)
    )


def assigned_names(words: Sequence[str]) -> list[str]:
    """Variables a command line may set: `set X=`, `X=`, `--set=X`, `--set X`,
    `-s X`, `read X`, `getenv X`."""
    if not words:
        return []
    names: list[str] = []
    head = words[0]
    if head == "set" and len(words) > 1 and "=" in words[1]:
        names.append(words[1].split("=", 1)[0])
    elif "=" in head and not head.startswith("="):
        names.append(head.split("=", 1)[0])
    elif head in ("read", "getenv") and len(words) > 1:
        names.extend(w for w in words[1:] if not w.startswith("-"))
    for i, w in enumerate(words):
        if w.startswith("--set="):
            names.append(w[len("--set=") :].split(":")[-1])
        elif w in ("--set", "-s") and i + 1 < len(words):
            names.append(words[i + 1].split(":")[-1])
    return [n for n in names if n]


class Variables:
    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        # names whose value depends on the machine or on an unknown branch
        self.uncertain: set[str] = {"root", "cmdpath"}
        # >0 while inside a branch taken without knowing its condition
        self.dynamic = 0
        # an `eval` can set anything: from then on no unset variable is known empty
        self.eval_seen = False

    def get(self, name: str) -> str | None:
        return self.values.get(name)

    def assign(self, name: str, value: str, certain: bool = True) -> None:
        self.values[name] = value
        if certain and not self.dynamic:
            self.uncertain.discard(name)
        else:
            self.uncertain.add(name)

    def unset(self, name: str) -> None:
        self.values.pop(name, None)

    def forget(self, name: str) -> None:
        """The machine sets name at boot: its value is unknown here."""
        self.values.pop(name, None)
        self.uncertain.add(name)

    def doubt(self, name: str) -> None:
        """Something not followed here may change name: keep it, unsure."""
        self.uncertain.add(name)

    def known(self, name: str) -> bool:
        """Whether $name's value is known: set for certain, or never set by
        the configuration (empty) and not one GRUB or the machine supplies."""
        if name in self.uncertain:
            return False
        if name in self.values:
            return True
        return not self.eval_seen and not _machine_supplied(name)

    def refs_unknown(self, words: Sequence[Word]) -> bool:
        """Whether the words use a variable whose value is not known for certain."""
        return any(part.is_var and not self.known(part.text) for w in words for part in w.parts)

    def certain_values(self) -> dict[str, str]:
        return {k: v for k, v in self.values.items() if k not in self.uncertain}

    @contextmanager
    def scope(self) -> Iterator[None]:
        """What runs inside (a menu entry's body, a configfile) sets nothing
        that outlives it."""
        saved, unsure = dict(self.values), set(self.uncertain)
        try:
            yield
        finally:
            self.values, self.uncertain = saved, unsure

    @contextmanager
    def unsure(self) -> Iterator[None]:
        """Inside, every assignment is uncertain: a branch taken without
        knowing its condition."""
        self.dynamic += 1
        try:
            yield
        finally:
            self.dynamic -= 1

    def expand(self, words: Sequence[Word]) -> list[str]:
        """The words after `$name` expansion: an unquoted expansion splits on
        blanks and vanishes when empty, as in the shell."""
        out: list[str] = []
        for w in words:
            pieces: list[str] = [""]
            produced = w.quoted
            for p in w.parts:
                if not p.is_var:
                    pieces[-1] += p.text
                    produced = produced or bool(p.text)
                    continue
                value = self.values.get(p.text, "")
                if p.quoted:
                    pieces[-1] += value
                    continue
                fields = value.split()
                if not fields:
                    continue
                produced = True
                if value[:1].isspace():
                    pieces.append("")
                pieces[-1] += fields[0]
                pieces.extend(fields[1:])
                if value[-1:].isspace():
                    pieces.append("")
            if sum(map(len, pieces)) > MAX_EXPANSION:
                raise ConfigSyntaxError("a word expands to more than 1 MiB")
            kept = [x for x in pieces if x] if not w.quoted else pieces
            if produced:
                out.extend(kept or ([""] if w.quoted else []))
        return out
