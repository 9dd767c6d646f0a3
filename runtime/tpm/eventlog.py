"""Parse and replay binary TCG firmware event logs without a TPM.

The firmware records every measurement it extends into a PCR in an event log
(on Linux: /sys/kernel/security/tpm0/binary_bios_measurements). Replaying the
logged digests predicts the PCR values, so the runtime can tell which PCRs a
quote or a PCR read disagrees with, and explain why, before unsealing.

Two layouts exist and are detected automatically:

* crypto-agile (TCG PC Client Platform Firmware Profile, TCG_PCR_EVENT2): a
  legacy-format "Spec ID Event03" header names the hash algorithms and their
  digest sizes, then every event carries one digest per algorithm;
* legacy TCG 1.2 (SHA-1 only): every event carries exactly one SHA-1 digest.

The log comes from firmware and is untrusted: every malformed or truncated
input raises :class:`EventLogError` (never IndexError or struct.error).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import BinaryIO

from runtime.tpm.pcr_math import PCR_COUNT, Bank, PcrMismatch, compare, extend

#: Where Linux exposes the firmware's event log.
DEFAULT_EVENTLOG_PATH = "/sys/kernel/security/tpm0/binary_bios_measurements"

#: Refuse to read more than this; real firmware logs are well under 1 MiB.
MAX_LOG_SIZE = 16 * 1024 * 1024

EV_NO_ACTION = 0x3
EV_EFI_EVENT_BASE = 0x80000000

SPEC_ID_SIGNATURE = b"Spec ID Event03\0"
STARTUP_LOCALITY_SIGNATURE = b"StartupLocality\0"

_SHA1_ALG_ID = Bank.SHA1.alg_id
_SHA1_SIZE = Bank.SHA1.digest_size
# pcrIndex, eventType, SHA-1 digest, eventSize.
_LEGACY_HEADER_SIZE = 4 + 4 + _SHA1_SIZE + 4
# platformClass, version minor/major, errata, uintnSize, numberOfAlgorithms.
_SPEC_ID_FIXED_SIZE = len(SPEC_ID_SIGNATURE) + 4 + 1 + 1 + 1 + 1 + 4
# pcrIndex and eventType must both be present before bytes count as padding.
_MIN_PADDING_SIZE = 8

_EVENT_TYPE_NAMES: dict[int, str] = {
    0x0: "EV_PREBOOT_CERT",
    0x1: "EV_POST_CODE",
    0x2: "EV_UNUSED",
    0x3: "EV_NO_ACTION",
    0x4: "EV_SEPARATOR",
    0x5: "EV_ACTION",
    0x6: "EV_EVENT_TAG",
    0x7: "EV_S_CRTM_CONTENTS",
    0x8: "EV_S_CRTM_VERSION",
    0x9: "EV_CPU_MICROCODE",
    0xA: "EV_PLATFORM_CONFIG_FLAGS",
    0xB: "EV_TABLE_OF_DEVICES",
    0xC: "EV_COMPACT_HASH",
    0xD: "EV_IPL",
    0xE: "EV_IPL_PARTITION_DATA",
    0xF: "EV_NONHOST_CODE",
    0x10: "EV_NONHOST_CONFIG",
    0x11: "EV_NONHOST_INFO",
    0x12: "EV_OMIT_BOOT_DEVICE_EVENTS",
    EV_EFI_EVENT_BASE: "EV_EFI_EVENT_BASE",
    EV_EFI_EVENT_BASE + 0x1: "EV_EFI_VARIABLE_DRIVER_CONFIG",
    EV_EFI_EVENT_BASE + 0x2: "EV_EFI_VARIABLE_BOOT",
    EV_EFI_EVENT_BASE + 0x3: "EV_EFI_BOOT_SERVICES_APPLICATION",
    EV_EFI_EVENT_BASE + 0x4: "EV_EFI_BOOT_SERVICES_DRIVER",
    EV_EFI_EVENT_BASE + 0x5: "EV_EFI_RUNTIME_SERVICES_DRIVER",
    EV_EFI_EVENT_BASE + 0x6: "EV_EFI_GPT_EVENT",
    EV_EFI_EVENT_BASE + 0x7: "EV_EFI_ACTION",
    EV_EFI_EVENT_BASE + 0x8: "EV_EFI_PLATFORM_FIRMWARE_BLOB",
    EV_EFI_EVENT_BASE + 0x9: "EV_EFI_HANDOFF_TABLES",
    EV_EFI_EVENT_BASE + 0xA: "EV_EFI_PLATFORM_FIRMWARE_BLOB2",
    EV_EFI_EVENT_BASE + 0xB: "EV_EFI_HANDOFF_TABLES2",
    EV_EFI_EVENT_BASE + 0xC: "EV_EFI_VARIABLE_BOOT2",
    EV_EFI_EVENT_BASE + 0x10: "EV_EFI_HCRTM_EVENT",
    EV_EFI_EVENT_BASE + 0xE0: "EV_EFI_VARIABLE_AUTHORITY",
    EV_EFI_EVENT_BASE + 0xE1: "EV_EFI_SPDM_FIRMWARE_BLOB",
    EV_EFI_EVENT_BASE + 0xE2: "EV_EFI_SPDM_FIRMWARE_CONFIG",
}


class EventLogError(ValueError):
    """The event log is missing, truncated or malformed."""


@dataclass(frozen=True)
class AlgorithmSpec:
    """One entry of the log's algorithm table: a TCG algorithm id and its digest size."""

    alg_id: int
    digest_size: int

    @property
    def bank(self) -> Bank | None:
        """The matching PCR bank, or None for an algorithm this runtime does not replay."""
        return _bank_for(self.alg_id)


@dataclass(frozen=True)
class SpecIdEvent:
    """The TCG_EfiSpecIDEvent header that opens a crypto-agile log."""

    platform_class: int
    spec_version_minor: int
    spec_version_major: int
    spec_errata: int
    uintn_size: int
    algorithms: tuple[AlgorithmSpec, ...]
    vendor_info: bytes


@dataclass(frozen=True)
class LogEvent:
    """One event of the log: which PCR it extends, with what digests, and its payload."""

    index: int
    offset: int
    pcr: int
    event_type: int
    digests: dict[Bank, bytes]
    data: bytes

    @property
    def type_name(self) -> str:
        """Readable name of the event type, e.g. ``EV_SEPARATOR``."""
        return event_type_name(self.event_type)

    def description(self) -> str:
        """Printable summary of the event payload."""
        return describe_event_data(self.data)


@dataclass(frozen=True)
class ParsedLog:
    """A parsed event log; ``spec_id`` is None for a legacy SHA-1 log."""

    spec_id: SpecIdEvent | None
    algorithms: tuple[AlgorithmSpec, ...]
    events: tuple[LogEvent, ...]

    @property
    def banks(self) -> tuple[Bank, ...]:
        """The banks the log carries digests for, in algorithm-table order."""
        return tuple(spec.bank for spec in self.algorithms if spec.bank is not None)


def event_type_name(event_type: int) -> str:
    """Return the TCG name of an event type, or ``EV_UNKNOWN_0x...`` for others."""
    return _EVENT_TYPE_NAMES.get(event_type, f"EV_UNKNOWN_0x{event_type:08X}")


def describe_event_data(data: bytes, max_hex_bytes: int = 32) -> str:
    """Return the payload as text when it is printable ASCII, else a hex prefix."""
    # Firmware often NUL-terminates strings such as "Calling EFI Application".
    text = data.rstrip(b"\0")
    if text and all(0x20 <= byte < 0x7F or byte in b"\t\r\n" for byte in text):
        return text.decode("ascii")
    if len(data) <= max_hex_bytes:
        return data.hex()
    return f"{data[:max_hex_bytes].hex()}... ({len(data)} bytes)"


def _bank_for(alg_id: int) -> Bank | None:
    try:
        return Bank.from_alg_id(alg_id)
    except ValueError:
        return None


class _Cursor:
    """Bounds-checked little-endian reader that names the event being parsed in errors."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.event_index = 0
        self.event_offset = 0
        # Where trailing zero bytes begin, so padding checks cost O(1) per event.
        self.padding_start = len(data.rstrip(b"\0"))

    def remaining(self) -> int:
        return len(self.data) - self.pos

    def start_event(self, index: int) -> None:
        self.event_index = index
        self.event_offset = self.pos

    def error(self, message: str) -> EventLogError:
        return EventLogError(
            f"event {self.event_index} at byte offset {self.event_offset}: {message}"
        )

    def take(self, size: int, what: str) -> bytes:
        if size > self.remaining():
            raise self.error(
                f"{what} needs {size} bytes at offset {self.pos}, "
                f"but only {self.remaining()} remain (truncated log?)"
            )
        chunk = self.data[self.pos : self.pos + size]
        self.pos += size
        return chunk

    def u8(self, what: str) -> int:
        return self.take(1, what)[0]

    def u16(self, what: str) -> int:
        return int.from_bytes(self.take(2, what), "little")

    def u32(self, what: str) -> int:
        return int.from_bytes(self.take(4, what), "little")

    def sized_payload(self, what: str) -> bytes:
        """Read a u32 length and that many bytes, refusing lengths beyond the input."""
        size = self.u32(f"{what} size")
        if size > self.remaining():
            raise self.error(
                f"{what} size {size} exceeds the {self.remaining()} bytes left in the log"
            )
        return self.take(size, what)

    def at_padding(self) -> bool:
        """True if everything left is zero bytes, as some firmware pads its log buffer."""
        return self.remaining() >= _MIN_PADDING_SIZE and self.pos >= self.padding_start


def _read_legacy_event(cursor: _Cursor, index: int) -> LogEvent:
    """Read one TCG_PCClientPCREvent (SHA-1 only) at the cursor."""
    cursor.start_event(index)
    pcr = cursor.u32("pcrIndex")
    event_type = cursor.u32("eventType")
    digest = cursor.take(_SHA1_SIZE, "SHA-1 digest")
    data = cursor.sized_payload("event data")
    return LogEvent(index, cursor.event_offset, pcr, event_type, {Bank.SHA1: digest}, data)


def _is_spec_id_event(event: LogEvent) -> bool:
    return event.event_type == EV_NO_ACTION and event.data.startswith(SPEC_ID_SIGNATURE)


def _parse_algorithm_table(cursor: _Cursor, count: int) -> tuple[AlgorithmSpec, ...]:
    # Each entry is 4 bytes, so a count larger than the data left is malformed.
    if count == 0 or count * 4 > cursor.remaining():
        raise cursor.error(f"Spec ID event declares an implausible {count} algorithms")
    specs: list[AlgorithmSpec] = []
    for _ in range(count):
        spec = AlgorithmSpec(cursor.u16("algorithmId"), cursor.u16("digestSize"))
        _check_algorithm(cursor, spec, specs)
        specs.append(spec)
    return tuple(specs)


def _check_algorithm(cursor: _Cursor, spec: AlgorithmSpec, seen: list[AlgorithmSpec]) -> None:
    if spec.digest_size == 0:
        raise cursor.error(f"algorithm 0x{spec.alg_id:04x} has a zero digest size")
    if any(other.alg_id == spec.alg_id for other in seen):
        raise cursor.error(f"algorithm 0x{spec.alg_id:04x} is listed twice")
    # A lying size for a known hash would make every later digest misaligned.
    if spec.bank is not None and spec.bank.digest_size != spec.digest_size:
        raise cursor.error(
            f"{spec.bank.hash_name} digest size is {spec.digest_size}, "
            f"must be {spec.bank.digest_size}"
        )


def _parse_spec_id(event: LogEvent) -> SpecIdEvent:
    """Decode the TCG_EfiSpecIDEvent carried in the first event's data."""
    cursor = _Cursor(event.data)
    cursor.event_index, cursor.event_offset = event.index, event.offset
    cursor.take(len(SPEC_ID_SIGNATURE), "Spec ID signature")
    platform_class = cursor.u32("platformClass")
    minor = cursor.u8("specVersionMinor")
    major = cursor.u8("specVersionMajor")
    errata = cursor.u8("specErrata")
    uintn_size = cursor.u8("uintnSize")
    algorithms = _parse_algorithm_table(cursor, cursor.u32("numberOfAlgorithms"))
    vendor_info = cursor.take(cursor.u8("vendorInfoSize"), "vendorInfo")
    # Bytes after vendorInfo are ignored: the event is never extended, and
    # rejecting a harmless quirk would break attestation on that machine.
    return SpecIdEvent(platform_class, minor, major, errata, uintn_size, algorithms, vendor_info)


def _read_digests(cursor: _Cursor, sizes: Mapping[int, int]) -> dict[Bank, bytes]:
    """Read a TPML_DIGEST_VALUES, keeping digests of banks this runtime knows."""
    count = cursor.u32("digest count")
    # Each algorithm may appear once, so more digests than algorithms is malformed.
    if count > len(sizes):
        raise cursor.error(
            f"digest count {count} exceeds the {len(sizes)} algorithms in the Spec ID event"
        )
    digests: dict[Bank, bytes] = {}
    seen: set[int] = set()
    for _ in range(count):
        alg_id = cursor.u16("digest algorithm id")
        if alg_id not in sizes:
            raise cursor.error(f"digest algorithm 0x{alg_id:04x} is not in the Spec ID event")
        if alg_id in seen:
            raise cursor.error(f"digest algorithm 0x{alg_id:04x} appears twice")
        seen.add(alg_id)
        digest = cursor.take(sizes[alg_id], f"digest for algorithm 0x{alg_id:04x}")
        bank = _bank_for(alg_id)
        if bank is not None:
            digests[bank] = digest
    return digests


def _read_agile_event(cursor: _Cursor, index: int, sizes: Mapping[int, int]) -> LogEvent:
    """Read one TCG_PCR_EVENT2 at the cursor; ``sizes`` maps algorithm id to digest size."""
    cursor.start_event(index)
    pcr = cursor.u32("pcrIndex")
    event_type = cursor.u32("eventType")
    digests = _read_digests(cursor, sizes)
    data = cursor.sized_payload("event data")
    return LogEvent(index, cursor.event_offset, pcr, event_type, digests, data)


def _read_events(
    cursor: _Cursor, first: LogEvent, algorithms: tuple[AlgorithmSpec, ...] | None
) -> tuple[LogEvent, ...]:
    """Read events after ``first`` until the end (or the zero padding) of the log."""
    sizes = None if algorithms is None else {a.alg_id: a.digest_size for a in algorithms}
    events = [first]
    while cursor.remaining() > 0:
        index = len(events)
        cursor.start_event(index)
        if cursor.at_padding():
            break
        if sizes is None:
            events.append(_read_legacy_event(cursor, index))
        else:
            events.append(_read_agile_event(cursor, index, sizes))
    return tuple(events)


def parse_eventlog(data: bytes) -> ParsedLog:
    """Parse a binary TCG event log, detecting crypto-agile or legacy SHA-1 layout."""
    cursor = _Cursor(bytes(data))
    cursor.start_event(0)
    if not data:
        raise cursor.error("the event log is empty")
    if cursor.at_padding():
        raise cursor.error("the event log holds only zero bytes, no events")
    first = _read_legacy_event(cursor, 0)
    if _is_spec_id_event(first):
        spec_id = _parse_spec_id(first)
        events = _read_events(cursor, first, spec_id.algorithms)
        return ParsedLog(spec_id, spec_id.algorithms, events)
    events = _read_events(cursor, first, None)
    return ParsedLog(None, (AlgorithmSpec(_SHA1_ALG_ID, _SHA1_SIZE),), events)


def read_eventlog(path: str | os.PathLike[str] = DEFAULT_EVENTLOG_PATH) -> ParsedLog:
    """Read and parse the event log at ``path`` (by default the kernel's securityfs file)."""
    try:
        with open(path, "rb") as stream:
            data = _read_to_eof(stream, path)
    except FileNotFoundError:
        raise EventLogError(
            f"no TPM event log at {os.fspath(path)}: the firmware did not publish one, "
            "there is no TPM, or securityfs is not mounted"
        ) from None
    except OSError as exc:
        raise EventLogError(f"cannot read the TPM event log at {os.fspath(path)}: {exc}") from exc
    return parse_eventlog(data)


def _read_to_eof(stream: BinaryIO, path: str | os.PathLike[str]) -> bytes:
    # securityfs reports st_size 0, so read chunks until EOF instead of trusting stat().
    chunks: list[bytes] = []
    total = 0
    while chunk := stream.read(65536):
        total += len(chunk)
        if total > MAX_LOG_SIZE:
            raise EventLogError(
                f"the TPM event log at {os.fspath(path)} is larger than {MAX_LOG_SIZE} bytes"
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _event_error(event: LogEvent, message: str) -> EventLogError:
    return EventLogError(f"event {event.index} at byte offset {event.offset}: {message}")


def _startup_locality(event: LogEvent) -> int | None:
    """The locality a StartupLocality event announces, or None for other events."""
    if event.pcr != 0 or not event.data.startswith(STARTUP_LOCALITY_SIGNATURE):
        return None
    expected = len(STARTUP_LOCALITY_SIGNATURE) + 1
    if len(event.data) != expected:
        raise _event_error(
            event,
            f"StartupLocality event has {len(event.data)} data bytes, expected {expected}",
        )
    return event.data[-1]


def replayable_banks(log: ParsedLog) -> tuple[Bank, ...]:
    """Banks for which every extending event carries a digest.

    The Spec ID event may list algorithms the firmware never logged (the TPM
    bank is then not extended predictably), so those banks cannot be replayed.
    """
    extending = [event for event in log.events if event.event_type != EV_NO_ACTION]
    return tuple(bank for bank in log.banks if all(bank in event.digests for event in extending))


def _apply_locality(event: LogEvent, values: dict[Bank, dict[int, bytes]]) -> None:
    locality = _startup_locality(event)
    if locality is None:
        return
    # Resetting PCR 0 after something extended it would hide those measurements.
    if any(0 in bank_values for bank_values in values.values()):
        raise _event_error(event, "StartupLocality event comes after PCR 0 was extended")
    for bank, bank_values in values.items():
        # The TPM starts PCR 0 at the startup locality in its last byte.
        bank_values[0] = bytes(bank.digest_size - 1) + bytes([locality])


def _extend_event(event: LogEvent, values: dict[Bank, dict[int, bytes]]) -> None:
    if event.pcr >= PCR_COUNT:
        raise _event_error(event, f"PCR index {event.pcr} is out of range 0-{PCR_COUNT - 1}")
    for bank, bank_values in values.items():
        old = bank_values.get(event.pcr, bank.zero())
        bank_values[event.pcr] = extend(bank, old, event.digests[bank])


def replay(log: ParsedLog) -> dict[Bank, dict[int, bytes]]:
    """Replay the log: {bank: {pcr: value}} for every PCR an event sets or extends.

    Every bank in :func:`replayable_banks` is replayed. Each PCR starts at zero,
    except PCR 0 after a StartupLocality event. Logged digests are used as they
    are (that is what the TPM was extended with), even where they do not match
    the event payload. EV_NO_ACTION events never extend.
    """
    values: dict[Bank, dict[int, bytes]] = {bank: {} for bank in replayable_banks(log)}
    for event in log.events:
        if event.event_type == EV_NO_ACTION:
            _apply_locality(event, values)
        else:
            _extend_event(event, values)
    return values


def find_mismatches(
    log: ParsedLog,
    actual: Mapping[Bank, Mapping[int, bytes]],
    pcrs: Iterable[int] | None = None,
) -> list[PcrMismatch]:
    """Compare the replayed log with actual PCR values (e.g. read from the TPM).

    Banks the log cannot replay, or ``actual`` lacks, are skipped; if that leaves
    no bank at all, EventLogError is raised rather than reporting agreement.
    Without ``pcrs``, the PCRs the log touches are compared; with ``pcrs``, those
    are, and a PCR the log never extends must still hold zeros. Either way a PCR
    missing from ``actual`` is not compared.
    """
    replayed = replay(log)
    common = [bank for bank in replayed if bank in actual]
    if not common:
        raise EventLogError(
            "the event log and the PCR values share no bank, so nothing can be compared"
        )
    wanted = None if pcrs is None else sorted(set(pcrs))
    mismatches: list[PcrMismatch] = []
    for bank in common:
        expected = replayed[bank]
        if wanted is not None:
            expected = {pcr: expected.get(pcr, bank.zero()) for pcr in wanted}
        mismatches.extend(compare(bank, expected, actual[bank]))
    return mismatches
