"""Monotonic NV counters, as the /boot rollback protection uses them."""

from __future__ import annotations

import struct

from tpm2_pytss.constants import TPM2_CAP

from runtime.tpm import handles, nv
from runtime.tpm.connection import Tpm
from runtime.tpm.errors import (
    RC_NV_UNINITIALIZED,
    NvIndexMissing,
    TpmError,
    base_code,
    translated,
)
from runtime.tpm.nv_attrs import (
    COUNTER_ATTRIBUTES,
    DA_PROTECTED_COUNTER_ATTRIBUTES,
    NvAttr,
    counter_problem,
)
from runtime.tpm.rng import random_bytes

# Heads' counters are 8-byte NV counters with an empty index passphrase.
COUNTER_SIZE = 8

#: NV indexes of handles.py in the counter range that are no rollback counter:
#: create_counter never picks them, retire_counters never removes them.
NOT_ROLLBACK = handles.NOT_ROLLBACK

#: A counter is read only when it is exactly one of these (attributes, size,
#: empty policy, SHA-256 Name): what create_counter defines, and the DA-protected
#: definition it used before NO_DA, which Heads uses too.
COUNTER_SPECS = (
    nv.NvSpec(COUNTER_ATTRIBUTES, COUNTER_SIZE),
    nv.NvSpec(DA_PROTECTED_COUNTER_ATTRIBUTES, COUNTER_SIZE),
)
#: The attributes of those definitions.
OUR_COUNTER_ATTRIBUTES = frozenset(spec.attributes for spec in COUNTER_SPECS)

#: Handles asked for per TPM2_GetCapability call; the TPM may return fewer.
_HANDLES_PER_CALL = 64


class CounterUnusable(TpmError):
    """An index that is not a counter as COUNTER_SPECS defines one; it is not read.
    ``problem`` says how it differs, in plain words."""

    summary = "The TPM rollback counter is not a proper counter."
    hint = (
        "The rollback counter cannot be trusted. Reset the TPM and sign /boot again "
        "to create a new counter."
    )

    def __init__(
        self,
        message: str,
        *,
        problem: str = "",
        platform_created: bool = False,
        rc: int | None = None,
    ) -> None:
        super().__init__(message, rc=rc)
        self.problem = problem
        #: no TPM reset removes it (TPMA_NV_PLATFORMCREATE)
        self.platform_created = platform_created


def _difference(found: nv.NvInfo) -> str:
    """How ``found`` differs from COUNTER_SPECS, in plain words (the first reason)."""
    public_index = found.index if found.public_index is None else found.public_index
    if found.name_alg != nv.NAME_ALG:
        return "it was defined with another hash algorithm than this runtime's counters"
    if (
        public_index != found.index
        or nv.nv_name(public_index, found.attributes, found.size, found.auth_policy, found.name_alg)
        != found.name
    ):
        return "the TPM's description of it contradicts itself"
    if found.attributes & NvAttr.PLATFORMCREATE:
        # named first: no TPM reset removes such an index
        return "it was created with the firmware's platform authority, not the owner's"
    problem = counter_problem(found.attributes)
    if problem is not None:
        return problem
    if found.attributes & ~NvAttr.WRITTEN not in OUR_COUNTER_ATTRIBUTES:
        return "its security policy is not that of this runtime's counters"
    if found.auth_policy:
        return "it has an authorization policy, which this runtime's counters do not have"
    if found.size != COUNTER_SIZE:
        return f"it holds {found.size} bytes, not {COUNTER_SIZE}"
    return "it is not defined as this runtime defines its counters"


def counter_refusal(found: nv.NvInfo) -> CounterUnusable | None:
    """None when ``found`` is defined exactly as one of COUNTER_SPECS (written or
    not); else the refusal to raise, its technical words for the log."""
    differences = [nv.mismatch(found, spec) for spec in COUNTER_SPECS]
    if None in differences:
        return None
    problem = _difference(found)
    # the current definition's difference: the one a new counter would not have
    return CounterUnusable(
        f"The counter 0x{found.index:08x} cannot be used: {problem} ({differences[0]}).",
        problem=problem,
        platform_created=bool(found.attributes & NvAttr.PLATFORMCREATE),
    )


def _refuse_unless_counter(found: nv.NvInfo) -> None:
    refusal = counter_refusal(found)
    if refusal is not None:
        raise refusal


def create_counter(tpm: Tpm, owner_auth: bytes, index: int | None = None) -> int:
    """Define a new counter at ``index`` or a random free index 0x01xxxxxx; return it.

    A new counter has never been incremented and reads as ``None`` until it is.
    """
    if index is None:
        for _ in range(16):
            rnd = int.from_bytes(random_bytes(tpm, 3), "big") & handles.COUNTER_RANGE_MASK
            candidate = handles.COUNTER_RANGE_BASE | rnd
            if candidate in NOT_ROLLBACK:
                continue
            if not nv.exists(tpm, candidate):
                index = candidate
                break
        else:
            raise TpmError(
                "No free NV index for a counter was found.",
                summary="The TPM has no free place for a new rollback counter.",
            )
    nv.define(tpm, index, COUNTER_SIZE, COUNTER_ATTRIBUTES, owner_auth)
    return index


def read_counter(tpm: Tpm, index: int) -> int | None:
    """The counter's value, or None when it was never incremented.

    CounterUnusable, nothing read, unless the index is defined exactly as one of
    COUNTER_SPECS: whoever defined it otherwise may set or move its value."""
    try:
        data = nv.read_checked(tpm, index, COUNTER_SIZE, _refuse_unless_counter)
    except TpmError as exc:
        if exc.rc is not None and base_code(exc.rc) == RC_NV_UNINITIALIZED:
            return None
        raise
    return int(struct.unpack(">Q", data)[0])


def increment_counter(tpm: Tpm, index: int, auth: bytes = b"") -> int:
    """Add one to the counter (index authorisation) and return the new value."""
    handle = nv.open_index(tpm, index)
    try:
        tpm.esapi.tr_set_auth(handle, auth)
        with translated(f"Incrementing counter 0x{index:08x}", auth="counter passphrase"):
            tpm.esapi.nv_increment(handle, auth_handle=handle, session1=tpm.hmac_session())
    finally:
        tpm.esapi.tr_close(handle)
    value = read_counter(tpm, index)
    if value is None:
        raise CounterUnusable(
            f"Counter 0x{index:08x} did not move after an increment.",
            problem="it did not move when it was incremented",
        )
    return value


def check_counter(tpm: Tpm, index: int) -> None:
    """Raise CounterUnusable, in plain words, unless the index is defined exactly
    as one of COUNTER_SPECS."""
    _refuse_unless_counter(nv.info(tpm, index))


def defined_nv_indexes(tpm: Tpm, per_call: int = _HANDLES_PER_CALL) -> list[int]:
    """Every NV index the TPM holds (TPM2_GetCapability, all pages), ascending."""
    found: list[int] = []
    first = handles.NV_INDEX_FIRST
    more = True
    while more and first <= handles.NV_INDEX_LAST:
        with translated("Listing the TPM's NV indexes"):
            more, data = tpm.esapi.get_capability(TPM2_CAP.HANDLES, first, per_call)
        batch = [int(h) for h in data.data.handles if handles.is_nv_index(int(h))]
        if not batch:
            break
        found += batch
        first = batch[-1] + 1
    return found


def _in_counter_range(index: int) -> bool:
    return index & ~handles.COUNTER_RANGE_MASK == handles.COUNTER_RANGE_BASE


def _defined_as_ours(info: nv.NvInfo) -> bool:
    """Is the index defined exactly as create_counter defines one (or did,
    before it set NO_DA: those are ours too, and must be retired)?"""
    return counter_refusal(info) is None


def rollback_counters(tpm: Tpm) -> list[int]:
    """The TPM's /boot rollback counters: indexes defined exactly as create_counter
    defines them (counter range, attributes with or without NO_DA, size 8,
    SHA-256 name, no policy), except the indexes handles.py reserves for
    something else (NOT_ROLLBACK).

    The counter range is the whole owner NV range and a counter index has no
    owner tag, so another program's counter defined with these very attributes
    cannot be told from ours and is counted too (and retired). Anything defined
    differently (other attributes, size, policy, platform-created) is left out.
    """
    found = []
    for index in defined_nv_indexes(tpm):
        if not _in_counter_range(index) or index in NOT_ROLLBACK:
            continue
        try:
            info = nv.info(tpm, index)
        except NvIndexMissing:
            continue  # removed since the listing
        if _defined_as_ours(info):
            found.append(index)
    return found


def retire_counters(tpm: Tpm, owner_auth: bytes, keep: int) -> list[int]:
    """Undefine every rollback counter but ``keep`` (owner authorisation), so no
    older signed /boot naming one of them can verify again; the retired indexes.

    TpmError in plain words if one cannot be removed; those before it are gone.
    """
    retired = []
    for index in rollback_counters(tpm):
        if index == keep:
            continue
        try:
            nv.undefine(tpm, index, owner_auth)
        except NvIndexMissing:
            continue  # already gone, which is all that was wanted
        except TpmError as err:
            raise TpmError(
                f"The old rollback counter 0x{index:08x} could not be removed, so an "
                f"older signed /boot naming it would still verify: {err.message}",
                rc=err.rc,
                hint=err.hint,
                summary=(
                    f"{err.summary} An old rollback counter could not be removed, so "
                    "an older signed /boot could still verify."
                ).strip(),
            ) from err
        retired.append(index)
    return retired
