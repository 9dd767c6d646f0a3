"""The reader that walks a grub.cfg's blocks in order, as GRUB would run them,
and collects the menu entries they define.

Commands go through grub_commands' table. An `if` whose condition is known
(grub_test_builtin) runs its one branch; otherwise every branch is taken in
order, with a warning, and what they set becomes uncertain. Function and
loop bodies are never run; only what they may set is noted as uncertain.
Budgets (statements, files read, nesting) keep a hostile file bounded.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping

from runtime.boot_configs.entry import BootEntry, ParseWarning
from runtime.boot_configs.fs import BootFS
from runtime.boot_configs.grub_blocks import MAX_NESTING, Block, structure
from runtime.boot_configs.grub_commands import (
    MAX_DEPTH,
    Call,
    EntryDraft,
    kernel_cmdline,
    run_command,
)
from runtime.boot_configs.grub_lexer import Word, tokenize
from runtime.boot_configs.grub_menu import Menu, menu_title
from runtime.boot_configs.grub_test_builtin import evaluate_condition, file_test_on
from runtime.boot_configs.grub_vars import Variables, assigned_names

#: statements executed per parse, so nested blocks cannot blow up the work.
MAX_STEPS = 200_000
#: files read per parse (source/configfile can fan out before MAX_DEPTH stops it).
MAX_READS = 64


class Evaluator:
    def __init__(
        self,
        fs: BootFS,
        devices: Mapping[str, str] | None = None,
        fs_uuids: Mapping[str, str] | None = None,
    ) -> None:
        self.fs = fs
        self.warnings: list[ParseWarning] = []
        # what the caller knows of the machine: file -> device for `search
        # --file`, device -> fs UUID for `probe --fs-uuid`
        self.devices: Mapping[str, str] = devices or {}
        self.fs_uuids: Mapping[str, str] = fs_uuids or {}
        self.vars = Variables()
        self.menu = Menu()
        self.file_test = file_test_on(fs)
        self.steps = 0
        self.reads = 0
        self.exec_depth = 0

    def warn(self, source: str, line: int, message: str) -> None:
        self.warnings.append(ParseWarning(source, line, message))

    def run_file(self, path: str, depth: int) -> None:
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
        blocks = structure(cmds, path, self.warnings)
        self.vars.values.setdefault("prefix", posixpath.dirname(path))
        self.vars.values.setdefault("config_directory", posixpath.dirname(path))
        self.run(blocks, path, depth, None)

    def run(self, blocks: list[Block], source: str, depth: int, entry: EntryDraft | None) -> None:
        if self.exec_depth >= MAX_NESTING:
            # nested blocks across sourced files: stop before Python's stack does
            self.warn(source, blocks[0].line if blocks else 0, "nested too deep; skipped")
            return
        self.exec_depth += 1
        try:
            self._run(blocks, source, depth, entry)
        finally:
            self.exec_depth -= 1

    def _run(self, blocks: list[Block], source: str, depth: int, entry: EntryDraft | None) -> None:
        for blk in blocks:
            self.steps += 1
            if self.steps > MAX_STEPS:
                self.warn(source, blk.line, "too many statements; rest skipped")
                return
            if blk.kind == "if":
                self.run_if(blk, source, depth, entry)
            elif blk.kind == "menuentry":
                if entry is None:
                    self.menuentry(blk, source)
            elif blk.kind == "submenu":
                self.submenu(blk, source, depth, entry)
            elif blk.kind == "cmd":
                self.command(blk, source, depth, entry)
            elif blk.kind == "function":
                self.mark_assigned_unsure(blk.body)
            elif blk.kind == "loop":
                self.mark_assigned_unsure([blk])

    def static_condition(self, words: tuple[Word, ...]) -> bool | None:
        """True/False when known at parse time, else None. Known: literals,
        variables known (see Variables.known), and file tests on this file system."""
        if self.vars.refs_unknown(words):
            return None
        return evaluate_condition(self.vars.expand(words), self.file_test)

    def run_if(self, blk: Block, source: str, depth: int, entry: EntryDraft | None) -> None:
        dynamic = False  # once a branch was unknown, every later one is too
        for cond, body in blk.branches:
            value = True if cond is None else self.static_condition(cond)
            if value is False:
                continue
            if value is None:
                self.warn(source, blk.line, "condition not evaluated; both branches taken")
                dynamic = True
            if not dynamic:
                self.run(body, source, depth, entry)
                return
            with self.vars.unsure():
                self.run(body, source, depth, entry)

    def mark_assigned_unsure(self, blocks: list[Block]) -> None:
        """Bodies never run here (functions, loops) may set variables when
        GRUB runs them: whatever they assign is not known."""
        for blk in blocks:
            words = [w.raw() for w in blk.words]
            if words[:1] == ["do"]:
                words = words[1:]  # the loop body's first command shares a line with 'do'
            if blk.kind == "loop" and len(words) > 1 and words[0] == "for":
                self.vars.doubt(words[1])
            for target in assigned_names(words):
                self.vars.doubt(target)
            self.mark_assigned_unsure(blk.body)
            for _, body in blk.branches:
                self.mark_assigned_unsure(body)

    def command(self, blk: Block, source: str, depth: int, entry: EntryDraft | None) -> None:
        words = self.vars.expand(blk.words)
        if words:
            run_command(self, Call(words[0], words[1:], blk.words, source, blk.line, depth, entry))

    def title(self, blk: Block, source: str) -> tuple[str | None, str]:
        title, entry_id = menu_title(self.vars.expand(blk.words[1:]))
        if title is None:
            self.warn(source, blk.line, f"{blk.kind} without a title; skipped")
        return title, entry_id

    def submenu(self, blk: Block, source: str, depth: int, entry: EntryDraft | None) -> None:
        title, submenu_id = self.title(blk, source)
        if entry is not None or title is None:
            return
        with self.vars.scope(), self.menu.submenu(title, submenu_id):
            self.run(blk.body, source, depth, None)

    def menuentry(self, blk: Block, source: str) -> None:
        title, entry_id = self.title(blk, source)
        if title is None:
            return
        draft = EntryDraft()
        with self.vars.scope():
            # MAX_DEPTH: a source inside an entry's body is not followed
            self.run(blk.body, source, MAX_DEPTH, draft)
        entry = self._finish(draft, title, source, blk.line)
        if entry is not None:
            self.menu.add(entry, entry_id)

    def _finish(self, draft: EntryDraft, title: str, source: str, line: int) -> BootEntry | None:
        """The entry a body loaded, or None (with a warning) when it boots nothing."""
        if draft.kind is None:
            self.warn(source, line, f"menuentry {title!r} boots no kernel; skipped")
            return None
        if draft.bad_path:
            self.warn(
                source,
                line,
                f"menuentry {title!r} names {draft.bad_path!r}, "
                "outside the boot partition or not a file name; skipped",
            )
            return None
        files = [draft.kernel, *draft.initrds, *(m.path for m in draft.modules)]
        missing = [f for f in files if not self.fs.exists(f)]
        entry_warnings = tuple(f"missing file {f}" for f in missing)
        for msg in entry_warnings:
            self.warn(source, line, f"{title!r}: {msg}")
        return BootEntry(
            name=title,
            kind=draft.kind,
            kernel=draft.kernel,
            initrds=tuple(draft.initrds),
            cmdline=kernel_cmdline(draft.args),
            modules=tuple(draft.modules),
            source=source,
            line=line,
            files_present=not missing,
            warnings=entry_warnings,
        )
