"""The computer's HOTP counter in a real swtpm: it only moves forward, it
survives a reconnect and a power cycle, and a missing or foreign index is
said in plain words."""

from __future__ import annotations

import os

import pytest

from runtime.error_detail import recent_details
from runtime.secrets.hotp import CounterStoreError, enrol_token, verify_with_token
from runtime.secrets.hotp.counter import MAX_ADVANCE, TpmCounterStore
from runtime.secrets.hotp.serial_token import SerialToken
from runtime.tpm import counters, handles, nv
from runtime.tpm.connection import Tpm
from runtime.tpm.nv_attrs import NvAttr
from tests.support.token_pty import TokenPty
from tests.tpm.conftest import OWNER
from tools.soft_token import SoftToken
from tools.swtpm import Swtpm

pytestmark = pytest.mark.tpm


def test_the_index_is_its_own(tpm: Tpm) -> None:
    assert handles.is_nv_index(handles.HOTP_COUNTER_NV)
    others = {
        value
        for name, value in vars(handles).items()
        if name.isupper() and name != "HOTP_COUNTER_NV" and isinstance(value, int)
    }
    assert handles.HOTP_COUNTER_NV not in others
    store = TpmCounterStore.open_or_create(tpm, OWNER)
    assert store.index == handles.HOTP_COUNTER_NV
    counters.check_counter(tpm, store.index)  # a true NV counter


def test_it_moves_forward_only(tpm: Tpm) -> None:
    store = TpmCounterStore.open_or_create(tpm, bytearray(OWNER))
    start = store.read()
    store.advance_to(start + 3)
    assert store.read() == start + 3
    store.advance_to(start + 3)  # standing still is no move
    assert store.read() == start + 3
    with pytest.raises(CounterStoreError, match="cannot go back"):
        store.advance_to(start)
    with pytest.raises(CounterStoreError, match="jump"):
        store.advance_to(start + 3 + MAX_ADVANCE + 1)
    assert store.read() == start + 3
    with pytest.raises(Exception):  # noqa: B017 - any refusal; the TPM forbids writes
        nv.write(tpm, store.index, bytes(8), owner_auth=OWNER)
    assert store.read() == start + 3


def test_it_survives_a_new_connection_and_a_power_cycle(tpm: Tpm, swtpm: Swtpm) -> None:
    store = TpmCounterStore.open_or_create(tpm, OWNER)
    store.advance_to(store.read() + 2)
    value = store.read()
    tpm.close()
    swtpm.power_cycle()
    again = Tpm.connect(swtpm.tcti)
    try:
        again.startup()
        assert TpmCounterStore(again).read() == value
        assert TpmCounterStore.open_or_create(again, OWNER).read() == value  # kept as is
    finally:
        again.close()


def test_a_redefined_counter_cannot_start_lower(tpm: Tpm) -> None:
    store = TpmCounterStore.open_or_create(tpm, OWNER)
    store.advance_to(store.read() + 20)
    high = store.read()
    nv.undefine(tpm, store.index, OWNER)  # an owner trying to roll it back
    assert TpmCounterStore.open_or_create(tpm, OWNER).read() >= high


def test_a_missing_counter_is_said_plainly(tpm: Tpm) -> None:
    with pytest.raises(CounterStoreError) as info:
        TpmCounterStore(tpm).read()
    message = info.value.message
    assert "holds no HOTP counter" in message and "0x" not in message
    assert "0x0100484f" in recent_details()[-1]  # the index is for the log
    assert "Generate a new TOTP/HOTP secret" in message
    with pytest.raises(CounterStoreError):
        TpmCounterStore(tpm).advance_to(5)


def test_a_counter_deleted_after_use_is_said_plainly(tpm: Tpm) -> None:
    store = TpmCounterStore.open_or_create(tpm, OWNER)
    nv.undefine(tpm, store.index, OWNER)
    with pytest.raises(CounterStoreError, match="holds no HOTP counter"):
        store.read()


def test_an_ordinary_index_in_its_place_is_refused(tpm: Tpm) -> None:
    attrs = NvAttr.OWNERWRITE | NvAttr.OWNERREAD | NvAttr.AUTHREAD | NvAttr.AUTHWRITE
    nv.define(tpm, handles.HOTP_COUNTER_NV, 8, attrs, OWNER)
    nv.write(tpm, handles.HOTP_COUNTER_NV, bytes(8), owner_auth=OWNER)
    with pytest.raises(CounterStoreError, match="not a monotonic counter"):
        TpmCounterStore.open_or_create(tpm, OWNER)
    with pytest.raises(CounterStoreError, match="not a monotonic counter"):
        TpmCounterStore(tpm).read()


def test_creation_with_a_wrong_owner_passphrase_is_said_plainly(tpm: Tpm) -> None:
    with pytest.raises(CounterStoreError) as info:
        TpmCounterStore.open_or_create(tpm, b"wrong")
    assert "could not be created" in info.value.message
    assert "owner passphrase" in info.value.message


def test_enrol_and_verify_with_the_tpm_counter(tpm: Tpm) -> None:
    """The whole path: TPM counter, guest serial token, host software token."""
    soft = SoftToken()
    secret = bytearray(os.urandom(20))
    with TokenPty(soft.serve) as line, SerialToken(line.path) as token:
        store = TpmCounterStore.open_or_create(tpm, OWNER)
        start = store.read()
        assert enrol_token(secret, store, token, bytearray(b"12345678"), retry_pause=0).ok
        assert store.read() == soft.state.counter == start + 1
        for _ in range(2):
            assert verify_with_token(secret, store, token, retry_pause=0).ok
        assert store.read() == soft.state.counter == start + 3
        wrong = verify_with_token(bytearray(20), store, token, retry_pause=0)
        assert not wrong.ok and store.read() == start + 3
