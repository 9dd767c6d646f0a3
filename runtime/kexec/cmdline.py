"""The kernel command line Heads' ``_build_final_cmdline`` would give
(../shared/reference/heads-facts.md §5.3).

Steps, in order:
  1. strip ``---`` (the multiboot module separator GRUB configs leave behind);
  2. drop every REMOVE word from ADD, the entry's params and the board's ADD;
  3. result = ADD + params;
  4. for the ISO keys, an ADD value replaces every occurrence and is kept once;
  5. add the board's ADD words that the kernel does not already get, before
     the first standalone ``--`` (after it the kernel passes words to init, so
     board words there would never reach the kernel), else at the end.

A word is a whitespace-delimited token, except that a double-quoted part
(``foo="a b"``) stays inside its word, as the kernel's own parser keeps it.
Words are compared whole: REMOVE ``quiet`` does not touch ``quiet=1``.
"""

from __future__ import annotations

#: Keys whose value an ISO boot's ADD must own (../shared/reference/heads-facts.md §5.3,
#: ``_build_universal_add``).
ISO_KEYS = frozenset(("iso-scan/filename", "findiso", "img_dev", "img_loop", "iso", "live-media"))
#: Heads warns above this many bytes: many kernels truncate longer command lines.
MAX_CMDLINE_BYTES = 2047
SEPARATOR = "---"
#: A word the kernel reads as "the rest is for init": it strips the quotes
#: around a parameter before comparing, so the quoted form counts too.
END_OF_KERNEL_PARAMS = frozenset(("--", '"--"'))


def split_words(text: str) -> list[str]:
    """Whitespace-delimited words; blanks inside double quotes do not split.

    An unterminated quote runs to the end of the text, as in the kernel.
    """
    words: list[str] = []
    current: list[str] = []
    quoted = False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char.isspace() and not quoted:
            if current:
                words.append("".join(current))
                current = []
            continue
        current.append(char)
    if current:
        words.append("".join(current))
    return words


def _strip_separator(text: str) -> str:
    # One pass leaves at most two dashes of any run, so no new '---' can form.
    return text.replace(SEPARATOR, "")


def _key(word: str) -> str:
    return word.partition("=")[0]


def _without(words: list[str], remove: set[str]) -> list[str]:
    return [w for w in words if w not in remove]


def _iso_values_once(words: list[str], add_keys: set[str]) -> list[str]:
    """Keep only the first word of each ISO key that ADD sets: ADD comes first,
    so that word is ADD's own and every later one (from params) goes."""
    seen: set[str] = set()
    kept: list[str] = []
    for word in words:
        key = _key(word)
        if key in add_keys:
            if key in seen:
                continue
            seen.add(key)
        kept.append(word)
    return kept


def final_cmdline(params: str, add: str = "", remove: str = "", board_add: str = "") -> str:
    """The command line for an entry's ``params`` with Heads' ADD/REMOVE rules."""
    removed = set(split_words(_strip_separator(remove)))
    add_words = _without(split_words(_strip_separator(add)), removed)
    param_words = _without(split_words(_strip_separator(params)), removed)
    board_words = _without(split_words(_strip_separator(board_add)), removed)

    words = add_words + param_words
    add_iso_keys = {_key(w) for w in add_words if _key(w) in ISO_KEYS}
    words = _iso_values_once(words, add_iso_keys)

    end = next((i for i, w in enumerate(words) if w in END_OF_KERNEL_PARAMS), len(words))
    # only words before '--' count as present: a word after it goes to init
    present = set(words[:end])
    board_new: list[str] = []
    for word in board_words:
        if word not in present:
            board_new.append(word)
            present.add(word)
    return " ".join(words[:end] + board_new + words[end:])


def cmdline_warnings(cmdline: str) -> list[str]:
    """Plain-words warnings about a final command line (empty when it is fine)."""
    warnings = []
    size = len(cmdline.encode("utf-8"))
    if size > MAX_CMDLINE_BYTES:
        warnings.append(
            f"The kernel command line is {size} bytes, more than {MAX_CMDLINE_BYTES}: "
            "the kernel may cut it short and ignore the last parameters."
        )
    if cmdline.count('"') % 2:
        warnings.append(
            "The kernel command line has an unmatched double quote: the kernel reads "
            "everything after it as one parameter."
        )
    return warnings


def cmdline_refusal(cmdline: str) -> str:
    """Why a final command line must not be booted on the verified path, in
    plain words ("" when it may be).

    An unmatched double quote makes the kernel read everything after it as one
    parameter, so the words appended after it (the board's own) never take
    effect: booting it would silently drop the owner's settings.
    """
    if cmdline.count('"') % 2:
        return (
            "The kernel command line has an unmatched double quote: the kernel would "
            "read everything after it, including the board's own parameters, as one "
            "parameter. Fix the quotes in the boot entry's kernel parameters."
        )
    return ""
