"""The rollback-counter attribute checks (../shared/reference/heads-facts.md §2.6)."""

from __future__ import annotations

from runtime.tpm.nv_attrs import (
    COUNTER_ATTRIBUTES,
    NT_COUNTER,
    NT_ORDINARY,
    NvAttr,
    counter_problem,
    index_type,
    with_type,
)


def test_heads_counter_attributes_are_accepted() -> None:
    assert index_type(COUNTER_ATTRIBUTES) == NT_COUNTER
    assert counter_problem(COUNTER_ATTRIBUTES) is None
    assert counter_problem(COUNTER_ATTRIBUTES | NvAttr.WRITTEN) is None


def test_each_broken_policy_is_named() -> None:
    assert counter_problem(None) == "its security policy cannot be read"
    assert "corrupted" in (counter_problem(0) or "")
    ordinary = with_type(NvAttr.OWNERREAD | NvAttr.AUTHWRITE, NT_ORDINARY)
    assert "not a monotonic counter" in (counter_problem(ordinary) or "")
    owner_only = with_type(NvAttr.OWNERREAD | NvAttr.OWNERWRITE, NT_COUNTER)
    assert "invalid" in (counter_problem(owner_only) or "")
    frozen = with_type(NvAttr.OWNERREAD | NvAttr.AUTHREAD, NT_COUNTER)
    assert "not writable" in (counter_problem(frozen) or "")
