"""The exact check on an NV index before anything is read from it (issue 27,
finding 8): the Name the TPM reports must be the hash of the public area it
reports, and of the one this runtime defines; only WRITTEN may differ.

No TPM: the answers are built here, as a TPM (or a bus interposer) could give them.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import replace

import pytest
from tpm2_pytss.constants import TPM2_ALG
from tpm2_pytss.types import TPMS_NV_PUBLIC

from runtime.tpm import handles, nv
from runtime.tpm.nv_attrs import NvAttr
from tests.support.nv_answers import nv_answers

INDEX = handles.TOTP_SEALED_NV
SPEC = nv.SEALED_BLOB
#: what the TPM reports for the index: the defined area unless a test changes it
answer = nv_answers(INDEX, SPEC.attributes, SPEC.size)


@pytest.mark.parametrize("policy", [b"", bytes(32)])
def test_the_name_is_the_tpm_specs_hash_of_the_marshalled_public_area(policy: bytes) -> None:
    area = TPMS_NV_PUBLIC(
        nvIndex=INDEX,
        nameAlg=TPM2_ALG.SHA256,
        attributes=SPEC.attributes | NvAttr.WRITTEN,
        authPolicy=policy,
        dataSize=SPEC.size,
    )
    assert (
        nv.public_area(INDEX, SPEC.attributes | NvAttr.WRITTEN, SPEC.size, policy) == area.marshal()
    )
    assert (
        nv.nv_name(INDEX, SPEC.attributes | NvAttr.WRITTEN, SPEC.size, policy)
        == struct.pack(">H", 0x000B) + hashlib.sha256(area.marshal()).digest()
    )
    assert nv.nv_name(INDEX, SPEC.attributes, SPEC.size, name_alg=0x000C) is None


def test_ours_is_accepted_written_or_not() -> None:
    assert nv.mismatch(answer(), SPEC) is None
    assert nv.mismatch(answer(SPEC.attributes | NvAttr.WRITTEN), SPEC) is None


@pytest.mark.parametrize(
    ("found", "words"),
    [
        (answer(SPEC.attributes | NvAttr.PLATFORMCREATE), "platform's authorization"),
        (answer(SPEC.attributes | NvAttr.PLATFORMCREATE | NvAttr.WRITTEN), "platform's"),
        (answer(SPEC.attributes | NvAttr.AUTHWRITE), "attributes are"),
        (answer(SPEC.attributes & ~NvAttr.NO_DA), "attributes are"),
        (answer(SPEC.attributes | NvAttr.READ_STCLEAR), "attributes are"),
        (answer(policy=bytes(32)), "authorization policy"),
        (answer(size=2048), "2048 bytes"),
        (answer(name_alg=0x000C), "name algorithm"),
        (answer(index=INDEX + 1), "described index"),
    ],
    ids=[
        "platform",
        "platform-written",
        "authwrite",
        "no-no-da",
        "read-stclear",
        "policy",
        "size",
        "sha384",
        "other-index",
    ],
)
def test_anything_else_is_refused_and_said(found: nv.NvInfo, words: str) -> None:
    problem = nv.mismatch(found, SPEC)
    assert problem is not None and words in problem


def test_a_name_that_is_not_the_reported_areas_is_refused() -> None:
    # An answer that reports our public area with another index's Name, and one
    # that reports another area with our Name: neither passes.
    ours = answer()
    other_name = answer(SPEC.attributes | NvAttr.AUTHWRITE).name
    assert nv.mismatch(replace(ours, name=other_name), SPEC) == (
        "the Name the TPM reported is not that of the public area it reported"
    )
    stranger = answer(SPEC.attributes | NvAttr.AUTHWRITE)
    assert "not that of the public area" in (
        nv.mismatch(replace(stranger, name=ours.name), SPEC) or ""
    )


def test_a_name_consistent_with_another_definition_is_refused() -> None:
    # area and Name agree, but describe an index defined otherwise: the
    # expected Name (this runtime's definition) is what decides
    spec = replace(SPEC, auth_policy=bytes(32))
    assert nv.mismatch(answer(), spec) is not None
    assert nv.mismatch(answer(policy=bytes(32)), spec) is None
