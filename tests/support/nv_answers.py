"""What a TPM (or a bus interposer) could answer when asked about an NV index,
built without a TPM: for the unit tests of the exact check before an index is
read (runtime/tpm/nv.py, runtime/tpm/counters.py)."""

from __future__ import annotations

from typing import Protocol

from runtime.tpm import nv


class NvAnswer(Protocol):
    def __call__(
        self,
        attributes: int = ...,
        size: int = ...,
        policy: bytes = ...,
        index: int = ...,
        name_alg: int = ...,
    ) -> nv.NvInfo: ...


def nv_answers(asked: int, attributes: int, size: int) -> NvAnswer:
    """Answers to a question about index ``asked``: by default its public area
    defined with ``attributes`` and ``size``; each call may change any field
    of the area reported (``index`` the area's own), and the Name is always
    the true one of the area reported."""

    def answer(
        attributes: int = attributes,
        size: int = size,
        policy: bytes = b"",
        index: int = asked,
        name_alg: int = nv.NAME_ALG,
    ) -> nv.NvInfo:
        # a Name no hash algorithm of ours makes: the area cannot be named
        name = nv.nv_name(index, attributes, size, policy, name_alg) or b"\x00\x0c" + bytes(48)
        return nv.NvInfo(
            asked, attributes, size, name, name_alg=name_alg, auth_policy=policy, public_index=index
        )

    return answer
