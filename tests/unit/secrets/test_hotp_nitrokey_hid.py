"""The Nitrokey HID frames: the CRC against its published known answers, each
field at the offset src/structs.h gives it, and the frames in
hotp_recordings/nitrokey_hid_frames.json byte for byte."""

from __future__ import annotations

import json
import struct

import pytest

from runtime.secrets.hotp import nitrokey_hid as hid
from tests.conftest import data_dir

FRAMES = json.loads((data_dir() / "hotp_recordings" / "nitrokey_hid_frames.json").read_text())
TEMP = bytes(range(1, 26))


def test_crc_known_answers() -> None:
    # CRC-32/MPEG-2 catalogue check value, and the STM32 reference manual's
    # example: one word 0x12345678 gives 0xDF8A8A2B.
    assert hid._crc32_mpeg2(b"123456789") == 0x0376E6E7
    assert hid.stm32_crc32(struct.pack("<I", 0x12345678)) == 0xDF8A8A2B
    with pytest.raises(ValueError):
        hid.stm32_crc32(b"abc")


def test_verify_query_layout() -> None:
    frame = hid.verify_code_query("755224")
    assert len(frame) == hid.REPORT_SIZE == 65
    assert frame[0] == 0 and frame[1] == 0x18
    assert struct.unpack_from("<I", frame, 2)[0] == 755224
    assert frame[6:61] == bytes(55)
    assert struct.unpack_from("<I", frame, 61)[0] == hid.stm32_crc32(frame[1:61])
    assert frame.hex() == FRAMES["verify_755224"]
    for bad in ("75522", "7552245", "75522a"):
        with pytest.raises(ValueError):
            hid.verify_code_query(bad)


def test_verify_response_is_decoded_and_matched_to_its_query() -> None:
    query = bytes.fromhex(FRAMES["verify_755224"])
    report = bytes.fromhex(FRAMES["verify_response_accepted"])
    response = hid.decode_response(report, query)
    assert response.command == hid.Command.VERIFY_OTP_CODE
    assert response.status == hid.CommandStatus.OK and response.device_status == 0
    assert len(response.payload) == hid.RESPONSE_PAYLOAD_SIZE
    assert hid.verify_code_result(response) == hid.VerifyResult(True, 2)


def test_damaged_or_foreign_responses_are_refused() -> None:
    query = bytes.fromhex(FRAMES["verify_755224"])
    report = bytearray.fromhex(FRAMES["verify_response_accepted"])
    with pytest.raises(hid.FrameError, match="65 bytes"):
        hid.decode_response(report[:64])
    flipped = bytearray(report)
    flipped[8] ^= 1
    with pytest.raises(hid.FrameError, match="CRC"):
        hid.decode_response(flipped)
    with pytest.raises(hid.FrameError, match="another query"):
        hid.decode_response(report, hid.verify_code_query("287082"))
    status = hid.decode_response(report, query)
    with pytest.raises(hid.FrameError):
        hid.verify_code_result(hid.Response(0, hid.Command.GET_STATUS, 0, 0, status.payload))


def test_first_authenticate_layout() -> None:
    frame = hid.first_authenticate_query(b"12345678", TEMP)
    assert frame[1] == 0x07
    assert frame[2:27] == b"12345678" + bytes(17)  # card password, 25 bytes
    assert frame[27:52] == TEMP  # temporary password, 25 bytes
    assert frame.hex() == FRAMES["first_authenticate_12345678"]
    with pytest.raises(ValueError):
        hid.first_authenticate_query(b"x" * 26, TEMP)


def test_otp_data_layout() -> None:
    frame = hid.otp_data_query(TEMP, b"S", b"12345678901234567890")
    assert frame[1] == 0x17 and frame[2:27] == TEMP
    assert frame[27:29] == b"S\x00"  # type, part number
    assert frame[29:59] == b"12345678901234567890" + bytes(10)
    assert frame.hex() == FRAMES["otp_secret_rfc4226"]
    name = hid.otp_data_query(TEMP, b"N", hid.SLOT_NAME)
    assert name[27:28] == b"N" and name[29:45] == b"HEADS Validation"
    assert name.hex() == FRAMES["otp_name"]
    with pytest.raises(ValueError):
        hid.otp_data_query(TEMP, b"X", b"")


def test_write_slot_layout() -> None:
    frame = hid.write_hotp_slot_query(TEMP, 1)
    assert frame[1] == 0x01 and frame[2:27] == TEMP
    assert frame[27] == 0x13  # HOTP slot 3
    assert struct.unpack_from("<Q", frame, 28)[0] == 1
    assert frame[36] == 0  # six digits
    assert frame.hex() == FRAMES["write_slot_counter_1"]
    with pytest.raises(ValueError):
        hid.write_hotp_slot_query(TEMP, -1)


def test_a_query_payload_has_room_for_59_bytes() -> None:
    assert hid.encode_query(0x00, bytes(59))[60] == 0
    with pytest.raises(ValueError):
        hid.encode_query(0x00, bytes(60))
