"""Heads' internal entry line, parsed and printed byte for byte.

  <name>|elf|kernel <path>[|initrd <path>]...[|append <params>]
  <name>|xen|kernel <xen> [<args>][|module <path> [<args>]]...
  <name>|multiboot|kernel <kernel> [<args>][|module <path> [<args>]]...

Fields must come in that order, one space after each keyword; anything else is
refused, so that every accepted line prints back exactly as it was read.
"""

from __future__ import annotations

from dataclasses import dataclass

from runtime.boot_configs.entry import BootEntry, ConfigSyntaxError, EntryKind, Module

TYPE_WORDS = ("elf", "xen", "multiboot")


@dataclass(frozen=True)
class HeadsLine:
    """An entry plus what BootEntry cannot say: which multiboot word Heads used
    and whether an empty `|append ` field was present."""

    entry: BootEntry
    type_word: str = "elf"
    empty_append: bool = False


def _split_field(field: str) -> tuple[str, str]:
    keyword, sep, value = field.partition(" ")
    if not sep:
        raise ConfigSyntaxError(f"field {field!r} has no value")
    return keyword, value


def _path_and_args(keyword: str, value: str) -> tuple[str, str]:
    path, sep, args = value.partition(" ")
    if not path:
        raise ConfigSyntaxError(f"{keyword} field has no path")
    if any(c.isspace() for c in path):
        # a tab (or other blank) would end the path for kexec but not for the
        # ' ' split above, and could not be printed back: refuse it, as elf does
        raise ConfigSyntaxError(f"{keyword} path {path!r} contains a blank")
    if sep and not args:
        # "path " and "path" would both print as "path": refuse the ambiguity
        raise ConfigSyntaxError(f"{keyword} field has a trailing space")
    return path, args


def _single_path(keyword: str, value: str) -> str:
    if not value or any(c.isspace() for c in value):
        raise ConfigSyntaxError(f"{keyword} field needs exactly one path")
    return value


def _parse_elf(name: str, fields: list[str]) -> HeadsLine:
    keyword, value = _split_field(fields[0])
    if keyword != "kernel":
        raise ConfigSyntaxError("the first field after the type must be 'kernel'")
    kernel = _single_path("kernel", value)
    initrds: list[str] = []
    cmdline: str | None = None
    for field in fields[1:]:
        keyword, value = _split_field(field)
        if cmdline is not None:
            raise ConfigSyntaxError("'append' must be the last field")
        if keyword == "initrd":
            initrds.append(_single_path("initrd", value))
        elif keyword == "append":
            cmdline = value
        else:
            raise ConfigSyntaxError(f"unknown field {keyword!r} in an elf entry")
    entry = BootEntry(
        name=name,
        kind=EntryKind.LINUX,
        kernel=kernel,
        initrds=tuple(initrds),
        cmdline=cmdline or "",
    )
    return HeadsLine(entry, "elf", empty_append=cmdline == "")


def _parse_multiboot(name: str, type_word: str, fields: list[str]) -> HeadsLine:
    keyword, value = _split_field(fields[0])
    if keyword != "kernel":
        raise ConfigSyntaxError("the first field after the type must be 'kernel'")
    kernel, args = _path_and_args("kernel", value)
    modules: list[Module] = []
    for field in fields[1:]:
        keyword, value = _split_field(field)
        if keyword != "module":
            raise ConfigSyntaxError(f"unknown field {keyword!r} in a {type_word} entry")
        path, margs = _path_and_args("module", value)
        modules.append(Module(path, margs))
    entry = BootEntry(
        name=name, kind=EntryKind.MULTIBOOT, kernel=kernel, cmdline=args, modules=tuple(modules)
    )
    return HeadsLine(entry, type_word)


def parse_heads_line(text: str) -> HeadsLine:
    """One line (a single trailing newline is not part of it: strip it first)."""
    if "\n" in text or "\r" in text:
        raise ConfigSyntaxError("an entry line cannot contain a line break")
    fields = text.split("|")
    if len(fields) < 3:
        raise ConfigSyntaxError("an entry line needs a name, a type and a kernel field")
    name, type_word, rest = fields[0], fields[1], fields[2:]
    if type_word == "elf":
        return _parse_elf(name, rest)
    if type_word in ("xen", "multiboot"):
        return _parse_multiboot(name, type_word, rest)
    raise ConfigSyntaxError(f"unknown entry type {type_word!r}")


def _check_path(what: str, path: str) -> str:
    if not path or "|" in path or any(c.isspace() for c in path):
        raise ConfigSyntaxError(f"{what} path {path!r} cannot go in an entry line")
    return path


def _check_args(what: str, args: str) -> str:
    if "|" in args or "\n" in args or "\r" in args:
        raise ConfigSyntaxError(f"{what} arguments cannot contain '|' or a line break")
    return args


def _with_args(path: str, args: str) -> str:
    return f"{path} {args}" if args else path


def format_heads_line(item: BootEntry | HeadsLine) -> str:
    """The line Heads would write; '|' and line breaks are dropped from names
    (as Heads does for '|'), paths or arguments that cannot fit raise."""
    line = item if isinstance(item, HeadsLine) else None
    entry = line.entry if line else item
    assert isinstance(entry, BootEntry)
    name = entry.name.replace("|", "").replace("\n", " ").replace("\r", " ")
    if entry.kind is EntryKind.MULTIBOOT:
        type_word = line.type_word if line and line.type_word != "elf" else "xen"
        if entry.initrds:
            raise ConfigSyntaxError("a multiboot entry carries its initrds as modules")
        parts = [name, type_word]
        kernel = _check_path("kernel", entry.kernel)
        parts.append("kernel " + _with_args(kernel, _check_args("kernel", entry.cmdline)))
        for mod in entry.modules:
            path = _check_path("module", mod.path)
            parts.append("module " + _with_args(path, _check_args("module", mod.cmdline)))
        return "|".join(parts)
    # Heads has no separate plain-ELF type: bzImage and ELF both go to kexec as "elf"
    if entry.modules:
        raise ConfigSyntaxError("only multiboot entries have modules")
    parts = [name, "elf", "kernel " + _check_path("kernel", entry.kernel)]
    parts += ["initrd " + _check_path("initrd", path) for path in entry.initrds]
    if entry.cmdline or (line and line.empty_append):
        parts.append("append " + _check_args("append", entry.cmdline))
    return "|".join(parts)
