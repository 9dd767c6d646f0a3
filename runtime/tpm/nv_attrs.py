"""NV index attributes (TPMA_NV, TPM 2.0 Part 2) and the checks on a rollback counter.

Pure data, so the checks Heads makes at boot ("is this counter still a
counter only we can move forward?") are unit-tested without a TPM.
"""

from __future__ import annotations

from enum import IntFlag


class NvAttr(IntFlag):
    PPWRITE = 1 << 0
    OWNERWRITE = 1 << 1
    AUTHWRITE = 1 << 2
    POLICYWRITE = 1 << 3
    POLICY_DELETE = 1 << 10
    WRITELOCKED = 1 << 11
    WRITEALL = 1 << 12
    WRITEDEFINE = 1 << 13
    WRITE_STCLEAR = 1 << 14
    GLOBALLOCK = 1 << 15
    PPREAD = 1 << 16
    OWNERREAD = 1 << 17
    AUTHREAD = 1 << 18
    POLICYREAD = 1 << 19
    NO_DA = 1 << 25
    ORDERLY = 1 << 26
    CLEAR_STCLEAR = 1 << 27
    READLOCKED = 1 << 28
    WRITTEN = 1 << 29
    PLATFORMCREATE = 1 << 30
    READ_STCLEAR = 1 << 31


NT_SHIFT = 4
NT_MASK = 0xF << NT_SHIFT
NT_ORDINARY = 0x0
NT_COUNTER = 0x1
NT_BITS = 0x2
NT_EXTEND = 0x4


def index_type(attributes: int) -> int:
    return (attributes & NT_MASK) >> NT_SHIFT


def with_type(attributes: int, nt: int) -> int:
    return (attributes & ~NT_MASK) | (nt << NT_SHIFT)


#: Heads' rollback counter: ownerread|authread|authwrite|nt=counter, empty index
#: auth. Counters defined so (by Heads, or by this runtime before it set NO_DA)
#: are still accepted; while the TPM is locked out they can be neither read nor
#: moved.
DA_PROTECTED_COUNTER_ATTRIBUTES = with_type(
    NvAttr.OWNERREAD | NvAttr.AUTHREAD | NvAttr.AUTHWRITE, NT_COUNTER
)
#: What this runtime defines: the same, plus NO_DA. The index passphrase is
#: empty, so the lockout guards nothing here, and without NO_DA anyone who locks
#: the TPM out (the OS, with a key of its own) stops the rollback and HOTP checks.
COUNTER_ATTRIBUTES = DA_PROTECTED_COUNTER_ATTRIBUTES | NvAttr.NO_DA


def counter_problem(attributes: int | None) -> str | None:
    """Why an NV index with these attributes is no counter at all, in plain words;
    None if it may be one. Not enough to read one: it accepts extra bits (a
    platform-created index, POLICYWRITE...) and sees no policy, size or Name;
    counters.counter_refusal is the exact check."""
    if attributes is None:
        return "its security policy cannot be read"
    if attributes == 0:
        return "its security policy is corrupted (no attributes)"
    if index_type(attributes) != NT_COUNTER:
        return "it is not a monotonic counter"
    if attributes & NvAttr.OWNERWRITE and not attributes & NvAttr.AUTHWRITE:
        return "its security policy is invalid (only the owner may move it)"
    if not attributes & (NvAttr.OWNERWRITE | NvAttr.AUTHWRITE):
        return "it cannot be incremented (not writable)"
    return None
