"""HOTP: the user's USB token checks a code only this firmware can make.

The public face: the token interface and its answers, the counter store, and
the two operations. Backends are imported from their modules where a board
chooses one: nitrokey.NitrokeyToken (Nitrokey / Librem Key through
hotp_verification) or serial_token.SerialToken (the software token in QEMU);
counter.TpmCounterStore keeps the computer's counter in the TPM.
"""

from runtime.secrets.hotp.counter import CounterStore, CounterStoreError
from runtime.secrets.hotp.token import HotpCheck, HotpToken, TokenStatus
from runtime.secrets.hotp.verify import enrol_token, verify_with_token

__all__ = [
    "CounterStore",
    "CounterStoreError",
    "HotpCheck",
    "HotpToken",
    "TokenStatus",
    "enrol_token",
    "verify_with_token",
]
