"""TPM handles and NV indexes the runtime uses, numbered after Heads'.

The storage key and the rollback counters are where Heads keeps them. The
TOTP/HOTP secret is not: it is a sealed blob in NV (TOTP_SEALED_NV), and
Heads' persistent object at TOTP_SECRET is never read. A secret Heads sealed
is bound to Heads' firmware measurements, which flashing this runtime
changes, so the TPM would refuse it here anyway.
"""

#: Persistent storage primary key (ECC P-256 or RSA 2048: CONFIG_PRIMARY_KEY_TYPE).
PRIMARY_KEY = 0x81000000
#: Heads' sealed TOTP/HOTP secret ("4d47", "MG"); here only the tools'
#: benchmarks use it, the runtime uses TOTP_SEALED_NV.
TOTP_SECRET = 0x81004D47
#: Sealed LUKS disk-unlock key: Heads' index "3".
DISK_UNLOCK_KEY = 0x81000003

#: Rollback counters live at 0x01 followed by three random bytes.
COUNTER_RANGE_BASE = 0x01000000
COUNTER_RANGE_MASK = 0x00FFFFFF

#: Persistent handles are 0x81xxxxxx; NV indexes 0x01xxxxxx.
PERSISTENT_FIRST = 0x81000000
PERSISTENT_LAST = 0x81FFFFFF
NV_INDEX_FIRST = 0x01000000
NV_INDEX_LAST = 0x01FFFFFF


def is_persistent(handle: int) -> bool:
    return PERSISTENT_FIRST <= handle <= PERSISTENT_LAST


def is_nv_index(handle: int) -> bool:
    return NV_INDEX_FIRST <= handle <= NV_INDEX_LAST


#: NV index holding the sealed TOTP/HOTP secret as a self-describing blob
#: (runtime.tpm.nv.store_sealed): "MG" as in Heads, in the NV range.
TOTP_SEALED_NV = 0x01004D47

#: NV monotonic counter holding the computer's HOTP counter ("HO"), beside
#: the TOTP blob; runtime.secrets.hotp.counter defines it.
HOTP_COUNTER_NV = 0x0100484F

#: NV index holding the sealed Disk Unlock Key as a blob (runtime.disk.duk_store),
#: numbered after Heads' DUK index "3".
DUK_SEALED_NV = 0x01000003

#: NV indexes in the counter range that hold other state: never /boot's counter
NOT_ROLLBACK = frozenset({TOTP_SEALED_NV, HOTP_COUNTER_NV, DUK_SEALED_NV})
