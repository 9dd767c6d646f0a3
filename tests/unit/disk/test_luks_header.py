"""LUKS metadata as hostile input: a header's first bytes, luksDump's text."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime.disk.luks_header import (
    HEAD_SIZE,
    LUKS2_SECONDARY_MAGIC,
    LUKS_MAGIC,
    KeySlots,
    LuksHeader,
    LuksHeaderError,
    identify,
    parse_key_slots,
    valid_uuid,
)

UUID = "e8996ce3-ff6d-43d5-b525-8cbf7afc29ee"


def header(
    version: int = 2,
    *,
    magic: bytes = LUKS_MAGIC,
    uuid: bytes = UUID.encode(),
    label: bytes = b"",
    hdr_size: int = 16384,
    hdr_offset: int | None = None,
    length: int = HEAD_SIZE,
) -> bytes:
    """A LUKS header's first bytes as cryptsetup lays them out."""
    data = bytearray(max(length, 512))
    data[0:6] = magic
    data[6:8] = version.to_bytes(2, "big")
    data[168 : 168 + len(uuid)] = uuid
    if version == 2:
        data[8:16] = hdr_size.to_bytes(8, "big")
        data[24 : 24 + len(label)] = label
        if hdr_offset is None:
            hdr_offset = 0 if magic == LUKS_MAGIC else hdr_size
        data[256:264] = hdr_offset.to_bytes(8, "big")
    return bytes(data[:length])


def test_a_luks2_header_gives_its_version_uuid_label_and_size() -> None:
    got = identify(header(2, label=b"my disk", hdr_size=32768))
    assert got == LuksHeader(2, UUID, "my disk", 32768, True)


def test_a_luks1_header_has_no_label_and_no_hdr_size() -> None:
    assert identify(header(1, length=592)) == LuksHeader(1, UUID, "", None, True)


def test_an_upper_case_uuid_is_kept_as_written() -> None:
    got = identify(header(uuid=UUID.upper().encode()))
    assert got is not None and got.uuid == UUID.upper()


@pytest.mark.parametrize(
    "head",
    [b"", b"LUKS", b"\0" * HEAD_SIZE, b"luks\xba\xbe" + b"\0" * 600, b"\x53\xef" * 2048],
    ids=["empty", "short-magic", "zeros", "lower-case", "other"],
)
def test_bytes_without_the_magic_are_not_luks(head: bytes) -> None:
    assert identify(head) is None


def test_a_secondary_header_is_reported_as_not_a_primary() -> None:
    got = identify(header(magic=LUKS2_SECONDARY_MAGIC))
    assert got is not None and not got.primary and got.version == 2


@pytest.mark.parametrize(
    "head",
    [
        LUKS_MAGIC,
        LUKS_MAGIC + b"\0",
        header(1, length=591),
        header(2, length=4095),
        header(2, length=600),
    ],
    ids=["magic-only", "half-version", "luks1-591", "luks2-4095", "luks2-600"],
)
def test_a_truncated_header_is_refused(head: bytes) -> None:
    with pytest.raises(LuksHeaderError, match="cut short"):
        identify(head)


@pytest.mark.parametrize(
    "uuid",
    [
        b"",
        b"not-a-uuid",
        b"e8996ce3 ff6d",
        b"e8996ce3\n-ff6d",
        b"\xff\xfe\x00",
        b"e8996ce3-ff6d\0junk",
        b"../../etc/passwd",
        b"x" * 40,
    ],
    ids=["empty", "letters", "space", "newline", "high-bytes", "after-nul", "path", "full"],
)
def test_a_uuid_holding_garbage_is_refused(uuid: bytes) -> None:
    for version in (1, 2):
        with pytest.raises(LuksHeaderError, match="UUID"):
            identify(header(version, uuid=uuid))


def test_a_forty_character_uuid_without_nul_is_taken() -> None:
    got = identify(header(uuid=b"a" * 40))
    assert got is not None and got.uuid == "a" * 40


@pytest.mark.parametrize("version", [0, 3, 0xFFFF])
def test_an_unknown_version_is_refused(version: int) -> None:
    with pytest.raises(LuksHeaderError, match="version"):
        identify(header(version))


def test_a_secondary_claiming_luks1_is_refused() -> None:
    with pytest.raises(LuksHeaderError, match="secondary"):
        identify(header(1, magic=LUKS2_SECONDARY_MAGIC))


@pytest.mark.parametrize("hdr_size", [0, 4096, 16385, 8 << 20, 2**64 - 1])
def test_a_luks2_size_luks2_does_not_allow_is_refused(hdr_size: int) -> None:
    with pytest.raises(LuksHeaderError, match="size"):
        identify(header(hdr_size=hdr_size))


@pytest.mark.parametrize("magic,offset", [(LUKS_MAGIC, 16384), (LUKS2_SECONDARY_MAGIC, 0)])
def test_a_header_saying_it_lies_elsewhere_is_refused(magic: bytes, offset: int) -> None:
    with pytest.raises(LuksHeaderError, match="somewhere else"):
        identify(header(magic=magic, hdr_offset=offset))


def test_a_label_is_made_printable() -> None:
    got = identify(header(label=b"a\nb\x1b[2J\xff" + b"\0rest"))
    assert got is not None and got.label == "a?b?[2J\ufffd"


def test_only_the_first_4096_bytes_are_looked_at() -> None:
    assert identify(header() + b"\xff" * 10_000) == identify(header())


def test_valid_uuid() -> None:
    assert valid_uuid(UUID) and valid_uuid("ABCDEF-0")
    assert not valid_uuid("") and not valid_uuid("a" * 41) and not valid_uuid("g")
    assert not valid_uuid("١٢٣")  # digits, but not ASCII ones


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=5000))
def test_any_bytes_give_a_result_none_or_a_header_error(head: bytes) -> None:
    _identify_or_refuse(head)


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from([LUKS_MAGIC, LUKS2_SECONDARY_MAGIC]),
    st.binary(min_size=0, max_size=4200),
)
def test_any_bytes_after_a_magic_give_a_result_or_a_header_error(magic: bytes, rest: bytes) -> None:
    _identify_or_refuse(magic + rest)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_a_valid_header_with_bytes_changed_gives_a_result_or_a_header_error(
    data: st.DataObject,
) -> None:
    head = bytearray(header(data.draw(st.sampled_from([1, 2])), label=b"disk"))
    for _ in range(data.draw(st.integers(1, 8))):
        at = data.draw(st.integers(0, 300))
        head[at] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(head)))
    _identify_or_refuse(bytes(head[:cut]))


def _identify_or_refuse(head: bytes) -> None:
    try:
        got = identify(head)
    except LuksHeaderError as err:
        assert str(err)
        return
    if got is not None:
        assert got.version in (1, 2) and valid_uuid(got.uuid)
        assert got.label.isprintable() or got.label == ""


# luksDump's text, as cryptsetup 2.6.1 prints it (salts and digests shortened)
LUKS1_DUMP = """LUKS header information for l1.img

Version:       \t1
Cipher name:   \taes
Cipher mode:   \txts-plain64
Hash spec:     \tsha256
Payload offset:\t4096
MK bits:       \t512
MK digest:     \tac 58 e6 c4 78 1f 48 3e ba 4e a5 2a 88 88 e9 8c 4e a0 ce 45\x20
MK iterations: \t1000
UUID:          \tbac2d1b0-4ae8-4171-b1ce-50c9272e8f01

Key Slot 0: ENABLED
\tIterations:         \t1000
\tSalt:               \t6f 7e 2f 13 48 c4 df fd 7b 2a ae 8d 1f 0c 50 e5\x20
\tKey material offset:\t8
\tAF stripes:            \t4000
Key Slot 1: DISABLED
Key Slot 2: DISABLED
Key Slot 3: DISABLED
Key Slot 4: DISABLED
Key Slot 5: DISABLED
Key Slot 6: DISABLED
Key Slot 7: ENABLED
\tIterations:         \t1000
"""

LUKS2_DUMP = """LUKS header information
Version:       \t2
Epoch:         \t4
Metadata area: \t16384 [bytes]
Keyslots area: \t16744448 [bytes]
UUID:          \te8996ce3-ff6d-43d5-b525-8cbf7afc29ee
Label:         \t(no label)
Subsystem:     \t(no subsystem)
Flags:       \t(no flags)

Data segments:
  0: crypt
\toffset: 16777216 [bytes]
\tlength: (whole device)
\tcipher: aes-xts-plain64
\tsector: 4096 [bytes]

Keyslots:
  0: luks2
\tKey:        512 bits
\tPriority:   normal
\tSalt:       0a 14 3e 1f 63 76 7c 99 ff ea 1a ea 3f 9c 10 7c\x20
\t            0b 1f a9 86 b2 bf 01 23 1d ba 10 70 28 e6 aa 26\x20
\tDigest ID:  0
  31: luks2
\tKey:        512 bits
  4: luks2 (unbound)
\tKey:        512 bits
Tokens:
Digests:
  0: pbkdf2
\tHash:       sha256
"""


def test_luks1_dump_gives_the_enabled_slots() -> None:
    assert parse_key_slots(LUKS1_DUMP) == KeySlots(1, frozenset({0, 7}))


def test_luks2_dump_gives_the_keyslots_section_only() -> None:
    # "0: crypt" (a segment) and "0: pbkdf2" (a digest) are not key slots
    assert parse_key_slots(LUKS2_DUMP) == KeySlots(2, frozenset({0, 4, 31}))


def test_luks2_dump_without_key_slots_gives_none() -> None:
    dump = LUKS2_DUMP.split("Keyslots:")[0] + "Keyslots:\nTokens:\nDigests:\n"
    assert parse_key_slots(dump).used == frozenset()


@pytest.mark.parametrize(
    "dump",
    [
        "",
        "garbage",
        LUKS2_DUMP.replace("Version:       \t2", "Version: 3"),
        # a label cannot smuggle in a second version or section
        LUKS2_DUMP.replace("(no label)", "x\nVersion: 1"),
        LUKS2_DUMP.replace("(no label)", "x\nKeyslots:\n  7: luks2"),
        LUKS2_DUMP.replace("  31: luks2", "  32: luks2"),
        LUKS2_DUMP.replace("  31: luks2", "  0: luks2"),
        LUKS2_DUMP.replace("  31: luks2", "  x: luks2"),
        LUKS2_DUMP.replace("  31: luks2", "   31: luks2"),
        LUKS2_DUMP.replace("  31: luks2", "  ٣: luks2"),
        LUKS2_DUMP.replace("Keyslots:", "Key slots:"),
        LUKS1_DUMP.replace("Key Slot 7: ENABLED", "Key Slot 0: ENABLED"),
        LUKS1_DUMP.replace("Key Slot", "Slot"),
        LUKS1_DUMP.replace("Key Slot 7", "Key Slot 8"),
    ],
    ids=[
        "empty",
        "garbage",
        "version-3",
        "second-version",
        "second-section",
        "slot-32",
        "slot-twice",
        "slot-not-a-number",
        "odd-indent",
        "non-ascii-digit",
        "no-section",
        "luks1-twice",
        "luks1-no-slots",
        "luks1-slot-8",
    ],
)
def test_a_dump_it_cannot_place_is_refused(dump: str) -> None:
    with pytest.raises(ValueError):
        parse_key_slots(dump)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=2000))
def test_any_text_gives_key_slots_or_a_value_error(dump: str) -> None:
    _parse_or_refuse(dump)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([LUKS1_DUMP, LUKS2_DUMP]), st.integers(0, 1500), st.text(max_size=40))
def test_a_real_dump_with_text_inserted_gives_key_slots_or_a_value_error(
    dump: str, at: int, extra: str
) -> None:
    _parse_or_refuse(dump[:at] + extra + dump[at:])


def _parse_or_refuse(dump: str) -> None:
    try:
        got = parse_key_slots(dump)
    except ValueError:
        return
    assert got.version in (1, 2)
    assert all(0 <= slot < (8 if got.version == 1 else 32) for slot in got.used)
