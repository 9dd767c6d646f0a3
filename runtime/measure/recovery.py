"""`python -m runtime.measure.recovery`: run by /init before it opens a
recovery shell. Extends PCR 4 (as Heads does), so no secret sealed to the
normal boot unseals for the rest of this boot."""

import sys

from runtime.tpm.connection import Tpm
from runtime.tpm.pcrs import extend_string


def main() -> int:
    tpm = Tpm.connect()
    extend_string(tpm, 4, "recovery", "recovery-shell")
    return 0


if __name__ == "__main__":
    sys.exit(main())
