"""Monotonic NV counters, as the /boot rollback protection uses them."""

from __future__ import annotations

import struct

from runtime.tpm import handles, nv
from runtime.tpm.connection import Tpm
from runtime.tpm.errors import RC_NV_UNINITIALIZED, TpmError, base_code, translated
from runtime.tpm.nv_attrs import COUNTER_ATTRIBUTES, counter_problem
from runtime.tpm.rng import random_bytes

# Heads' counters are 8-byte NV counters with an empty index passphrase.
COUNTER_SIZE = 8


class CounterUnusable(TpmError):
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
            if candidate in (handles.TOTP_SEALED_NV, handles.HOTP_COUNTER_NV):
                continue
            if not nv.exists(tpm, candidate):
                index = candidate
                break
        else:
            raise TpmError("No free NV index for a counter was found.")
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
