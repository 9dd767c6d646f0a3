"""The QEMU tier's RAM search (tests/e2e/guest_ram.py) finds every piece of a
secret that a search for each piece on its own finds: it searches a dump once
per anchor, not once per piece, so its coverage is what needs proving."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.e2e.guest_ram import PIECE, Needles, found_in, piece_places, places


def one_by_one(ram: bytes, name: str, value: bytes) -> dict[str, list[int]]:
    if len(value) <= PIECE:
        hits = places(ram, value)
        return {name: hits} if hits else {}
    found = {}
    for i in range(len(value) - PIECE + 1):
        if hits := places(ram, value[i : i + PIECE]):
            found[f"{name} [{i}:{i + PIECE}]"] = hits
    return found


@settings(max_examples=60, deadline=None)
@given(st.binary(min_size=1, max_size=70), st.integers(0, 2**32), st.integers(0, 6))
def test_every_planted_piece_is_found_as_by_one_search_per_piece(
    value: bytes, seed: int, planted: int
) -> None:
    rng = random.Random(seed)
    ram = bytearray(rng.randbytes(1 << 16))
    for _ in range(planted):
        i = rng.randrange(max(1, len(value) - PIECE + 1))
        piece = value[i : i + PIECE]
        at = rng.randrange(len(ram) - len(piece))
        ram[at : at + len(piece)] = piece
    expected = one_by_one(bytes(ram), "v", value)
    got = piece_places(bytes(ram), "v", value)
    assert {k: sorted(v) for k, v in got.items()} == {k: sorted(v) for k, v in expected.items()}


def test_whole_needles_are_only_searched_whole() -> None:
    ram = b"x" * 100 + b"recovery passphrase" + b"y" * 100
    needles = Needles(whole={"worded": b"the recovery passphrase"}, pieced={"p": b"covery passphr"})
    found = found_in(ram, needles)
    assert list(found) == ["p [0:12]", "p [1:13]", "p [2:14]"]
    assert b"recovery passphrase" in found["p [0:12]"][0]
