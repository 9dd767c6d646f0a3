"""What a check of /boot found (runtime.integrity.verify_boot): each problem,
with the kind the decisions are made on; its findings in plain words; and
what was seen, so a signing signs nothing the owner was not shown.

A problem's text is for people only: whether a signing is offered, and what
the verdict calls /boot, follow from its `ProblemKind`.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runtime.integrity.boot_view import Signed


class ProblemKind(enum.Enum):
    """What a problem means for the owner."""

    #: /boot or the TPM moved on from the signed state as the owner's own work
    #: does (an OS update, a new kernel, a TPM reset): signing /boot again answers it
    RESIGNABLE = "resignable"
    #: a good signature, by a key that is not the owner's
    OTHER_SIGNER = "other-signer"
    #: the signed lists themselves changed: what they say changed is no guide
    LISTS_CHANGED = "lists-changed"
    #: an older signed /boot was put back
    ROLLED_BACK = "rolled-back"
    #: /boot, its lists or the signature could not be read or checked
    UNCHECKED = "unchecked"


class Problem(enum.StrEnum):
    """One thing wrong with /boot; the value is its name as people read it."""

    SIGNATURE_MISSING = "signature missing"
    SIGNATURE_BAD = "signature does not match the signed files"
    SIGNATURE_NOT_OWNER = "signed by a key that is not the owner's"
    SIGNATURE_UNCHECKED = "signature could not be checked"
    LIST_MISSING = "hash list missing"
    LIST_DAMAGED = "hash list damaged"
    FILES_MODIFIED = "files modified"
    FILES_ADDED = "files added"
    FILES_REMOVED = "files removed"
    UNREADABLE = "/boot could not be read"
    COUNTER_FILE_MISSING = "rollback counter file missing"
    COUNTER_MISSING = "TPM rollback counter missing"
    COUNTER_UNREADABLE = "TPM rollback counter unreadable"
    ROLLED_BACK = "an older signed /boot (rollback)"
    LINKS_CHANGED = "symlinks retargeted"
    LINKS_UNSIGNED = "symlink targets not signed"
    UNEXPECTED = "unexpected files in the signed-state area"
    UPDATE_NOTES = "an OS update left notes"

    @property
    def kind(self) -> ProblemKind:
        # one left out is UNCHECKED: never offered for signing
        return _KINDS.get(self, ProblemKind.UNCHECKED)


_K = ProblemKind
_KINDS: Mapping[Problem, ProblemKind] = {
    Problem.SIGNATURE_MISSING: _K.RESIGNABLE,
    # the lists themselves changed: what they say changed is no guide to sign by
    Problem.SIGNATURE_BAD: _K.LISTS_CHANGED,
    Problem.SIGNATURE_NOT_OWNER: _K.OTHER_SIGNER,
    Problem.SIGNATURE_UNCHECKED: _K.UNCHECKED,
    Problem.LIST_MISSING: _K.RESIGNABLE,
    Problem.LIST_DAMAGED: _K.UNCHECKED,
    Problem.FILES_MODIFIED: _K.RESIGNABLE,
    Problem.FILES_ADDED: _K.RESIGNABLE,
    Problem.FILES_REMOVED: _K.RESIGNABLE,
    Problem.UNREADABLE: _K.UNCHECKED,
    Problem.COUNTER_FILE_MISSING: _K.RESIGNABLE,
    # signing makes a new counter when the TPM lost or spoiled it
    Problem.COUNTER_MISSING: _K.RESIGNABLE,
    Problem.COUNTER_UNREADABLE: _K.RESIGNABLE,
    Problem.ROLLED_BACK: _K.ROLLED_BACK,
    # beyond Heads: a signing records the links and drops the rest
    Problem.LINKS_CHANGED: _K.RESIGNABLE,
    Problem.LINKS_UNSIGNED: _K.RESIGNABLE,
    Problem.UNEXPECTED: _K.RESIGNABLE,
    Problem.UPDATE_NOTES: _K.RESIGNABLE,
}

_BY_VALUE: Mapping[str, Problem] = {p.value: p for p in Problem}


def kinds_of(problems: Iterable[str]) -> frozenset[ProblemKind]:
    """The kinds of problems given as their Problem values (as a BootCheck
    carries them); a value no Problem has is UNCHECKED: never re-signed."""
    return frozenset(
        _BY_VALUE[p].kind if p in _BY_VALUE else ProblemKind.UNCHECKED for p in problems
    )


@dataclass(frozen=True)
class Finding:
    problem: Problem
    detail: str  # plain words: what exactly, and what it means

    def __str__(self) -> str:
        return f"{self.problem}: {self.detail}"


@dataclass
class BootReport:
    findings: list[Finding] = field(default_factory=list)
    modified: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    signer: str = ""  # the owner's fingerprint when the signature is good
    counter: int | None = None  # the TPM counter's value when read
    signed_counter: int | None = None  # the value /boot was signed at, when found
    #: OS package hooks' notes of what an update changed (present: unsigned)
    package_triggers: dict[str, str] = field(default_factory=dict)
    #: './rel' -> sha256 of every listed regular file checked (the default-entry check)
    digests: dict[str, str] = field(default_factory=dict)
    #: the signed kexec*.txt files whose owner signature checked (package notes
    #: aside): all a re-signing may carry over
    trusted_state: dict[str, bytes] = field(default_factory=dict)
    #: the signed symlink targets (None: this /boot's signature records none)
    signed_links: dict[str, str] | None = None
    #: names under ./kexec* that are no signed-state file (never read)
    unexpected: list[str] = field(default_factory=list)
    #: what was seen, as it was: every path, every regular file's hash, every
    #: symlink's target (a signing signs exactly this, or refuses)
    seen_tree: list[str] = field(default_factory=list)
    seen_digests: dict[str, str] = field(default_factory=dict)
    seen_links: dict[str, str] = field(default_factory=dict)
    #: things to know that are no failure
    notes: list[str] = field(default_factory=list)
    #: signed-state names that are there but not read (a FIFO, a link): why
    odd_state: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.findings

    def add(self, problem: Problem, detail: str) -> None:
        # a detail may quote the disk (a name in an error): it must not draw
        self.findings.append(Finding(problem, printable(detail)))

    def signed(self) -> Signed | None:
        """What the boot may read and load, when /boot verified; else None."""
        from runtime.integrity.boot_view import Signed

        if not self.ok:
            return None
        return Signed(dict(self.digests), frozenset(self.seen_tree), self.signed_links)


def printable(text: str) -> str:
    """Text from the disk as a screen may show it: control and format
    characters (C0, C1, DEL, bidi) made visible, so the disk cannot draw."""
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


def shown_name(rel: str) -> str:
    """A './rel' name from the disk, printable."""
    return printable(rel[2:] if rel.startswith("./") else rel)
