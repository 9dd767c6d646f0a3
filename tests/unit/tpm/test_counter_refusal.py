"""The exact check before a counter is read (issue 27, finding 8): accepted only
when the TPM's answer is exactly one of the two counter definitions; every
other answer is refused with plain words for the screen and the technical
difference for the log.

No TPM: the answers are built here, as a TPM (or a bus interposer) could give them.
"""

from __future__ import annotations

import pytest

from runtime.tpm import counters, nv
from runtime.tpm.nv_attrs import (
    COUNTER_ATTRIBUTES,
    DA_PROTECTED_COUNTER_ATTRIBUTES,
    NT_BITS,
    NvAttr,
    with_type,
)
from tests.support.nv_answers import nv_answers
from tests.support.plain_words import assert_plain

INDEX = 0x01C0FFEE
#: what the TPM reports for the index: the defined area unless a test changes it
answer = nv_answers(INDEX, COUNTER_ATTRIBUTES, 8)


@pytest.mark.parametrize(
    "attributes",
    [COUNTER_ATTRIBUTES, DA_PROTECTED_COUNTER_ATTRIBUTES],
    ids=["current", "da-protected"],
)
def test_both_definitions_are_accepted_written_or_not(attributes: int) -> None:
    assert counters.counter_refusal(answer(attributes)) is None
    assert counters.counter_refusal(answer(attributes | NvAttr.WRITTEN)) is None


@pytest.mark.parametrize(
    ("found", "words"),
    [
        (answer(COUNTER_ATTRIBUTES | NvAttr.PLATFORMCREATE), "the firmware's platform authority"),
        (
            answer(DA_PROTECTED_COUNTER_ATTRIBUTES | NvAttr.PLATFORMCREATE | NvAttr.PPWRITE),
            "the firmware's platform authority",
        ),
        (answer(with_type(COUNTER_ATTRIBUTES, NT_BITS)), "not a monotonic counter"),
        (answer(COUNTER_ATTRIBUTES | NvAttr.POLICYWRITE), "security policy is not that of"),
        (answer(COUNTER_ATTRIBUTES | NvAttr.PPWRITE), "security policy is not that of"),
        (answer(COUNTER_ATTRIBUTES | NvAttr.READ_STCLEAR), "security policy is not that of"),
        (answer(COUNTER_ATTRIBUTES | NvAttr.OWNERWRITE), "security policy is not that of"),
        (answer(COUNTER_ATTRIBUTES & ~NvAttr.OWNERREAD), "security policy is not that of"),
        (answer(policy=bytes(32)), "an authorization policy"),
        (answer(DA_PROTECTED_COUNTER_ATTRIBUTES, policy=bytes(32)), "an authorization policy"),
        (answer(size=16), "it holds 16 bytes, not 8"),
        (answer(name_alg=0x000C), "another hash algorithm"),
        (answer(index=INDEX + 1), "contradicts itself"),
    ],
    ids=[
        "platform",
        "platform-da-ppwrite",
        "bits",
        "policywrite",
        "ppwrite",
        "read-stclear",
        "ownerwrite",
        "no-ownerread",
        "policy",
        "da-policy",
        "size",
        "name-alg",
        "other-index",
    ],
)
def test_every_other_answer_is_refused_in_plain_words(found: nv.NvInfo, words: str) -> None:
    refusal = counters.counter_refusal(found)
    assert refusal is not None
    assert words in refusal.problem
    assert_plain(refusal.problem)
    assert f"0x{INDEX:08x}" in refusal.message  # the index and the difference: for the log
    assert refusal.platform_created == bool(found.attributes & NvAttr.PLATFORMCREATE)
    assert not counters._defined_as_ours(found)  # nor counted as a rollback counter


def test_a_name_that_is_not_the_public_areas_is_refused() -> None:
    # an interposer's answer: our public area, another index's Name
    ours = answer()
    other = nv.NvInfo(INDEX, ours.attributes, ours.size, answer(index=INDEX + 1).name)
    refusal = counters.counter_refusal(other)
    assert refusal is not None and "contradicts itself" in refusal.problem
    # and a Name that is the public area's, of attributes other than those reported
    forged = nv.NvInfo(
        INDEX, COUNTER_ATTRIBUTES, 8, answer(COUNTER_ATTRIBUTES | NvAttr.PLATFORMCREATE).name
    )
    assert counters.counter_refusal(forged) is not None
    # a public area with a policy, and the Name of ours without one
    policy = nv.NvInfo(INDEX, COUNTER_ATTRIBUTES, 8, ours.name, auth_policy=bytes(32))
    refusal = counters.counter_refusal(policy)
    assert refusal is not None and "contradicts itself" in refusal.problem
    assert not counters._defined_as_ours(policy)
