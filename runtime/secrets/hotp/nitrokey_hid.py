"""The HID feature reports a Nitrokey Pro, Nitrokey Storage and Librem Key
speak, for the HOTP commands: pure encoding and decoding, no device access.

Layout, from nitrokey-hotp-verification's published src/structs.h,
src/command_id.h and src/device.c (facts only; written here anew):

- every report is 65 bytes: report ID 0, then 64 bytes;
- a query is ``[0][command][59-byte payload][CRC]``;
- a response is ``[0][device status][command][CRC of the query it answers]
  [command status][53-byte payload][CRC]``;
- integers are little-endian; the CRC is the STM32 hardware CRC (polynomial
  0x04C11DB7, start 0xFFFFFFFF, no reflection, no final XOR) run over bytes
  1..60 taken as fifteen little-endian 32-bit words.

The runtime talks to tokens through the ``hotp_verification`` program
(nitrokey.py); this module documents and tests the wire format so a direct
/dev/hidraw backend, which would keep the admin PIN off any command line,
can be built on it. The Nitrokey 3 uses CCID (smart-card APDUs), not these.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from runtime.secrets.ram import wipe_buffer

REPORT_SIZE = 65
QUERY_PAYLOAD_SIZE = 59
RESPONSE_PAYLOAD_SIZE = 53
_CRC_SPAN = slice(1, 61)  # the bytes the CRC covers (after the report ID)

#: Length of the random temporary password the host sends with the PIN.
TEMPORARY_PASSWORD_SIZE = 25
#: hotp_verification writes HOTP slot 3, which the firmware numbers 0x10 + 3.
HOTP_SLOT = 0x13
#: Pro/Storage/Librem Key firmware keep 20 bytes of secret per slot.
SECRET_SIZE = 20
#: The slot name hotp_verification writes (settings.h), as Heads documents it.
SLOT_NAME = b"HEADS Validation"


class Command(enum.IntEnum):
    GET_STATUS = 0x00
    WRITE_TO_SLOT = 0x01
    FIRST_AUTHENTICATE = 0x07
    GET_PASSWORD_RETRY_COUNT = 0x09
    SEND_OTP_DATA = 0x17
    VERIFY_OTP_CODE = 0x18


class CommandStatus(enum.IntEnum):
    OK = 0
    WRONG_CRC = 1
    WRONG_SLOT = 2
    SLOT_NOT_PROGRAMMED = 3
    WRONG_PASSWORD = 4
    NOT_AUTHORIZED = 5
    TIMESTAMP_WARNING = 6
    NO_NAME_ERROR = 7
    NOT_SUPPORTED = 8
    UNKNOWN_COMMAND = 9
    AES_DEC_FAILED = 10


class FrameError(ValueError):
    """A report that is not a valid answer."""


def _crc32_mpeg2(data: bytes | bytearray, crc: int = 0xFFFFFFFF) -> int:
    """CRC-32/MPEG-2, most significant bit first."""
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else crc << 1
            crc &= 0xFFFFFFFF
    return crc


def stm32_crc32(data: bytes | bytearray) -> int:
    """The STM32 CRC unit's result over ``data`` read as little-endian words:
    CRC-32/MPEG-2 over each word's bytes, most significant first."""
    if len(data) % 4:
        raise ValueError("the STM32 CRC runs over whole 32-bit words")
    swapped = bytearray()
    for start in range(0, len(data), 4):
        swapped += data[start : start + 4][::-1]
    return _crc32_mpeg2(swapped)


def encode_query(command: int, payload: bytes | bytearray = b"") -> bytearray:
    """A 65-byte query report. A bytearray, so one carrying a PIN can be wiped."""
    if len(payload) > QUERY_PAYLOAD_SIZE:
        raise ValueError(f"a query payload holds at most {QUERY_PAYLOAD_SIZE} bytes")
    report = bytearray(REPORT_SIZE)
    report[1] = command
    report[2 : 2 + len(payload)] = payload
    report[61:65] = struct.pack("<I", stm32_crc32(report[_CRC_SPAN]))
    return report


def query_crc(query: bytes | bytearray) -> int:
    return int(struct.unpack_from("<I", query, 61)[0])


@dataclass(frozen=True)
class Response:
    device_status: int
    command: int
    query_crc: int  # the CRC of the query this answers
    status: int  # CommandStatus
    payload: bytes


def decode_response(report: bytes | bytearray, query: bytes | bytearray | None = None) -> Response:
    """Parse a 65-byte response; FrameError if it is damaged or answers
    another query than ``query``."""
    if len(report) != REPORT_SIZE:
        raise FrameError(f"a report is {REPORT_SIZE} bytes, not {len(report)}")
    (crc,) = struct.unpack_from("<I", report, 61)
    if crc != stm32_crc32(report[_CRC_SPAN]):
        raise FrameError("the response's CRC does not match its content")
    device_status, command, answered, status = struct.unpack_from("<BBIB", report, 1)
    if query is not None and answered != query_crc(query):
        raise FrameError("the response answers another query")
    return Response(device_status, command, answered, status, bytes(report[8:61]))


def verify_code_query(code: str) -> bytearray:
    """VERIFY_OTP_CODE: the code as a 32-bit number."""
    if not (len(code) == 6 and code.isascii() and code.isdigit()):
        raise ValueError("an HOTP code here is six digits")
    return encode_query(Command.VERIFY_OTP_CODE, struct.pack("<I", int(code)))


@dataclass(frozen=True)
class VerifyResult:
    accepted: bool
    counter_offset: int  # how far past its counter the token found the code


def verify_code_result(response: Response) -> VerifyResult:
    """The token's verdict; FrameError for a response to another command."""
    if response.command != Command.VERIFY_OTP_CODE:
        raise FrameError("not an answer to VERIFY_OTP_CODE")
    return VerifyResult(response.payload[0] != 0, response.payload[1])


def _fixed(data: bytes | bytearray, size: int, what: str) -> bytearray:
    if len(data) > size:
        raise ValueError(f"{what} is longer than {size} bytes")
    return bytearray(data) + bytearray(size - len(data))


def first_authenticate_query(
    admin_pin: bytes | bytearray, temporary_password: bytes | bytearray
) -> bytearray:
    """FIRST_AUTHENTICATE: the admin PIN and the temporary password that
    authorises the following writes (25 bytes each, zero-padded)."""
    fields = _fixed(admin_pin, 25, "the admin PIN")
    fields += _fixed(temporary_password, TEMPORARY_PASSWORD_SIZE, "the temporary password")
    try:
        return encode_query(Command.FIRST_AUTHENTICATE, fields)
    finally:
        wipe_buffer(fields)


def otp_data_query(
    temporary_password: bytes | bytearray, kind: bytes, data: bytes | bytearray, part: int = 0
) -> bytearray:
    """SEND_OTP_DATA: ``kind`` b"S" for (part of) the secret, b"N" for the slot name."""
    if kind not in (b"S", b"N"):
        raise ValueError("SEND_OTP_DATA carries a secret (S) or a name (N)")
    fields = _fixed(temporary_password, TEMPORARY_PASSWORD_SIZE, "the temporary password")
    fields += kind + bytes([part]) + _fixed(data, 30, "the data")
    try:
        return encode_query(Command.SEND_OTP_DATA, fields)
    finally:
        wipe_buffer(fields)


def write_hotp_slot_query(
    temporary_password: bytes | bytearray,
    counter: int,
    slot: int = HOTP_SLOT,
    eight_digits: bool = False,
) -> bytearray:
    """WRITE_TO_SLOT: commit the sent secret and name to ``slot`` at ``counter``."""
    if not 0 <= counter < 2**64:
        raise ValueError("the counter is a 64-bit unsigned number")
    fields = _fixed(temporary_password, TEMPORARY_PASSWORD_SIZE, "the temporary password")
    fields += struct.pack("<BQB", slot, counter, 1 if eight_digits else 0) + bytes(13)
    return encode_query(Command.WRITE_TO_SLOT, fields)
