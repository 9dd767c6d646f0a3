"""Seeded mutation of configuration text for the parsers' robustness tests
(hypothesis is not installed): insert, drop, repeat and garble lines with the
format's own keywords, so the mutants stay close to real configurations."""

from __future__ import annotations

import random
from collections.abc import Sequence


def mutate(rng: random.Random, text: str, tokens: Sequence[str]) -> str:
    lines = text.splitlines(keepends=True) or [""]
    for _ in range(rng.randint(1, 8)):
        i = rng.randrange(len(lines))
        op = rng.randrange(6)
        if op == 0:
            lines[i] = rng.choice(tokens) + " " + lines[i]
        elif op == 1:
            del lines[i]
            lines = lines or [""]
        elif op == 2:
            lines.insert(i, rng.choice(tokens) + " " + rng.choice(tokens) + "\n")
        elif op == 3:
            lines[i] = lines[i] * rng.randint(2, 4)
        elif op == 4:
            cut = rng.randrange(len(lines[i]) + 1)
            lines[i] = lines[i][:cut] + rng.choice(tokens) + lines[i][cut:]
        else:
            lines[i] = "".join(chr(rng.randrange(1, 0x250)) for _ in range(rng.randrange(20)))
    return "".join(lines)
