"""GRUB script structure: the lexer's flat commands grouped into blocks.

A block is a plain command, a `menuentry`/`submenu`/`function` body in
braces, an `if ... then ... elif ... else ... fi` chain, or a
`while`/`until`/`for ... do ... done` loop. Nothing is evaluated here;
problems that leave the file readable (an unclosed brace, a stray `fi`)
become warnings, and only nesting too deep to be a real menu is refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from runtime.boot_configs.entry import ConfigSyntaxError, ParseWarning
from runtime.boot_configs.grub_lexer import Command, Word

#: nested blocks ({ }, if) deeper than this are not a real menu: refuse the file.
MAX_NESTING = 64

_BODY_KEYWORDS = ("menuentry", "submenu", "function")
_LOOP_KEYWORDS = ("while", "until", "for")
_CLOSERS = frozenset({"}", "fi", "done"})

#: an if branch: its condition words (None for else) and its body
Branch = tuple[tuple[Word, ...] | None, list["Block"]]


@dataclass
class Block:
    kind: str  # "cmd", "menuentry", "submenu", "if", "function", "loop"
    line: int
    words: tuple[Word, ...] = ()
    body: list[Block] = field(default_factory=list)
    branches: list[Branch] = field(default_factory=list)  # if only


def _head(cmd: Command) -> str | None:
    return cmd.words[0].literal if cmd.words and not cmd.words[0].quoted else None


def _opens_brace(cmd: Command) -> bool:
    return bool(cmd.words) and cmd.words[-1].literal == "{" and not cmd.words[-1].quoted


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

    def warn(self, line: int, message: str) -> None:
        self.warnings.append(ParseWarning(self.source, line, message))

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

    def whole_file(self) -> list[Block]:
        blocks, stop = self.block(_CLOSERS)
        while stop is not None:
            # a stray closer: note it and read on, so later entries survive
            self.warn(self.cmds[self.i - 1].line if self.i else 0, f"unexpected '{stop}'")
            self.pending = None
            more, stop = self.block(_CLOSERS)
            blocks.extend(more)
        return blocks

    def block(self, stops: frozenset[str]) -> tuple[list[Block], str | None]:
        """Statements up to a stop keyword (returned) or the end (None)."""
        out: list[Block] = []
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
            if head in _BODY_KEYWORDS or _opens_brace(cmd):
                out.append(self._braced(cmd, head))
            elif head == "if":
                self._nested(cmd.line)
                out.append(self._if(cmd))
                self.nesting -= 1
            elif head in _LOOP_KEYWORDS:
                self._nested(cmd.line)
                body, _ = self.block(frozenset({"done"}))
                self.nesting -= 1
                self.warn(cmd.line, f"'{head}' loop not followed")
                out.append(Block("loop", cmd.line, cmd.words, body))
            else:
                out.append(Block("cmd", cmd.line, cmd.words))

    def _braced(self, cmd: Command, head: str | None) -> Block:
        self._nested(cmd.line)
        body, stop = self.block(frozenset({"}"}))
        self.nesting -= 1
        if stop is None:
            self.warn(cmd.line, "unclosed '{'")
        kind = head if head is not None and head in _BODY_KEYWORDS else "cmd"
        words = cmd.words[:-1] if cmd.words[-1].literal == "{" else cmd.words
        return Block(kind, cmd.line, words, body)

    def _if(self, cmd: Command) -> Block:
        blk = Block("if", cmd.line)
        cond: tuple[Word, ...] | None = cmd.words[1:]
        while True:
            # the condition runs to 'then'; its commands may span ';'
            pre, stop = self.block(frozenset({"then"}))
            if pre and cond is not None:
                cond = cond + tuple(w for b in pre for w in b.words)
            if stop is None:
                self.warn(blk.line, "'if' without 'then'")
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
                self.warn(blk.line, "'if' without 'fi'")
            return blk


def structure(cmds: list[Command], source: str, warnings: list[ParseWarning]) -> list[Block]:
    """The blocks of one file, in order; warnings are appended to ``warnings``.
    Raises ConfigSyntaxError only for nesting deeper than MAX_NESTING."""
    return _Structurer(cmds, source, warnings).whole_file()
