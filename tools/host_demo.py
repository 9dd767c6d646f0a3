"""Host demo of the TPM layer against a fresh software TPM.

It does what the boot will do with the TOTP secret: take ownership, seal a
secret to the firmware PCRs, unseal it, then extend PCR 4 the way entering the
recovery shell does and show that the secret is refused, in plain words.
"""

from __future__ import annotations

import argparse
import sys

from runtime.tpm import TpmError, handles
from runtime.tpm.connection import Tpm
from runtime.tpm.ownership import da_state, reset_tpm
from runtime.tpm.pcrs import extend_string, read_all_banks, read_pcrs
from runtime.tpm.rng import random_bytes
from runtime.tpm.sealing import seal, store_persistent, unseal_persistent
from tools.swtpm import Swtpm

TOTP_PCRS = (0, 1, 2, 3, 4, 7)
OWNER = b"demo owner passphrase"


def say(text: str) -> None:
    print(text, flush=True)


def demo(tpm: Tpm) -> None:
    used = reset_tpm(tpm, OWNER)
    say(
        f"1. TPM reset through the {used} hierarchy; owner passphrase set, storage key "
        f"created at 0x{handles.PRIMARY_KEY:08x}."
    )
    secret = random_bytes(tpm, 20)
    sealed = seal(tpm, secret, TOTP_PCRS)
    store_persistent(tpm, sealed, handles.TOTP_SECRET, OWNER)
    say(
        f"2. A 20-byte secret from the TPM's generator is sealed to PCRs "
        f"{', '.join(map(str, TOTP_PCRS))} and kept at 0x{handles.TOTP_SECRET:08x}."
    )
    got = unseal_persistent(tpm, handles.TOTP_SECRET, TOTP_PCRS)
    say(
        f"3. Unsealed again: {'identical' if bytes(got) == secret else 'DIFFERENT'} "
        f"to what was sealed."
    )
    got[:] = bytes(len(got))  # wipe
    before = read_pcrs(tpm, [4])[4]
    extend_string(tpm, 4, "recovery")
    after = read_pcrs(tpm, [4])[4]
    say(
        f'4. PCR 4 extended with "recovery", as entering the recovery shell does:\n'
        f"   {before.hex()}\n   -> {after.hex()}"
    )
    try:
        unseal_persistent(tpm, handles.TOTP_SECRET, TOTP_PCRS)
        say("5. UNEXPECTED: the secret still unsealed.")
        raise SystemExit(1)
    except TpmError as exc:
        say(f"5. Unseal refused: {exc.message}.\n   Why: {exc.hint}")
    problems = tpm.log.check(read_all_banks(tpm, range(24)))
    say(
        "6. The runtime's measurement log replays to the TPM's PCRs: "
        + ("yes." if not problems else "NO: " + "; ".join(p.describe() for p in problems))
    )
    say(f"7. Dictionary-attack state: {da_state(tpm).describe()}.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--tcti",
        help="use this TPM instead of a fresh swtpm, e.g. "
        "swtpm:path=/tmp/x/tpm.sock (it will be RESET)",
    )
    args = parser.parse_args(argv)
    try:
        if args.tcti:
            with Tpm.connect(args.tcti) as tpm:
                demo(tpm)
            return 0
        with Swtpm() as sw:
            say(f"Started a software TPM in {sw.dir}.")
            with Tpm.connect(sw.tcti) as tpm:
                tpm.startup()
                demo(tpm)
    except TpmError as exc:
        print(f"error: {exc.message}\n{exc.hint}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
