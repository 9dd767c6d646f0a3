"""GRUB 2 grub.cfg, read statically the way Heads' kexec-parse-boot.sh does:
no script is run, `set` assignments are followed in order, menu entries are
collected with their linux/initrd or multiboot/module lines.

Conditions: only static ones are evaluated (`true`, `false`, `test`/`[ ]` on
literals and on variables the configuration or the caller set for certain;
`-a`/`-o` are decided by one known side when it suffices); for anything
else (file tests, variables GRUB or the machine supplies) every branch is
taken, in order, with a warning, so the later branch's `set` wins, and what
those branches set becomes uncertain in turn. Functions are
recorded but never called (they load video modules or save defaults).
Device prefixes like (hd0,1) or ($root) are dropped: Heads reads the one
/boot it mounted. `search --file` and `probe --fs-uuid` know only what the
caller tells parse_grub (an ISO's host file system); other probes stay unset.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import cast

from runtime.boot_configs.bls import ReadOnlyFs, parse_bls
from runtime.boot_configs.entry import (
    BootEntry,
    ConfigSyntaxError,
    EntryKind,
    Module,
    ParseWarning,
)
from runtime.boot_configs.fs import BootFS, normalize
from runtime.boot_configs.grub_lexer import Command, Word, tokenize
from runtime.boot_configs.grubenv import parse_grubenv

#: configfile/source nesting; deeper is a loop or an attack.
MAX_DEPTH = 8
#: statements executed per parse, so nested blocks cannot blow up the work.
MAX_STEPS = 200_000
#: nested blocks ({ }, if) deeper than this are not a real menu: refuse the file.
MAX_NESTING = 64
#: a variable value longer than this is cut: `set a=$a$a` doubles each line.
MAX_VALUE = 64 * 1024
#: files read per parse (source/configfile can fan out before MAX_DEPTH stops it).
MAX_READS = 64
MAX_EXPANSION = 1024 * 1024

_DEVICE = re.compile(r"^\([^)]*\)")
_LINUX = frozenset({"linux", "linux16", "linuxefi", "kernel"})
_INITRD = frozenset({"initrd", "initrd16", "initrdefi"})
_MULTIBOOT = frozenset({"multiboot", "multiboot2"})
_MODULE = frozenset({"module", "module2"})
_OPTS_WITH_ARG = frozenset({"--class", "--users", "--hotkey", "--id"})
#: commands that set variables from the machine (or from text) at boot
_SETTERS = frozenset(
    {"regexp", "smbios", "getenv", "read", "cpuid", "hwmatch", "net_get_dhcp_option"}
)
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
_FileTest = Callable[[str, str], "bool | None"]


# --- structure ----------------------------------------------------------------


@dataclass
class _Block:
    kind: str  # "cmd", "menuentry", "submenu", "if", "function", "loop"
    line: int
    words: tuple[Word, ...] = ()
    body: list[_Block] = field(default_factory=list)
    # if: (condition words, body) per branch; else has condition None
    branches: list[tuple[tuple[Word, ...] | None, list[_Block]]] = field(default_factory=list)


def _head(cmd: Command) -> str | None:
    return cmd.words[0].literal if cmd.words and not cmd.words[0].quoted else None


def _strip_keyword(cmd: Command) -> Command | None:
    rest = cmd.words[1:]
    return Command(cmd.line, rest) if rest else None


def _split_braces(cmds: list[Command]) -> list[Command]:
    """`menuentry A { linux /v }` on one line: braces are tokens of their own,
    so split commands after an unquoted '{' and around an unquoted '}'."""
    out: list[Command] = []
    for cmd in cmds:
        cur: list[Word] = []
        for w in cmd.words:
            brace = None if w.quoted else w.literal
            if brace == "{":
                out.append(Command(cmd.line, (*cur, w)))
                cur = []
            elif brace == "}":
                if cur:
                    out.append(Command(cmd.line, tuple(cur)))
                out.append(Command(cmd.line, (w,)))
                cur = []
            else:
                cur.append(w)
        if cur:
            out.append(Command(cmd.line, tuple(cur)))
    return out


class _Structurer:
    def __init__(self, cmds: list[Command], source: str, warnings: list[ParseWarning]) -> None:
        self.cmds = _split_braces(cmds)
        self.i = 0
        self.source = source
        self.warnings = warnings
        self.pending: Command | None = None  # a command after a keyword on its line
        self.nesting = 0

    def _nested(self, line: int) -> None:
        self.nesting += 1
        if self.nesting > MAX_NESTING:
            raise ConfigSyntaxError(f"{self.source}:{line}: blocks nested too deep")

    def _next(self) -> Command | None:
        if self.pending is not None:
            cmd, self.pending = self.pending, None
            return cmd
        if self.i >= len(self.cmds):
            return None
        cmd = self.cmds[self.i]
        self.i += 1
        return cmd

    def block(self, stops: frozenset[str]) -> tuple[list[_Block], str | None]:
        """Statements up to a stop keyword (returned) or the end (None)."""
        out: list[_Block] = []
        while True:
            cmd = self._next()
            if cmd is None:
                return out, None
            head = _head(cmd)
            if head in stops:
                # 'then cmd' or '} cmd' on one line: the rest is a command;
                # 'elif cond' is read again by _if as the next condition
                self.pending = cmd if head == "elif" else _strip_keyword(cmd)
                return out, head
            if head in ("menuentry", "submenu", "function") or (
                cmd.words and cmd.words[-1].literal == "{" and not cmd.words[-1].quoted
            ):
                self._nested(cmd.line)
                body, stop = self.block(frozenset({"}"}))
                self.nesting -= 1
                if stop is None:
                    self.warnings.append(ParseWarning(self.source, cmd.line, "unclosed '{'"))
                kind = head if head in ("menuentry", "submenu", "function") else "cmd"
                words = cmd.words[:-1] if cmd.words[-1].literal == "{" else cmd.words
                out.append(_Block(kind, cmd.line, words, body))
                continue
            if head == "if":
                self._nested(cmd.line)
                out.append(self._if(cmd))
                self.nesting -= 1
                continue
            if head in ("while", "until", "for"):
                self._nested(cmd.line)
                body, stop = self.block(frozenset({"done"}))
                self.nesting -= 1
                self.warnings.append(
                    ParseWarning(self.source, cmd.line, f"'{head}' loop not followed")
                )
                out.append(_Block("loop", cmd.line, cmd.words, body))
                continue
            out.append(_Block("cmd", cmd.line, cmd.words))

    def _if(self, cmd: Command) -> _Block:
        blk = _Block("if", cmd.line)
        cond: tuple[Word, ...] | None = cmd.words[1:]
        while True:
            # the condition runs to 'then'; its commands may span ';'
            pre, stop = self.block(frozenset({"then"}))
            if pre and cond is not None:
                cond = cond + tuple(w for b in pre for w in b.words)
            if stop is None:
                self.warnings.append(ParseWarning(self.source, blk.line, "'if' without 'then'"))
                return blk
            body, stop = self.block(frozenset({"elif", "else", "fi"}))
            blk.branches.append((cond, body))
            if stop == "elif":
                nxt = self._next()
                cond = nxt.words[1:] if nxt is not None else ()
                continue
            if stop == "else":
                body, stop = self.block(frozenset({"fi"}))
                blk.branches.append((None, body))
            if stop is None:
                self.warnings.append(ParseWarning(self.source, blk.line, "'if' without 'fi'"))
            return blk


# --- evaluation ---------------------------------------------------------------


@dataclass
class _Entry:
    kind: EntryKind | None = None
    kernel: str = ""
    args: list[str] = field(default_factory=list)
    initrds: list[str] = field(default_factory=list)
    modules: list[Module] = field(default_factory=list)
    bad_path: str = ""  # a file name that leaves the root: the entry is refused


def _cmdline(args: Sequence[str]) -> str:
    """GRUB's loaders rejoin arguments with spaces and put double quotes round
    one holding a blank, so `x="a b"` reaches the kernel as one parameter."""
    return " ".join(f'"{a}"' if any(c in a for c in " \t") else a for a in args)


def _path(word: str) -> str:
    """A GRUB file name as a path from the root: device prefix dropped,
    '.' and '..' resolved; "" when it leaves the root or holds a control
    character (no file on a boot partition is named so)."""
    p = _DEVICE.sub("", word)
    if any(ord(c) < 0x20 or c == "\x7f" for c in p):
        return ""
    return normalize(p if p.startswith("/") else "/" + p) or ""


class _Parser:
    def __init__(
        self,
        fs: BootFS,
        warnings: list[ParseWarning],
        devices: Mapping[str, str] | None = None,
        fs_uuids: Mapping[str, str] | None = None,
    ) -> None:
        self.fs = fs
        self.warnings = warnings
        # what the caller knows of the machine: file -> device for `search
        # --file`, device -> fs UUID for `probe --fs-uuid`
        self.devices: Mapping[str, str] = devices or {}
        self.fs_uuids: Mapping[str, str] = fs_uuids or {}
        self.vars: dict[str, str] = {}
        self.entries: list[BootEntry] = []
        self.bls_entries: list[BootEntry] = []
        # per entry: (title path, id path, index path), each joined with '>'
        self.ids: list[tuple[str, str, str]] = []
        # GRUB's `default` counts items per menu level; submenus count too
        self.counters: list[int] = [0]
        self.index_path: list[str] = []
        self.id_path: list[str] = []
        self.steps = 0
        self.reads = 0
        # >0 while inside a branch taken without knowing its condition
        self.dynamic = 0
        # names whose value depends on the machine or on an unknown branch
        self.uncertain: set[str] = {"root", "cmdpath"}
        # an `eval` can set anything: from then on no unset variable is known empty
        self.eval_seen = False
        self.exec_depth = 0

    def warn(self, source: str, line: int, msg: str) -> None:
        self.warnings.append(ParseWarning(source, line, msg))

    def expand(self, words: Sequence[Word]) -> list[str]:
        out: list[str] = []
        for w in words:
            pieces: list[str] = [""]
            produced = w.quoted
            for p in w.parts:
                if not p.is_var:
                    pieces[-1] += p.text
                    produced = produced or bool(p.text)
                    continue
                value = self.vars.get(p.text, "")
                if p.quoted:
                    pieces[-1] += value
                    continue
                # an unquoted expansion splits on blanks, as in the shell
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

    def run_file(self, path: str, depth: int, menu: list[str]) -> None:
        self.reads += 1
        if self.reads > MAX_READS:
            self.warn(path, 0, "too many files read; skipped")
            return
        text = self.fs.read_text(path)
        if text is None:
            self.warn(path, 0, "unreadable")
            return
        cmds, lex_warnings = tokenize(text, path)
        self.warnings.extend(lex_warnings)
        st = _Structurer(cmds, path, self.warnings)
        stops = frozenset({"}", "fi", "done"})
        blocks, stop = st.block(stops)
        while stop is not None:
            # a stray closer: note it and read on, so later entries survive
            self.warn(path, st.cmds[st.i - 1].line if st.i else 0, f"unexpected '{stop}'")
            st.pending = None
            more, stop = st.block(stops)
            blocks.extend(more)
        self.vars.setdefault("prefix", posixpath.dirname(path))
        self.vars.setdefault("config_directory", posixpath.dirname(path))
        self.run(blocks, path, depth, menu, None)

    def run(
        self, blocks: list[_Block], source: str, depth: int, menu: list[str], entry: _Entry | None
    ) -> None:
        if self.exec_depth >= MAX_NESTING:
            # nested blocks across sourced files: stop before Python's stack does
            self.warn(source, blocks[0].line if blocks else 0, "nested too deep; skipped")
            return
        self.exec_depth += 1
        try:
            self._run(blocks, source, depth, menu, entry)
        finally:
            self.exec_depth -= 1

    def _run(
        self, blocks: list[_Block], source: str, depth: int, menu: list[str], entry: _Entry | None
    ) -> None:
        for blk in blocks:
            self.steps += 1
            if self.steps > MAX_STEPS:
                self.warn(source, blk.line, "too many statements; rest skipped")
                return
            if blk.kind == "if":
                self.run_if(blk, source, depth, menu, entry)
            elif blk.kind == "menuentry":
                if entry is None:
                    self.menuentry(blk, source, menu)
            elif blk.kind == "submenu":
                title, sub_id = self.title(blk, source)
                if entry is None and title is not None:
                    saved, unsure = dict(self.vars), set(self.uncertain)
                    self.index_path.append(str(self.counters[-1]))
                    self.id_path.append(sub_id or title)
                    self.counters.append(0)
                    self.run(blk.body, source, depth, [*menu, title], None)
                    self.counters.pop()
                    self.counters[-1] += 1
                    self.index_path.pop()
                    self.id_path.pop()
                    self.vars, self.uncertain = saved, unsure
            elif blk.kind == "cmd":
                self.command(blk, source, depth, menu, entry)
            elif blk.kind in ("function", "loop"):
                self.mark_assigned_unsure(blk.body if blk.kind == "function" else [blk])

    def known(self, name: str) -> bool:
        """Whether $name's value is known: set for certain, or never set by
        the configuration (empty) and not one GRUB or the machine supplies."""
        if name in self.uncertain:
            return False
        if name in self.vars:
            return True
        return not self.eval_seen and not _machine_supplied(name)

    def static_condition(self, words: tuple[Word, ...]) -> bool | None:
        """True/False when known at parse time, else None. Known: literals,
        variables known (see known()), and file tests on this file system."""
        if any(part.is_var and not self.known(part.text) for w in words for part in w.parts):
            return None
        args = self.expand(words)
        if args == ["true"]:
            return True
        if args == ["false"]:
            return False
        if len(args) >= 2 and args[0] == "[" and args[-1] == "]":
            return _test(args[1:-1], self.file_test)
        if args and args[0] == "test":
            return _test(args[1:], self.file_test)
        return None

    def file_test(self, op: str, path: str) -> bool | None:
        """`-e/-f/-d/-s path` on the file system being read; a path on a named
        device (hd0,1) is another disk's and stays unknown."""
        if path.startswith("(") or not path.startswith("/"):
            return None
        norm = normalize(path)
        if norm is None:
            return False
        scan = getattr(self.fs, "scan", None)
        is_dir = scan is not None and scan(norm) is not None
        if op == "-d":
            return is_dir if scan is not None else None
        if not self.fs.exists(norm):
            return False
        if op == "-e":
            return True
        if is_dir:
            return False
        return op == "-f" or self.fs.read_text(norm) != ""

    def mark_assigned_unsure(self, blocks: list[_Block]) -> None:
        """Bodies never run here (functions, loops) may set variables when
        GRUB runs them: whatever they assign is not known."""
        for blk in blocks:
            words = [w.raw() for w in blk.words]
            if words[:1] == ["do"]:
                words = words[1:]  # the loop body's first command shares a line with 'do'
            if blk.kind == "loop" and len(words) > 1 and words[0] == "for":
                self.uncertain.add(words[1])
            for target in _assigned_names(words):
                self.uncertain.add(target)
            self.mark_assigned_unsure(blk.body)
            for _, body in blk.branches:
                self.mark_assigned_unsure(body)

    def run_if(
        self, blk: _Block, source: str, depth: int, menu: list[str], entry: _Entry | None
    ) -> None:
        dynamic = False  # once a branch was unknown, every later one is too
        for cond, body in blk.branches:
            value = True if cond is None else self.static_condition(cond)
            if value is False:
                continue
            if value is None:
                self.warn(source, blk.line, "condition not evaluated; both branches taken")
                dynamic = True
            if dynamic:
                self.dynamic += 1
                try:
                    self.run(body, source, depth, menu, entry)
                finally:
                    self.dynamic -= 1
            else:
                self.run(body, source, depth, menu, entry)
                return

    def assign(self, name: str, value: str, certain: bool = True) -> None:
        self.vars[name] = value
        if certain and not self.dynamic:
            self.uncertain.discard(name)
        else:
            self.uncertain.add(name)

    def title(self, blk: _Block, source: str) -> tuple[str | None, str]:
        args = self.expand(blk.words[1:])
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
            self.warn(source, blk.line, f"{blk.kind} without a title; skipped")
            return None, entry_id
        if not entry_id and len(positional) > 1:
            entry_id = positional[1]  # `$menuentry_id_option` expanded empty: id stays positional
        return positional[0], entry_id

    def menuentry(self, blk: _Block, source: str, menu: list[str]) -> None:
        title, entry_id = self.title(blk, source)
        if title is None:
            return
        saved, unsure = dict(self.vars), set(self.uncertain)
        e = _Entry()
        self.run(blk.body, source, MAX_DEPTH, menu, e)
        self.vars, self.uncertain = saved, unsure
        if e.kind is None:
            self.warn(source, blk.line, f"menuentry {title!r} boots no kernel; skipped")
            return
        if e.bad_path:
            self.warn(
                source,
                blk.line,
                f"menuentry {title!r} names {e.bad_path!r}, "
                "outside the boot partition or not a file name; skipped",
            )
            return
        files = [e.kernel, *e.initrds, *(m.path for m in e.modules)]
        missing = [f for f in files if not self.fs.exists(f)]
        entry_warnings = tuple(f"missing file {f}" for f in missing)
        for msg in entry_warnings:
            self.warn(source, blk.line, f"{title!r}: {msg}")
        self.ids.append(
            (
                ">".join([*menu, title]),
                ">".join([*self.id_path, entry_id or title]),
                ">".join([*self.index_path, str(self.counters[-1])]),
            )
        )
        self.counters[-1] += 1
        self.entries.append(
            BootEntry(
                name=title,
                kind=e.kind,
                kernel=e.kernel,
                initrds=tuple(e.initrds),
                cmdline=_cmdline(e.args),
                modules=tuple(e.modules),
                source=source,
                line=blk.line,
                files_present=not missing,
                warnings=entry_warnings,
            )
        )

    def command(
        self, blk: _Block, source: str, depth: int, menu: list[str], entry: _Entry | None
    ) -> None:
        words = self.expand(blk.words)
        if not words:
            return
        head, args = words[0], words[1:]
        if head == "set" or ("=" in head and not head.startswith("=") and len(words) == 1):
            assign = args[0] if head == "set" and args else head
            if "=" in assign:
                name, value = assign.split("=", 1)
                if len(value) > MAX_VALUE:
                    self.warn(source, blk.line, f"${name} longer than {MAX_VALUE}; cut")
                    value = value[:MAX_VALUE]
                self.assign(name, value)
            return
        if head == "unset":
            for a in args:
                self.vars.pop(a, None)
            return
        if head == "load_env":
            self.load_env(args, source, blk.line)
            return
        if head == "search":
            self.search(args)
            return
        if head == "probe":
            self.probe(args, _refs_uncertain(self, blk.words), source, blk.line)
            return
        if head == "eval":
            self.eval_seen = True
            return
        if head in _SETTERS:
            for target in _assigned_names(words):
                self.uncertain.add(target)
                self.vars.pop(target, None)
            return
        if head in ("source", "configfile"):
            if not args:
                return
            if depth >= MAX_DEPTH:
                self.warn(source, blk.line, f"{head} nested too deep; skipped")
                return
            file = _path(args[0]) or None
            if file is None:
                self.warn(source, blk.line, f"{head} path outside the root; skipped")
                return
            if head == "configfile":
                saved, unsure = dict(self.vars), set(self.uncertain)
                self.run_file(file, depth + 1, menu)
                self.vars, self.uncertain = saved, unsure
            else:
                self.run_file(file, depth + 1, menu)
            return
        if head == "blscfg":
            self.blscfg(source, blk.line)
            return
        if entry is None:
            return

        def path(word: str) -> str:
            resolved = _path(word)
            if not resolved:
                entry.bad_path = entry.bad_path or word
            return resolved

        if head in _LINUX:
            if not args:
                self.warn(source, blk.line, f"{head} without a file")
                return
            entry.kind = EntryKind.LINUX
            entry.kernel = path(args[0])
            entry.args = args[1:]
        elif head in _INITRD:
            entry.initrds = [path(a) for a in args if not a.startswith("--")]
        elif head in _MULTIBOOT:
            files = [a for a in args if not a.startswith("--")]
            if not files:
                self.warn(source, blk.line, f"{head} without a file")
                return
            entry.kind = EntryKind.MULTIBOOT
            entry.kernel = path(files[0])
            entry.args = files[1:]
            entry.modules = []
        elif head in _MODULE:
            files = [a for a in args if not a.startswith("--")]
            if files:
                entry.modules.append(Module(path(files[0]), _cmdline(files[1:])))

    def search(self, args: list[str]) -> None:
        target = "root"
        for a in args:
            if a.startswith("--set="):
                target = a[len("--set=") :]
        positional = [a for a in args if not a.startswith("-")]
        if not positional:
            return
        device = self.devices.get(positional[-1]) if {"--file", "-f"} & set(args) else None
        if device is not None:
            # the caller knows which device holds this file (an ISO's host)
            self.assign(target, device)
        else:
            # the machine decides; the value only keeps ($root)/path readable
            self.assign(target, positional[-1], certain=False)

    def probe(self, args: list[str], unsure: bool, source: str, line: int) -> None:
        """`probe --set VAR --fs-uuid DEV`: answered from fs_uuids; any other
        probe, or a device the caller does not know, leaves VAR unset and
        uncertain, so conditions on it are not evaluated."""
        values, positional, flags = _options(args, {"--set": "set", "-s": "set"})
        target = values.get("set")
        wants_uuid = bool({"--fs-uuid", "-u"} & flags)
        device = positional[-1] if positional else ""
        if not target:
            return  # probe without --set only prints
        uuid = self.fs_uuids.get(device.strip("()")) if wants_uuid else None
        if uuid is None:
            self.vars.pop(target, None)
            self.uncertain.add(target)
            self.warn(source, line, f"probe: cannot answer for {device or 'no device'!r}")
            return
        self.assign(target, uuid, certain=not unsure)

    def load_env(self, args: list[str], source: str, line: int) -> None:
        values, names, _ = _options(args, {"-f": "file", "--file": "file"})
        path = values.get("file") or posixpath.join(self.vars.get("prefix", "/"), "grubenv")
        target = _path(path) or None
        text = self.fs.read_text(target) if target is not None else None
        if text is None or target is None:
            self.warn(source, line, f"load_env: no {path}")
            return
        env, env_warnings = parse_grubenv(text, target)
        self.warnings.extend(env_warnings)
        for k, v in env.items():
            if not names or k in names:
                self.assign(k, v)

    def blscfg(self, source: str, line: int) -> None:
        if not hasattr(self.fs, "listdir"):
            self.warn(source, line, "blscfg: the file system cannot list directories")
            return
        bls_fs = cast(ReadOnlyFs, self.fs)
        prefix = self.vars.get("prefix", "/")
        envs = (posixpath.join(prefix, "grubenv"), "/grub2/grubenv", "/boot/grub2/grubenv")
        for entries_dir in ("/loader/entries", "/boot/loader/entries"):
            known = {k: v for k, v in self.vars.items() if k not in self.uncertain}
            entries, warnings = parse_bls(bls_fs, entries_dir, envs, known)
            self.warnings.extend(warnings)
            if entries:
                self.entries.extend(entries)
                self.bls_entries.extend(entries)
                for e in entries:
                    # BLS entries are menu items of their own; the id is the file name
                    bls_id = posixpath.basename(e.source).removesuffix(".conf")
                    index = ">".join([*self.index_path, str(self.counters[-1])])
                    self.ids.append((e.name, bls_id, index))
                    self.counters[-1] += 1
                return
        self.warn(source, line, "blscfg: no BLS entries")


def _options(
    args: Sequence[str], valued: Mapping[str, str]
) -> tuple[dict[str, str], list[str], set[str]]:
    """A GRUB command's arguments: options taking a value (`--set X`,
    `--set=X`, `-s X`) under the name ``valued`` gives them, flags, and the
    positional words."""
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


def _refs_uncertain(p: _Parser, words: Sequence[Word]) -> bool:
    """Whether the words use a variable whose value is not known for certain."""
    return any(part.is_var and not p.known(part.text) for w in words for part in w.parts)


def _machine_supplied(name: str) -> bool:
    """Variables GRUB itself, the firmware or the menu supply at boot."""
    return (
        (not name[:1].isalpha() and name[:1] != "_")  # $1, $?, $# ...
        or name in _MACHINE_VARS
        or name.startswith(_MACHINE_PREFIXES)
    )


def _assigned_names(words: Sequence[str]) -> list[str]:
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


def _test(args: list[str], file_test: _FileTest | None = None) -> bool | None:
    """GRUB's `test` on known strings: -o, -a, !, -n, -z, =, ==, !=, integer
    comparisons; file tests (-e -f -d -s) through file_test, else unknown."""
    if len(args) > 32:
        return None  # no menu needs more; bounds the recursion below
    for joiner in ("-o", "-a"):
        if joiner in args:
            i = args.index(joiner)
            both = (_test(args[:i], file_test), _test(args[i + 1 :], file_test))
            # one known side can decide: `[ $grub_platform = efi -a -f /x ]` on pc
            decisive = joiner == "-o"
            if decisive in both:
                return decisive
            return None if None in both else not decisive
    if args[:1] == ["!"]:
        v = _test(args[1:], file_test)
        return None if v is None else not v
    if len(args) == 1:
        return bool(args[0])
    if len(args) == 2 and args[0] in ("-n", "-z"):
        return bool(args[1]) == (args[0] == "-n")
    if len(args) == 2 and args[0] in ("-e", "-f", "-d", "-s"):
        return file_test(args[0], args[1]) if file_test else None
    if len(args) == 3:
        lhs, op, rhs = args
        if op in ("=", "=="):
            return lhs == rhs
        if op == "!=":
            return lhs != rhs
        ops = {"-eq": 0, "-ne": 1, "-lt": 2, "-le": 3, "-gt": 4, "-ge": 5}
        if op in ops:
            try:
                x, y = int(lhs), int(rhs)
            except ValueError:
                return None
            return (x == y, x != y, x < y, x <= y, x > y, x >= y)[ops[op]]
    return None


def _default_index(p: _Parser, default: str | None) -> int | None:
    if not default:
        return None
    for i, (title, entry_id, index) in enumerate(p.ids):
        if default in (title, entry_id, index):
            return i
    # a bare title or id of an entry inside a submenu
    for i, (title, entry_id, _) in enumerate(p.ids):
        if default in (title.split(">")[-1], entry_id.split(">")[-1]):
            return i
    return None


def parse_grub(
    fs: BootFS,
    path: str,
    *,
    initial_vars: Mapping[str, str] | None = None,
    devices: Mapping[str, str] | None = None,
    fs_uuids: Mapping[str, str] | None = None,
) -> tuple[list[BootEntry], list[ParseWarning]]:
    """Menu entries of grub.cfg at path (and what it sources), menu order, rank set.

    initial_vars are set, for certain, before the file runs (GRUB sets iso_path
    before a loopback.cfg). devices maps a file to the device `search --file`
    finds it on; fs_uuids maps a device to what `probe --fs-uuid` reports."""
    warnings: list[ParseWarning] = []
    norm = normalize(path)
    if norm is None:
        return [], [ParseWarning(path, 0, "path outside the root")]
    p = _Parser(fs, warnings, devices, fs_uuids)
    for name, value in (initial_vars or {}).items():
        p.assign(name, value[:MAX_VALUE])
    p.run_file(norm, 0, [])
    entries = [replace(e, rank=i) for i, e in enumerate(p.entries)]
    idx = _default_index(p, p.vars.get("default"))
    if idx is None and p.vars.get("default"):
        warnings.append(ParseWarning(norm, 0, f"default {p.vars['default']!r} matches no entry"))
    if idx is None:
        bls_default = [i for i, e in enumerate(entries) if e.is_default]
        idx = bls_default[0] if bls_default else (0 if entries else None)
    entries = [replace(e, is_default=(i == idx)) for i, e in enumerate(entries)]
    return entries, warnings
