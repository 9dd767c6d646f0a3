"""GRUB commands as this reader follows them: a table from command name to
handler, for the commands that set variables, read other files, or load a
kernel inside a menu entry. Any other command (insmod, echo, terminal
setup) changes nothing a menu depends on and is passed over.

Handlers see expanded words. The loaders (linux, initrd, multiboot,
module) fill the draft of the menu entry being read and do nothing outside
one. `search --file` and `probe --fs-uuid` know only what the caller told
the reader; anything else they would find stays unknown.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, cast

from runtime.boot_configs.bls import ReadOnlyFs, parse_bls
from runtime.boot_configs.entry import EntryKind, Module, ParseWarning
from runtime.boot_configs.fs import BootFS, normalize
from runtime.boot_configs.grub_lexer import Word
from runtime.boot_configs.grub_menu import Menu
from runtime.boot_configs.grub_vars import MAX_VALUE, Variables, assigned_names
from runtime.boot_configs.grubenv import parse_grubenv

#: configfile/source nesting; deeper is a loop or an attack.
MAX_DEPTH = 8

_DEVICE = re.compile(r"^\([^)]*\)")
_LINUX = frozenset({"linux", "linux16", "linuxefi", "kernel"})
_INITRD = frozenset({"initrd", "initrd16", "initrdefi"})
_MULTIBOOT = frozenset({"multiboot", "multiboot2"})
_MODULE = frozenset({"module", "module2"})
#: commands that set variables from the machine (or from text) at boot
_SETTERS = frozenset(
    {"regexp", "smbios", "getenv", "read", "cpuid", "hwmatch", "net_get_dhcp_option"}
)


def grub_path(word: str) -> str:
    """A GRUB file name as a path from the root: device prefix dropped,
    '.' and '..' resolved; "" when it leaves the root or holds a control
    character (no file on a boot partition is named so)."""
    p = _DEVICE.sub("", word)
    if any(ord(c) < 0x20 or c == "\x7f" for c in p):
        return ""
    return normalize(p if p.startswith("/") else "/" + p) or ""


def kernel_cmdline(args: Sequence[str]) -> str:
    """GRUB's loaders rejoin arguments with spaces and put double quotes round
    one holding a blank, so `x="a b"` reaches the kernel as one parameter."""
    return " ".join(f'"{a}"' if any(c in a for c in " \t") else a for a in args)


@dataclass
class EntryDraft:
    """What a menu entry's body has loaded so far."""

    kind: EntryKind | None = None
    kernel: str = ""
    args: list[str] = field(default_factory=list)
    initrds: list[str] = field(default_factory=list)
    modules: list[Module] = field(default_factory=list)
    bad_path: str = ""  # a file name that leaves the root: the entry is refused

    def file(self, word: str) -> str:
        resolved = grub_path(word)
        if not resolved:
            self.bad_path = self.bad_path or word
        return resolved


@dataclass(frozen=True)
class Call:
    """One command line to run: its words expanded, and where it stands."""

    head: str
    args: list[str]
    written: tuple[Word, ...]  # the words as written, before expansion
    source: str
    line: int
    depth: int  # configfile/source nesting
    entry: EntryDraft | None  # the menu entry whose body this is, if any


class Interpreter(Protocol):
    """What handlers need of the reader running them."""

    fs: BootFS
    vars: Variables
    menu: Menu
    warnings: list[ParseWarning]
    devices: Mapping[str, str]  # file -> device, for `search --file`
    fs_uuids: Mapping[str, str]  # device -> fs UUID, for `probe --fs-uuid`

    def warn(self, source: str, line: int, message: str) -> None: ...

    def run_file(self, path: str, depth: int) -> None: ...


Handler = Callable[[Interpreter, Call], None]


def _options(
    args: Sequence[str], valued: Mapping[str, str]
) -> tuple[dict[str, str], list[str], set[str]]:
    """A GRUB command's arguments: options taking a value (`--set X`,
    `--set=X`, `-s X`) under the name ``valued`` gives them, the positional
    words, and the flags."""
    values: dict[str, str] = {}
    positional: list[str] = []
    flags: set[str] = set()
    i = 0
    while i < len(args):
        a = args[i]
        name, eq, inline = a.partition("=")
        if a in valued and i + 1 < len(args):
            values[valued[a]] = args[i + 1]
            i += 2
            continue
        if eq and a.startswith("--") and name in valued:
            values[valued[name]] = inline
        elif a.startswith("-"):
            flags.add(a)
        else:
            positional.append(a)
        i += 1
    return values, positional, flags


# --- variables ----------------------------------------------------------------


def _assign_word(ip: Interpreter, call: Call, word: str) -> None:
    if "=" not in word:
        return
    name, value = word.split("=", 1)
    if len(value) > MAX_VALUE:
        ip.warn(call.source, call.line, f"${name} longer than {MAX_VALUE}; cut")
        value = value[:MAX_VALUE]
    ip.vars.assign(name, value)


def _set(ip: Interpreter, call: Call) -> None:
    if call.args:
        _assign_word(ip, call, call.args[0])


def _unset(ip: Interpreter, call: Call) -> None:
    for name in call.args:
        ip.vars.unset(name)


def _eval(ip: Interpreter, call: Call) -> None:
    ip.vars.eval_seen = True


def _machine_setter(ip: Interpreter, call: Call) -> None:
    for target in assigned_names([call.head, *call.args]):
        ip.vars.forget(target)


def _load_env(ip: Interpreter, call: Call) -> None:
    values, names, _ = _options(call.args, {"-f": "file", "--file": "file"})
    path = values.get("file") or posixpath.join(ip.vars.values.get("prefix", "/"), "grubenv")
    target = grub_path(path) or None
    text = ip.fs.read_text(target) if target is not None else None
    if text is None or target is None:
        ip.warn(call.source, call.line, f"load_env: no {path}")
        return
    env, env_warnings = parse_grubenv(text, target)
    ip.warnings.extend(env_warnings)
    for k, v in env.items():
        if not names or k in names:
            ip.vars.assign(k, v)


def _search(ip: Interpreter, call: Call) -> None:
    target = "root"
    for a in call.args:
        if a.startswith("--set="):
            target = a[len("--set=") :]
    positional = [a for a in call.args if not a.startswith("-")]
    if not positional:
        return
    wants_file = bool({"--file", "-f"} & set(call.args))
    device = ip.devices.get(positional[-1]) if wants_file else None
    if device is not None:
        # the caller knows which device holds this file (an ISO's host)
        ip.vars.assign(target, device)
    else:
        # the machine decides; the value only keeps ($root)/path readable
        ip.vars.assign(target, positional[-1], certain=False)


def _probe(ip: Interpreter, call: Call) -> None:
    """`probe --set VAR --fs-uuid DEV`: answered from fs_uuids; any other
    probe, or a device the caller does not know, leaves VAR unset and
    uncertain, so conditions on it are not evaluated."""
    values, positional, flags = _options(call.args, {"--set": "set", "-s": "set"})
    target = values.get("set")
    wants_uuid = bool({"--fs-uuid", "-u"} & flags)
    device = positional[-1] if positional else ""
    if not target:
        return  # probe without --set only prints
    uuid = ip.fs_uuids.get(device.strip("()")) if wants_uuid else None
    if uuid is None:
        ip.vars.forget(target)
        ip.warn(call.source, call.line, f"probe: cannot answer for {device or 'no device'!r}")
        return
    ip.vars.assign(target, uuid, certain=not ip.vars.refs_unknown(call.written))


# --- other files --------------------------------------------------------------


def _included_file(ip: Interpreter, call: Call) -> str | None:
    if not call.args:
        return None
    if call.depth >= MAX_DEPTH:
        ip.warn(call.source, call.line, f"{call.head} nested too deep; skipped")
        return None
    file = grub_path(call.args[0]) or None
    if file is None:
        ip.warn(call.source, call.line, f"{call.head} path outside the root; skipped")
    return file


def _source(ip: Interpreter, call: Call) -> None:
    file = _included_file(ip, call)
    if file is not None:
        ip.run_file(file, call.depth + 1)


def _configfile(ip: Interpreter, call: Call) -> None:
    """A new menu context: what the file sets does not come back."""
    file = _included_file(ip, call)
    if file is not None:
        with ip.vars.scope():
            ip.run_file(file, call.depth + 1)


def _blscfg(ip: Interpreter, call: Call) -> None:
    if not hasattr(ip.fs, "listdir"):
        ip.warn(call.source, call.line, "blscfg: the file system cannot list directories")
        return
    bls_fs = cast(ReadOnlyFs, ip.fs)
    prefix = ip.vars.values.get("prefix", "/")
    envs = (posixpath.join(prefix, "grubenv"), "/grub2/grubenv", "/boot/grub2/grubenv")
    for entries_dir in ("/loader/entries", "/boot/loader/entries"):
        entries, warnings = parse_bls(bls_fs, entries_dir, envs, ip.vars.certain_values())
        ip.warnings.extend(warnings)
        if entries:
            ip.menu.add_bls(entries)
            return
    ip.warn(call.source, call.line, "blscfg: no BLS entries")


# --- loaders, inside a menu entry ---------------------------------------------

_Loader = Callable[[Interpreter, Call, EntryDraft], None]


def _inside_entry(load: _Loader) -> Handler:
    """Outside a menu entry a loader command boots nothing: pass it over."""

    def handler(ip: Interpreter, call: Call) -> None:
        if call.entry is not None:
            load(ip, call, call.entry)

    return handler


def _files(args: Sequence[str]) -> list[str]:
    return [a for a in args if not a.startswith("--")]


def _linux(ip: Interpreter, call: Call, entry: EntryDraft) -> None:
    if not call.args:
        ip.warn(call.source, call.line, f"{call.head} without a file")
        return
    entry.kind = EntryKind.LINUX
    entry.kernel = entry.file(call.args[0])
    entry.args = call.args[1:]


def _initrd(ip: Interpreter, call: Call, entry: EntryDraft) -> None:
    entry.initrds = [entry.file(a) for a in _files(call.args)]


def _multiboot(ip: Interpreter, call: Call, entry: EntryDraft) -> None:
    files = _files(call.args)
    if not files:
        ip.warn(call.source, call.line, f"{call.head} without a file")
        return
    entry.kind = EntryKind.MULTIBOOT
    entry.kernel = entry.file(files[0])
    entry.args = files[1:]
    entry.modules = []


def _module(ip: Interpreter, call: Call, entry: EntryDraft) -> None:
    files = _files(call.args)
    if files:
        entry.modules.append(Module(entry.file(files[0]), kernel_cmdline(files[1:])))


COMMANDS: dict[str, Handler] = {
    "set": _set,
    "unset": _unset,
    "eval": _eval,
    "load_env": _load_env,
    "search": _search,
    "probe": _probe,
    "source": _source,
    "configfile": _configfile,
    "blscfg": _blscfg,
    **dict.fromkeys(_SETTERS, _machine_setter),
    **dict.fromkeys(_LINUX, _inside_entry(_linux)),
    **dict.fromkeys(_INITRD, _inside_entry(_initrd)),
    **dict.fromkeys(_MULTIBOOT, _inside_entry(_multiboot)),
    **dict.fromkeys(_MODULE, _inside_entry(_module)),
}


def run_command(ip: Interpreter, call: Call) -> None:
    # `name=value` alone on a line assigns, as `set name=value` does
    if "=" in call.head and not call.head.startswith("=") and not call.args:
        _assign_word(ip, call, call.head)
        return
    handler = COMMANDS.get(call.head)
    if handler is not None:
        handler(ip, call)
