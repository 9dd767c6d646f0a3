"""`python -m runtime.measure.recovery`: run by /init before it opens a
recovery shell. Extends PCR 4 (as Heads does), so no secret sealed to the
normal boot unseals for the rest of this boot. /init opens no shell unless
this succeeds."""

import sys

from runtime.tpm.connection import Tpm
from runtime.tpm.errors import TpmError
from runtime.tpm.pcrs import extend_string


def main() -> int:
    try:
        tpm = Tpm.connect()
        try:
            extend_string(tpm, 4, "recovery", "recovery-shell")
        finally:
            tpm.close()
    except TpmError as err:
        print(f"recovery: PCR 4 could not be extended: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
