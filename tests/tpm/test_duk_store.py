"""The Disk Unlock Key against a real TPM (swtpm): sealed at setup to the
values its PCRs will hold at the next normal boot, unsealed there, and
refused, without a dictionary-attack count, when a PCR differs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tpm2_pytss.types import TPM2B_PUBLIC

from runtime.disk import duk_store
from runtime.disk.duk_policy import (
    BANK,
    LUKS_HEADER_PCR,
    PcrFacts,
    auth_value,
    duk_pcrs,
    policy_digest,
    predicted_values,
)
from runtime.tpm import ownership, pcrs, sealing
from runtime.tpm.connection import Tpm
from runtime.tpm.errors import PcrsChanged, WrongPassphrase
from runtime.tpm.pcr_roles import BootMode
from tests.tpm.conftest import OWNER
from tools.swtpm import Swtpm

MODULES_PCR = 5
SEAL_PCRS = (0, 1, 2, 3, 4, 7, 9)
PCRS = duk_pcrs(SEAL_PCRS, MODULES_PCR)
MODULES = (b"virtio_blk module bytes", b"dm_crypt module bytes")
OLD_HEADER = b"the luksDump text before the DUK slot was added"
NEW_HEADER = b"the luksDump text with the DUK slot"
PASSPHRASE = bytearray(b"correct horse battery staple, and then some more words")
KEY = bytearray(range(128))


def _start_of_boot(tpm: Tpm, header_text: bytes) -> None:
    """What every boot does before the DUK's unseal: the modules into PCR 5,
    the LUKS header text (Heads' luksDump.txt) into PCR 6."""
    for module in MODULES:
        pcrs.extend(tpm, MODULES_PCR, module, "module", "module")
    pcrs.extend(tpm, LUKS_HEADER_PCR, header_text, "LUKS headers", "luks")


@pytest.fixture
def set_up(tpm: Tpm) -> Iterator[tuple[Tpm, dict[int, bytes]]]:
    """A boot that sets the DUK up: its own start, then a recovery shell (PCR 4
    moved), then the key sealed to the next normal boot's values."""
    firmware = pcrs.read_pcrs(tpm, PCRS)  # swtpm has no firmware: its values are the start
    _start_of_boot(tpm, OLD_HEADER)
    pcrs.extend_string(tpm, 4, BootMode.RECOVERY.value)
    facts = PcrFacts(
        current=pcrs.read_pcrs(tpm, PCRS),
        firmware=firmware,
        runtime_extended=frozenset({4, MODULES_PCR, LUKS_HEADER_PCR}),
        module_digests=tuple(BANK.hash(m) for m in MODULES),
    )
    values = predicted_values(PCRS, MODULES_PCR, facts, BANK.hash(NEW_HEADER))
    assert isinstance(values, dict), values
    sealed = duk_store.seal_key(tpm, KEY, PCRS, values, PASSPHRASE)
    duk_store.store(tpm, sealed, OWNER)
    yield tpm, values


def _next_boot(swtpm: Swtpm, tpm: Tpm, header: bytes) -> None:
    swtpm.power_cycle()
    tpm.startup()
    _start_of_boot(tpm, header)


def test_the_sealed_policy_is_the_offline_prediction(
    set_up: tuple[Tpm, dict[int, bytes]],
) -> None:
    tpm, values = set_up
    sealed = duk_store.load(tpm)
    assert sealed is not None
    public, _ = TPM2B_PUBLIC.unmarshal(sealed.public)
    assert bytes(public.publicArea.authPolicy) == policy_digest(values, PCRS)
    assert sealed.pcrs == PCRS and sealed.with_passphrase


def test_the_next_normal_boot_unseals_it_with_no_dictionary_attack_count(
    swtpm: Swtpm, set_up: tuple[Tpm, dict[int, bytes]]
) -> None:
    tpm, _ = set_up
    _next_boot(swtpm, tpm, NEW_HEADER)
    sealed = duk_store.load(tpm)
    assert sealed is not None
    assert duk_store.unseal_key(tpm, sealed, PASSPHRASE) == KEY
    assert ownership.da_state(tpm).failures == 0


def test_a_changed_header_is_named_and_costs_no_attempt(
    swtpm: Swtpm, set_up: tuple[Tpm, dict[int, bytes]]
) -> None:
    tpm, _ = set_up
    _next_boot(swtpm, tpm, OLD_HEADER)  # another container's header, or the old one
    sealed = duk_store.load(tpm)
    assert sealed is not None
    with pytest.raises(PcrsChanged) as refused:
        duk_store.unseal_key(tpm, sealed, PASSPHRASE)
    assert [m.pcr for m in refused.value.mismatches] == [LUKS_HEADER_PCR]
    assert ownership.da_state(tpm).failures == 0


def test_a_refusal_by_the_tpm_itself_costs_no_attempt(
    swtpm: Swtpm, set_up: tuple[Tpm, dict[int, bytes]]
) -> None:
    """Even when the PCR read lies (a bus interposer), a PCR mismatch is the
    TPM's policy failure, which the dictionary-attack logic does not count."""
    tpm, _ = set_up
    _next_boot(swtpm, tpm, OLD_HEADER)
    sealed = duk_store.load(tpm)
    assert sealed is not None
    with pytest.raises(PcrsChanged):
        sealing.unseal(tpm, sealed, auth_value(PASSPHRASE))
    assert ownership.da_state(tpm).failures == 0


@pytest.mark.usefixtures("da_restored")
def test_a_wrong_passphrase_costs_exactly_one_attempt(
    swtpm: Swtpm, set_up: tuple[Tpm, dict[int, bytes]]
) -> None:
    tpm, _ = set_up
    _next_boot(swtpm, tpm, NEW_HEADER)
    sealed = duk_store.load(tpm)
    assert sealed is not None
    with pytest.raises(WrongPassphrase):
        duk_store.unseal_key(tpm, sealed, bytearray(b"correct horse battery staple"))
    assert ownership.da_state(tpm).failures == 1
    assert duk_store.unseal_key(tpm, sealed, PASSPHRASE) == KEY


def test_removed_or_never_set_up_is_none(set_up: tuple[Tpm, dict[int, bytes]]) -> None:
    tpm, _ = set_up
    assert duk_store.remove(tpm, OWNER)
    assert duk_store.load(tpm) is None
    assert not duk_store.remove(tpm, OWNER)


def test_without_the_event_log_a_moved_pcr_4_cannot_be_predicted(tpm: Tpm) -> None:
    pcrs.extend_string(tpm, 4, BootMode.RECOVERY.value)
    facts = PcrFacts(
        current=pcrs.read_pcrs(tpm, PCRS),
        firmware=None,
        runtime_extended=frozenset({4}),
        module_digests=(),
    )
    why = predicted_values(PCRS, MODULES_PCR, facts, BANK.hash(NEW_HEADER))
    assert isinstance(why, str) and "PCR 4" in why
