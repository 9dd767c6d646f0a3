"""GRUB 2 script word splitting: the shell-like layer under grub.cfg.

Facts from GRUB's manual ("Shell-like scripting"): words split on blanks;
';' and newlines end a command; '#' at the start of a word comments out the
rest of the line; a backslash-newline joins lines; single quotes keep
everything literal; double quotes keep everything but '$' expansions and the
escapes \\$ \\" \\\\ and backslash-newline; an unquoted backslash keeps the next
character literally. Expansion happens later (the parser runs `set` in order),
so a word stays a list of parts: literal text or a variable reference.
"""

from __future__ import annotations

from dataclasses import dataclass

from runtime.boot_configs.entry import ParseWarning

_BLANKS = " \t\r"
_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")
_SPECIAL_VARS = frozenset("?#@*")


@dataclass(frozen=True)
class Part:
    text: str  # literal text, or the variable's name when is_var
    is_var: bool = False
    quoted: bool = False  # quoted expansions are not split on blanks


@dataclass(frozen=True)
class Word:
    parts: tuple[Part, ...]

    @property
    def literal(self) -> str | None:
        """The text if the word holds no variable reference."""
        if any(p.is_var for p in self.parts):
            return None
        return "".join(p.text for p in self.parts)

    @property
    def quoted(self) -> bool:
        return any(p.quoted for p in self.parts)

    def raw(self) -> str:
        """Text with references shown as ${name}: for messages and keywords."""
        return "".join("${" + p.text + "}" if p.is_var else p.text for p in self.parts)


@dataclass(frozen=True)
class Command:
    line: int  # 1-based line of the first word
    words: tuple[Word, ...]


def _var_ref(text: str, i: int) -> tuple[str | None, int]:
    """A reference starting at text[i] == '$': (name, index after it)."""
    j = i + 1
    if j < len(text) and text[j] == "{":
        end = text.find("}", j + 1)
        if end < 0:
            return None, i + 1
        return text[j + 1 : end], end + 1
    if j < len(text) and text[j] in _SPECIAL_VARS:
        return text[j], j + 1
    k = j
    while k < len(text) and text[k] in _NAME_CHARS:
        k += 1
    if k == j:
        return None, i + 1  # a lone '$' is literal
    return text[j:k], k


def tokenize(text: str, source: str = "grub.cfg") -> tuple[list[Command], list[ParseWarning]]:
    """Commands in order; never raises on bad input (problems become warnings)."""
    commands: list[Command] = []
    warnings: list[ParseWarning] = []
    words: list[Word] = []
    parts: list[Part] = []
    lit: list[str] = []
    in_word = False
    line = 1
    cmd_line = 1
    i = 0
    n = len(text)

    def flush_lit(quoted: bool) -> None:
        if lit:
            parts.append(Part("".join(lit), quoted=quoted))
            lit.clear()

    def end_word() -> None:
        nonlocal in_word
        flush_lit(False)
        if in_word:
            words.append(Word(tuple(parts)))
        parts.clear()
        in_word = False

    def end_command() -> None:
        end_word()
        if words:
            commands.append(Command(cmd_line, tuple(words)))
        words.clear()

    while i < n:
        c = text[i]
        if not words and not in_word and c not in _BLANKS + "\n;":
            cmd_line = line
        if c == "\\":
            if i + 1 < n and text[i + 1] == "\n":
                line += 1
                i += 2
                continue
            in_word = True
            if i + 1 < n:
                lit.append(text[i + 1])
                line += text[i + 1] == "\n"
                i += 2
            else:
                i += 1
            continue
        if c in _BLANKS:
            end_word()
            i += 1
            continue
        if c in "\n;":
            end_command()
            line += c == "\n"
            i += 1
            continue
        if c == "#" and not in_word:
            while i < n and text[i] != "\n":
                i += 1
            continue
        if c == "'":
            in_word = True
            flush_lit(False)
            end = text.find("'", i + 1)
            if end < 0:
                warnings.append(ParseWarning(source, line, "unterminated single quote"))
                end = n
            chunk = text[i + 1 : end]
            parts.append(Part(chunk, quoted=True))
            line += chunk.count("\n")
            i = end + 1
            continue
        if c == '"':
            in_word = True
            flush_lit(False)
            start_line = line
            i += 1
            closed = False
            while i < n:
                d = text[i]
                if d == '"':
                    closed = True
                    i += 1
                    break
                if d == "\\" and i + 1 < n and text[i + 1] in '$"\\\n':
                    if text[i + 1] == "\n":
                        line += 1
                    else:
                        lit.append(text[i + 1])
                    i += 2
                    continue
                if d == "$":
                    name, j = _var_ref(text, i)
                    if name is not None:
                        flush_lit(True)
                        parts.append(Part(name, is_var=True, quoted=True))
                        i = j
                        continue
                line += d == "\n"
                lit.append(d)
                i += 1
            flush_lit(True)
            if not closed:
                warnings.append(ParseWarning(source, start_line, "unterminated double quote"))
            continue
        if c == "$":
            name, j = _var_ref(text, i)
            if name is not None:
                in_word = True
                flush_lit(False)
                parts.append(Part(name, is_var=True))
                i = j
                continue
        in_word = True
        lit.append(c)
        i += 1
    end_command()
    return commands, warnings
