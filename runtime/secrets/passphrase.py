"""A new TPM owner passphrase: one generated from the kernel's RNG, and the
strength rule for one the owner types.

The TPM's dictionary-attack protection does not cover hierarchy
authorizations (TPM 2.0 by design; only lockoutAuth is counted), so the owner
passphrase can be guessed as fast as the TPM answers: 200 tries took 0.24 s
on swtpm without moving the counter. Its strength is all that stands in the way.

Passphrases are bytearrays the caller wipes; nothing here copies one into a
str or bytes. Pure logic: no device, no UI.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass

# --- generated ---------------------------------------------------------------------

#: Lower-case letters that sit on the same key of QWERTY, QWERTZ and AZERTY
#: keyboards (a q w z y m move) and that no hand-written letter or digit looks
#: like (i l o; digits are left out as AZERTY types them with Shift, which the
#: firmware's US keymap reads as a sign).
ALPHABET = b"bcdefghjknprstuvx"
GROUPS = 5
GROUP_LENGTH = 5
#: one space between groups: the same key on every layout
SEPARATOR = ord(" ")
GENERATED_LETTERS = GROUPS * GROUP_LENGTH
GENERATED_BYTES = GENERATED_LETTERS + GROUPS - 1  # 29: within the TPM's 32
#: tries at typing the TPM owner passphrase before giving up (a typo is the likely cause)
OWNER_PASSPHRASE_ATTEMPTS = 3
#: 25 letters of 17: about 102 bits
GENERATED_BITS = GENERATED_LETTERS * math.log2(len(ALPHABET))


def generate() -> bytearray:
    """A new passphrase such as "kdrvs nbxpe fuhtc gjkse rtnvb", every letter
    drawn from the kernel RNG (the secrets module reads os.urandom). Allocated
    once at its full size, so no partial copy is left behind by a resize."""
    out = bytearray(GENERATED_BYTES)
    for position in range(GENERATED_BYTES):
        if position % (GROUP_LENGTH + 1) == GROUP_LENGTH:
            out[position] = SEPARATOR
        else:
            out[position] = ALPHABET[secrets.randbelow(len(ALPHABET))]
    return out


def mismatch(expected: bytearray, typed: bytearray) -> str:
    """Why ``typed`` is not ``expected`` in plain words ("" when it is): the
    group that first differs, never the characters."""
    if len(typed) == len(expected) and secrets.compare_digest(typed, expected):
        return ""
    for index in range(min(len(typed), len(expected))):
        if typed[index] != expected[index]:
            group = index // (GROUP_LENGTH + 1) + 1
            return (
                f"What you typed differs from the passphrase shown from group {group} on. "
                f"Each group has {GROUP_LENGTH} letters, with one space between groups."
            )
    if len(typed) < len(expected):
        return "What you typed is shorter than the passphrase shown: a part of it is missing."
    return "What you typed is longer than the passphrase shown."


# --- typed ---------------------------------------------------------------------------

MIN_LENGTH = 12
#: a low bar for a rough estimate that overrates human choices; at the ~830
#: tries a second swtpm answered, 2**60 tries take tens of millions of years
MIN_BITS = 60.0
#: the kinds of characters and how many of each a guesser must try
_LOWER, _UPPER, _DIGIT, _OTHER = "lower-case letters", "capitals", "digits", "signs"
_KIND_SIZE = {_LOWER: 26, _UPPER: 26, _DIGIT: 10, _OTHER: 33}  # other: ASCII punctuation+space
#: sequences a run follows, either way (keyboard rows of QWERTY, QWERTZ, AZERTY)
_RUNS = (
    b"abcdefghijklmnopqrstuvwxyz",
    b"01234567890",
    b"qwertyuiop",
    b"asdfghjkl",
    b"zxcvbnm",
    b"qwertzuiop",
    b"yxcvbnm",
    b"azertyuiop",
    b"qsdfghjklm",
    b"wxcvbn",
)

#: The rule as the prompt states it.
RULE = (
    f"At least {MIN_LENGTH} characters, and not easy to guess: lower-case letters "
    "alone need 13, digits alone 19, a mix of kinds (capitals, digits, signs; a space "
    "is a sign) 12. A repeat or a run (aaa, abcd, 4321, qwerty) counts only its first two "
    "characters."
)


@dataclass(frozen=True)
class Estimate:
    """How hard a passphrase is to guess, by the rule above."""

    characters: int
    #: characters that continue a repeat or a run: counted as nothing
    in_runs: int
    kinds: frozenset[str]
    bits: float


def _kind(byte: int) -> str:
    if 0x61 <= byte <= 0x7A:
        return _LOWER
    if 0x41 <= byte <= 0x5A:
        return _UPPER
    if 0x30 <= byte <= 0x39:
        return _DIGIT
    return _OTHER  # signs, space, and any non-ASCII letter


def _in_run(a: int, b: int, c: int) -> bool:
    if a == b == c:
        return True
    for row in _RUNS:
        for i in range(len(row) - 2):
            x, y, z = row[i], row[i + 1], row[i + 2]
            # compared one by one: no tuple of the passphrase's characters is made
            if b == y and ((a == x and c == z) or (a == z and c == x)):
                return True
    return False


def estimate(passphrase: bytes | bytearray) -> Estimate:
    """Counted per character, in place (no copy of the passphrase): each
    character that does not continue a repeat or a run of three is worth
    log2 of the characters its passphrase's kinds span."""
    characters = in_runs = 0
    kinds: set[str] = set()
    before = last = -1
    for byte in passphrase:
        if byte & 0xC0 == 0x80:
            continue  # a UTF-8 continuation byte: the character was counted
        characters += 1
        kinds.add(_kind(byte))
        # letters compared without case; a non-ASCII character is in no run (-1)
        folded = byte | 0x20 if 0x41 <= byte <= 0x5A else byte
        if byte >= 0x80:
            folded = -1
        if min(before, last, folded) >= 0 and _in_run(before, last, folded):
            in_runs += 1
        before, last = last, folded
    pool = sum(_KIND_SIZE[k] for k in kinds)
    bits = (characters - in_runs) * math.log2(pool) if pool else 0.0
    return Estimate(characters, in_runs, frozenset(kinds), bits)


def _listed(words: list[str], last: str) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + f" {last} " + words[-1]


def weakness(passphrase: bytes | bytearray) -> str:
    """Why a NEW passphrase is refused, in plain words ("" when it is strong
    enough). Never used on a passphrase the owner already set."""
    found = estimate(passphrase)
    if found.characters < MIN_LENGTH:
        return f"It has {found.characters} characters: at least {MIN_LENGTH} are needed."
    if found.bits >= MIN_BITS:
        return ""
    why = []
    if len(found.kinds) == 1:
        why.append(f"it has only {next(iter(found.kinds))}")
    if found.in_runs:
        why.append(
            f"{found.in_runs} of its characters continue a repeat or a run (such as "
            "aaa, abcd, 4321 or qwerty) and count for nothing"
        )
    if not why:  # not reached with today's numbers (see the tests): said plainly anyway
        why.append("it is short for the kinds of characters it has")
    per_character = math.log2(sum(_KIND_SIZE[k] for k in found.kinds))
    more = math.ceil((MIN_BITS - found.bits) / per_character)
    missing = [k for k in _KIND_SIZE if k not in found.kinds]
    characters = f"{more} character{'s' if more > 1 else ''}"
    advice = (
        f"Add {characters} that continue no run"
        if found.in_runs
        else f"Make it {characters} longer"
    )
    if missing:
        advice += ", or mix in " + _listed(missing, "or")
    return f"It is too easy to guess: {' and '.join(why)}. {advice}."
