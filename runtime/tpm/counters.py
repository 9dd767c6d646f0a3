"""Monotonic NV counters, as the /boot rollback protection uses them."""

from __future__ import annotations

import hashlib
import struct

from tpm2_pytss.constants import TPM2_ALG, TPM2_CAP
from tpm2_pytss.types import TPMS_NV_PUBLIC

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

#: The attributes of a counter create_counter defines now, or defined before
#: it set NO_DA (Heads defines its counters that way too).
OUR_COUNTER_ATTRIBUTES = frozenset({COUNTER_ATTRIBUTES, DA_PROTECTED_COUNTER_ATTRIBUTES})

#: Handles asked for per TPM2_GetCapability call; the TPM may return fewer.
_HANDLES_PER_CALL = 64


class CounterUnusable(TpmError):
    summary = "The TPM rollback counter is not a proper counter."
    hint = (
        "The rollback counter cannot be trusted. Reset the TPM and sign /boot again "
        "to create a new counter."
    )


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
            raise TpmError("No free NV index for a counter was found.",
                           summary="The TPM has no free place for a new rollback counter.")
    nv.define(tpm, index, COUNTER_SIZE, COUNTER_ATTRIBUTES, owner_auth)
    return index


def read_counter(tpm: Tpm, index: int) -> int | None:
    """The counter's value, or None when it was never incremented."""
    try:
        data = nv.read(tpm, index, COUNTER_SIZE)
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
        raise CounterUnusable(f"Counter 0x{index:08x} did not move after an increment.")
    return value


def check_counter(tpm: Tpm, index: int) -> None:
    """Raise CounterUnusable, in plain words, if the index is no proper rollback counter."""
    attributes = nv.info(tpm, index).attributes
    problem = counter_problem(attributes)
    if problem:
        raise CounterUnusable(f"The rollback counter 0x{index:08x} cannot be used: {problem}.")


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
    before it set NO_DA)?"""
    # Only the TPM sets WRITTEN (first increment); every other bit is the definer's.
    # Counters defined before NO_DA was set are ours too: they must be retired.
    if info.attributes & ~NvAttr.WRITTEN not in OUR_COUNTER_ATTRIBUTES \
            or info.size != COUNTER_SIZE:
        return False
    if counter_problem(info.attributes) is not None:
        return False
    # The name hashes the whole public area: this also checks the name algorithm
    # and the empty authorization policy create_counter uses. hashlib, not
    # get_name(): that loads the `cryptography` backend (lazy_crypto.py).
    ours = TPMS_NV_PUBLIC(
        nvIndex=info.index,
        nameAlg=TPM2_ALG.SHA256,
        attributes=info.attributes,
        authPolicy=b"",
        dataSize=COUNTER_SIZE,
    )
    name = struct.pack(">H", TPM2_ALG.SHA256) + hashlib.sha256(ours.marshal()).digest()
    return name == info.name


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
                summary=(f"{err.summary} An old rollback counter could not be removed, so "
                         "an older signed /boot could still verify.").strip(),
            ) from err
        retired.append(index)
    return retired
