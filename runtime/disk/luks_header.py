"""What LUKS metadata says (pure): a header's first bytes (version, UUID,
label) and ``cryptsetup luksDump``'s key slots.

A disk is hostile input: any bytes give a LuksHeader, None (no LUKS magic at
all) or LuksHeaderError (it says LUKS but cannot be trusted), never another
exception. The UUID is refused unless it is hex digits and dashes, since it
ends up in crypttab lines and file names.

Layout (big-endian), the same first 208 bytes in both versions:
  0 magic (6)   6 version (u16)   168 uuid (40, NUL-padded)
LUKS2 only: 8 hdr_size (u64), 24 label (48), 256 hdr_offset (u64).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: how much of a device is read to identify it
HEAD_SIZE = 4096
LUKS_MAGIC = b"LUKS\xba\xbe"
#: LUKS2 keeps a second copy of its header after the first; it starts so
LUKS2_SECONDARY_MAGIC = b"SKUL\xba\xbe"

_VERSION_AT = 6
_HDR_SIZE_AT = 8
_LABEL_AT, _LABEL_LEN = 24, 48
_UUID_AT, _UUID_LEN = 168, 40
_HDR_OFFSET_AT = 256
#: LUKS1's fixed header (phdr with its 8 key slot records); LUKS2's binary header
_LUKS1_MIN = 592
_LUKS2_MIN = 4096
#: the sizes LUKS2 allows for header plus JSON area: 16 KiB to 4 MiB, powers of two
_LUKS2_HDR_SIZES = frozenset(16384 << n for n in range(9))
_UUID_CHARS = frozenset("0123456789abcdefABCDEF-")
#: key slots per version: LUKS1 0-7; LUKS2 0-31, whatever its keyslots area holds
SLOTS = {1: 8, 2: 32}


class LuksHeaderError(ValueError):
    """The bytes start like a LUKS header but are refused; str() is plain words."""


@dataclass(frozen=True)
class LuksHeader:
    version: int  # 1 or 2
    uuid: str  # hex digits and dashes only
    label: str  # LUKS2's label, printable ("" when none, always "" for LUKS1)
    hdr_size: int | None  # LUKS2: binary header + JSON area, bytes; None for LUKS1
    primary: bool  # False: a LUKS2 secondary header, not the start of a container


@dataclass(frozen=True)
class KeySlots:
    version: int
    used: frozenset[int]


def valid_uuid(text: str) -> bool:
    """A LUKS UUID this runtime accepts: 1 to 40 hex digits and dashes."""
    return 0 < len(text) <= _UUID_LEN and all(c in _UUID_CHARS for c in text)


def identify(head: bytes) -> LuksHeader | None:
    """The LUKS header at the start of ``head`` (a device's first bytes); None
    when there is no LUKS magic; LuksHeaderError when it cannot be trusted."""
    data = bytes(head[:HEAD_SIZE])
    if data.startswith(LUKS_MAGIC):
        primary = True
    elif data.startswith(LUKS2_SECONDARY_MAGIC):
        primary = False
    else:
        return None
    if len(data) < _VERSION_AT + 2:
        raise LuksHeaderError("The LUKS header is cut short.")
    version = int.from_bytes(data[_VERSION_AT : _VERSION_AT + 2], "big")
    if version not in (1, 2):
        raise LuksHeaderError(f"The LUKS header has version {version}, not 1 or 2.")
    if not primary and version != 2:
        raise LuksHeaderError("Only LUKS2 has a secondary header, yet this one says LUKS1.")
    if len(data) < (_LUKS1_MIN if version == 1 else _LUKS2_MIN):
        raise LuksHeaderError("The LUKS header is cut short.")
    uuid = _uuid(data[_UUID_AT : _UUID_AT + _UUID_LEN])
    if version == 1:
        return LuksHeader(1, uuid, "", None, True)
    hdr_size = int.from_bytes(data[_HDR_SIZE_AT : _HDR_SIZE_AT + 8], "big")
    if hdr_size not in _LUKS2_HDR_SIZES:
        raise LuksHeaderError("The LUKS2 header gives a size LUKS2 does not allow.")
    # the primary copy sits at 0, the secondary right after the primary's area
    hdr_offset = int.from_bytes(data[_HDR_OFFSET_AT : _HDR_OFFSET_AT + 8], "big")
    if hdr_offset != (0 if primary else hdr_size):
        raise LuksHeaderError("The LUKS2 header says it lies somewhere else.")
    label = _printable(_c_string(data[_LABEL_AT : _LABEL_AT + _LABEL_LEN]))
    return LuksHeader(2, uuid, label, hdr_size, primary)


def _c_string(field: bytes) -> bytes:
    return field.split(b"\0", 1)[0]


def _uuid(field: bytes) -> str:
    text, _, padding = field.partition(b"\0")
    if padding.strip(b"\0"):
        raise LuksHeaderError("The LUKS header's UUID field holds bytes after its end.")
    uuid = text.decode("ascii", "replace")
    if not valid_uuid(uuid):
        raise LuksHeaderError("The LUKS header's UUID is not made of hex digits and dashes.")
    return uuid


def _printable(raw: bytes) -> str:
    """A label for the screen: UTF-8 where it is, no control characters."""
    return "".join(c if c.isprintable() else "?" for c in raw.decode("utf-8", "replace"))


def parse_key_slots(dump: str) -> KeySlots:
    """The version and used key slots from ``cryptsetup luksDump``'s text
    (pure). The dump quotes the header (labels), so any line it cannot place
    is a ValueError, never a guess."""
    lines = dump.split("\n")
    versions = [m.group(1) for m in map(re.compile(r"Version:\s+([0-9]+)").fullmatch, lines) if m]
    if len(versions) != 1 or versions[0] not in ("1", "2"):
        raise ValueError("no single LUKS version line")
    version = int(versions[0])
    used = _luks1_slots(lines) if version == 1 else _luks2_slots(lines)
    if any(slot >= SLOTS[version] for slot in used):
        raise ValueError("a key slot beyond the version's range")
    return KeySlots(version, frozenset(used))


def _luks1_slots(lines: list[str]) -> set[int]:
    seen: dict[int, bool] = {}
    for line in lines:
        match = re.fullmatch(r"Key Slot ([0-9]): (ENABLED|DISABLED)", line)
        if match is None:
            continue
        slot = int(match.group(1))
        if slot in seen:
            raise ValueError(f"key slot {slot} listed twice")
        seen[slot] = match.group(2) == "ENABLED"
    if not seen:
        raise ValueError("no key slot lines")
    return {slot for slot, enabled in seen.items() if enabled}


def _luks2_slots(lines: list[str]) -> set[int]:
    starts = [i for i, line in enumerate(lines) if line == "Keyslots:"]
    if len(starts) != 1:
        raise ValueError("no single Keyslots section")
    used: set[int] = set()
    for line in lines[starts[0] + 1 :]:
        if line == "" or not line[0].isspace():
            break  # the next section
        if line.startswith("\t"):
            continue  # a slot's details
        match = re.fullmatch(r"  ([0-9]{1,2}): \S.*", line)
        if match is None:
            raise ValueError("a line the Keyslots section does not hold")
        slot = int(match.group(1))
        if slot in used:
            raise ValueError(f"key slot {slot} listed twice")
        used.add(slot)
    return used
