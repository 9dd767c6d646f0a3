"""`python -m runtime.measure.recovery`: the entry /init runs today before
its recovery shell. It is now the whole gate of runtime.recovery (PCR 4
extended, RAM secrets wiped, the owner authenticated when an owner key is
installed), so /init keeps working unchanged; exit 0 still means "open the
shell". New callers use ``python3.11 -I -m runtime.recovery --reason TEXT``."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from runtime.recovery.__main__ import Paths
from runtime.recovery.__main__ import main as gate_main

DEFAULT_REASON = "the runtime stopped"


def main(argv: Sequence[str] | None = None, paths: Paths | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    return gate_main(args or ["--reason", DEFAULT_REASON], paths)


if __name__ == "__main__":
    sys.exit(main())
