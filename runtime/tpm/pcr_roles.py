"""What the PCRs the runtime reads and extends stand for, and the words it extends PCR 4 with.

One definition for the recovery shell, the kexec hand-over and the platform: PCR 4 holds the
firmware's measurement of the kernel, then the boot mode the runtime records, so a secret
sealed to the pre-boot value is out of reach once any mode was recorded.
"""

from __future__ import annotations

import enum
import hashlib

BOOT_MODE_PCR = 4
PCRS_SHOWN = tuple(range(10))  # firmware (0-7), the runtime's kernel (4), its initrd (9)


class BootMode(enum.StrEnum):
    """The text extended into PCR 4 (as its sha256) when the runtime leaves its verified path."""

    RECOVERY = "recovery"  # a recovery shell was opened
    VERIFIED = "generic"  # handed over to a verified kernel
    UNSAFE = "unsafe"  # handed over to a kernel that was not verified
    USB = "usb"  # booted from external media

    def digest(self) -> bytes:
        """The sha256 digest this mode extends PCR 4 with."""
        return hashlib.sha256(self.value.encode("ascii")).digest()


def recovery_extends(firmware_value: bytes, actual: bytes, most: int = 8) -> int:
    """How many "recovery" extends turn the firmware's PCR 4 into ``actual`` (0: none)."""
    value, extend = firmware_value, BootMode.RECOVERY.digest()
    for count in range(1, most + 1):
        value = hashlib.sha256(value + extend).digest()
        if value == actual:
            return count
    return 0
