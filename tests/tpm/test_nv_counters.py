"""NV indexes and monotonic counters on a real swtpm."""

from __future__ import annotations

import pytest

from runtime.tpm import counters, nv
from runtime.tpm.connection import Tpm
from runtime.tpm.counters import CounterUnusable
from runtime.tpm.errors import NvIndexMissing, TpmError, WrongOwnerPassphrase
from runtime.tpm.nv_attrs import NT_COUNTER, NvAttr, index_type
from tests.tpm.conftest import OWNER

DATA_ATTRS = NvAttr.OWNERWRITE | NvAttr.OWNERREAD | NvAttr.AUTHREAD | NvAttr.NO_DA


def test_define_write_read_undefine(tpm: Tpm) -> None:
    index = 0x01500001
    nv.define(tpm, index, 2048, DATA_ATTRS, OWNER)
    data = bytes(range(256)) * 8  # larger than one NV buffer: written in chunks
    nv.write(tpm, index, data, owner_auth=OWNER)
    assert nv.read(tpm, index) == data
    assert nv.read(tpm, index, 10, 100) == data[100:110]
    info = nv.info(tpm, index)
    assert info.size == 2048 and info.attributes & NvAttr.WRITTEN
    nv.undefine(tpm, index, OWNER)
    assert not nv.exists(tpm, index)
    with pytest.raises(NvIndexMissing):
        nv.read(tpm, index, 4)


def test_owner_passphrase_is_required(tpm: Tpm) -> None:
    with pytest.raises(WrongOwnerPassphrase):
        nv.define(tpm, 0x01500002, 8, DATA_ATTRS, b"wrong")
    nv.define(tpm, 0x01500002, 8, DATA_ATTRS, OWNER)
    with pytest.raises(WrongOwnerPassphrase):
        nv.write(tpm, 0x01500002, b"12345678", owner_auth=b"wrong")
    with pytest.raises(WrongOwnerPassphrase):
        nv.undefine(tpm, 0x01500002, b"wrong")


def test_counter_life(tpm: Tpm) -> None:
    index = counters.create_counter(tpm, OWNER)
    assert index & 0xFF000000 == 0x01000000
    assert index_type(nv.info(tpm, index).attributes) == NT_COUNTER
    assert counters.read_counter(tpm, index) is None  # never incremented
    values = [counters.increment_counter(tpm, index) for _ in range(3)]
    assert values[1] == values[0] + 1 and values[2] == values[1] + 1
    assert counters.read_counter(tpm, index) == values[-1]
    counters.check_counter(tpm, index)


def test_counter_cannot_be_written_back(tpm: Tpm) -> None:
    index = counters.create_counter(tpm, OWNER)
    counters.increment_counter(tpm, index)
    # A new counter starts above every counter this TPM ever had (TPM 2.0 Part 1,
    # 37.2.3), so compare with what it holds, not with 2.
    value = counters.increment_counter(tpm, index)
    with pytest.raises(TpmError):
        nv.write(tpm, index, bytes(8))
    with pytest.raises(TpmError):
        nv.write(tpm, index, bytes(8), owner_auth=OWNER)
    assert counters.read_counter(tpm, index) == value


def test_ordinary_index_is_no_counter(tpm: Tpm) -> None:
    nv.define(tpm, 0x01500003, 8, DATA_ATTRS, OWNER)
    with pytest.raises(CounterUnusable) as info:
        counters.check_counter(tpm, 0x01500003)
    assert "not a monotonic counter" in info.value.message


def test_deleted_counter_is_reported_missing(tpm: Tpm) -> None:
    index = counters.create_counter(tpm, OWNER)
    counters.increment_counter(tpm, index)
    nv.undefine(tpm, index, OWNER)
    with pytest.raises(NvIndexMissing):
        counters.read_counter(tpm, index)
    with pytest.raises(NvIndexMissing):
        counters.check_counter(tpm, index)


def test_nv_indexes_are_listed_over_every_page(tpm: Tpm) -> None:
    defined = [0x01500020 + n for n in range(5)]
    for index in defined:
        nv.define(tpm, index, 8, DATA_ATTRS, OWNER)
    # two handles a call: the listing must follow the TPM's "more data" over pages
    assert counters.defined_nv_indexes(tpm, per_call=2) == defined
    assert counters.defined_nv_indexes(tpm) == defined
