"""What is exempted from the TPM's dictionary-attack lockout (issue 27, finding 4):
the storage key and the counters, whose authorization is empty; a sealed
object only when it has no passphrase. Counters defined the old way (Heads',
and this runtime's before NO_DA) are still accepted."""

from __future__ import annotations

from tpm2_pytss.constants import TPMA_OBJECT

from runtime.tpm.counters import OUR_COUNTER_ATTRIBUTES
from runtime.tpm.nv_attrs import (
    COUNTER_ATTRIBUTES,
    DA_PROTECTED_COUNTER_ATTRIBUTES,
    NvAttr,
    counter_problem,
)
from runtime.tpm.templates import (
    DA_PROTECTED_PRIMARY_ATTRIBUTES,
    PRIMARY_ATTRIBUTES,
    primary_template,
    sealed_template,
)


def test_new_storage_keys_are_exempted_and_otherwise_unchanged() -> None:
    assert PRIMARY_ATTRIBUTES == DA_PROTECTED_PRIMARY_ATTRIBUTES | TPMA_OBJECT.NODA
    assert primary_template().publicArea.objectAttributes & TPMA_OBJECT.NODA


def test_a_sealed_object_is_exempted_only_when_asked() -> None:
    policy = bytes(32)
    assert not sealed_template(policy).publicArea.objectAttributes & TPMA_OBJECT.NODA
    exempt = sealed_template(policy, no_da=True).publicArea.objectAttributes
    assert exempt & TPMA_OBJECT.NODA
    assert not exempt & TPMA_OBJECT.USERWITHAUTH  # the policy must still hold


def test_new_counters_are_exempted_and_old_ones_still_accepted() -> None:
    assert COUNTER_ATTRIBUTES == DA_PROTECTED_COUNTER_ATTRIBUTES | NvAttr.NO_DA
    for attributes in (COUNTER_ATTRIBUTES, DA_PROTECTED_COUNTER_ATTRIBUTES):
        assert counter_problem(attributes) is None
        assert counter_problem(attributes | NvAttr.WRITTEN) is None
    assert {COUNTER_ATTRIBUTES, DA_PROTECTED_COUNTER_ATTRIBUTES} == OUR_COUNTER_ATTRIBUTES
