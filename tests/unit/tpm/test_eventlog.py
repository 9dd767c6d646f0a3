"""Tests for runtime.tpm.eventlog: parsing and replaying TCG firmware event logs.

Expected PCR values come from tpm2-tools' fixtures (the ``pcrs:`` map that
``tpm2 eventlog`` prints after replaying each log), read from the shared corpora.
"""

from __future__ import annotations

import itertools
import os
import random
import re
import struct
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime.tpm.eventlog import (
    EV_NO_ACTION,
    SPEC_ID_SIGNATURE,
    STARTUP_LOCALITY_SIGNATURE,
    AlgorithmSpec,
    EventLogError,
    ParsedLog,
    describe_event_data,
    event_type_name,
    find_mismatches,
    parse_eventlog,
    read_eventlog,
    replay,
    replayable_banks,
)
from runtime.tpm.pcr_math import Bank, PcrMismatch, extend

EXPECTED_SUBDIRS = ("event-pretty", "event-pretty-39", "event-raw")
EV_POST_CODE = 0x1
EV_SEPARATOR = 0x4
EV_EFI_ACTION = 0x80000007
SM3_256 = 0x0012  # a real TPM algorithm the Bank enum does not know

# --- helpers ------------------------------------------------------------------


def expected_yamls(log_path: Path) -> list[Path]:
    """Every tpm2-tools YAML that records the expected replay of ``log_path``."""
    candidates = [log_path.parent / sub / f"{log_path.name}.yaml" for sub in EXPECTED_SUBDIRS]
    candidates.append(log_path.parent / f"{log_path.name}.yaml")
    return [path for path in candidates if path.is_file()]


def parse_expected_pcrs(yaml_text: str) -> dict[Bank, dict[int, bytes]]:
    """Read the trailing ``pcrs:`` map ({bank: {pcr: value}}) with a tiny line parser."""
    _, sep, block = yaml_text.partition("\npcrs:")
    assert sep, "YAML has no pcrs: block"
    pcrs: dict[Bank, dict[int, bytes]] = {}
    current: dict[int, bytes] | None = None
    for line in block.splitlines():
        if bank := re.fullmatch(r"  (\w+):\s*", line):
            current = pcrs.setdefault(Bank.from_name(bank[1]), {})
        elif value := re.fullmatch(r"    (\d+)\s*:\s*0x([0-9a-fA-F]+)\s*", line):
            assert current is not None, f"PCR value before any bank: {line!r}"
            current[int(value[1])] = bytes.fromhex(value[2])
        elif line.strip():
            raise AssertionError(f"unexpected line in pcrs: block: {line!r}")
    return pcrs


def expected_event_count(yaml_text: str) -> int:
    """Events in a tpm2-tools YAML: last EventNum + 1, else top-level PCRIndex lines."""
    numbers = [int(n) for n in re.findall(r"^- EventNum: (\d+)$", yaml_text, re.MULTILINE)]
    if numbers:
        return max(numbers) + 1
    # The legacy SHA-1 output has no EventNum; each event starts with PCRIndex.
    return len(re.findall(r"^  PCRIndex: \d+$", yaml_text, re.MULTILINE))


def spec_id_event(algorithms: list[tuple[int, int]], vendor_info: bytes = b"") -> bytes:
    """A legacy-format EV_NO_ACTION event carrying a Spec ID Event03 header."""
    body = SPEC_ID_SIGNATURE + struct.pack("<IBBBBI", 0, 0, 2, 0, 2, len(algorithms))
    body += b"".join(struct.pack("<HH", alg_id, size) for alg_id, size in algorithms)
    body += bytes([len(vendor_info)]) + vendor_info
    return legacy_event(0, EV_NO_ACTION, bytes(20), body)


def legacy_event(pcr: int, event_type: int, digest: bytes, data: bytes) -> bytes:
    """A TCG 1.2 TCG_PCClientPCREvent."""
    return struct.pack("<II", pcr, event_type) + digest + struct.pack("<I", len(data)) + data


def agile_event(pcr: int, event_type: int, digests: list[tuple[int, bytes]], data: bytes) -> bytes:
    """A crypto-agile TCG_PCR_EVENT2."""
    out = struct.pack("<III", pcr, event_type, len(digests))
    out += b"".join(struct.pack("<H", alg_id) + digest for alg_id, digest in digests)
    return out + struct.pack("<I", len(data)) + data


def both_digests(data: bytes) -> list[tuple[int, bytes]]:
    return [(bank.alg_id, bank.hash(data)) for bank in (Bank.SHA1, Bank.SHA256)]


SHA1_SHA256 = [(Bank.SHA1.alg_id, 20), (Bank.SHA256.alg_id, 32)]


def small_agile_log() -> bytes:
    """Spec ID (sha1, sha256), one EV_EFI_ACTION in PCR 4 and one separator in PCR 7."""
    action = b"Calling EFI Application from Boot Option"
    return (
        spec_id_event(SHA1_SHA256)
        + agile_event(4, EV_EFI_ACTION, both_digests(action), action)
        + agile_event(7, EV_SEPARATOR, both_digests(bytes(4)), bytes(4))
    )


def assert_only_eventlog_error(data: bytes) -> None:
    """Parsing and replaying ``data`` either works or raises EventLogError, nothing else."""
    try:
        log = parse_eventlog(data)
        replay(log)
    except EventLogError:
        pass


# --- fixtures -------------------------------------------------------------------


@pytest.fixture(scope="session")
def corpus_logs(tpm2_fixtures: Path) -> list[bytes]:
    """The bytes of every well-formed event log in the corpus."""
    return [path.read_bytes() for path in sorted(tpm2_fixtures.glob("event*.bin"))]


# --- the corpus: replay reproduces tpm2-tools' expected PCR values ----------------------


def test_corpus_has_event_logs(tpm2_fixtures: Path) -> None:
    assert sorted(tpm2_fixtures.glob("event-*.bin")), "no event-*.bin in the tpm2-tools corpus"


def test_replay_matches_expected_pcrs(tpm2_eventlog_bin: Path) -> None:
    log = parse_eventlog(tpm2_eventlog_bin.read_bytes())
    replayed = replay(log)
    yamls = expected_yamls(tpm2_eventlog_bin)
    assert yamls, f"no expected YAML for {tpm2_eventlog_bin.name}"
    for yaml_path in yamls:
        expected = parse_expected_pcrs(yaml_path.read_text())
        assert expected, f"{yaml_path} lists no PCRs"
        # Same banks and PCRs, not just the listed ones: nothing extra, nothing missing.
        assert replayed == expected, f"replay differs from {yaml_path}"


def test_event_count_matches_yaml(tpm2_eventlog_bin: Path) -> None:
    log = parse_eventlog(tpm2_eventlog_bin.read_bytes())
    for yaml_path in expected_yamls(tpm2_eventlog_bin):
        assert len(log.events) == expected_event_count(yaml_path.read_text()), yaml_path
    assert [event.index for event in log.events] == list(range(len(log.events)))


def test_replayed_values_agree_with_themselves(tpm2_eventlog_bin: Path) -> None:
    log = parse_eventlog(tpm2_eventlog_bin.read_bytes())
    assert find_mismatches(log, replay(log)) == []


def test_hex_dump_agrees_event_by_event(tpm2_fixtures: Path) -> None:
    """A second, independent dump (event-moklisttrusted-hex.yaml) lists every event's fields."""
    dumps = sorted(tpm2_fixtures.glob("*-hex.yaml"))
    assert dumps, "no *-hex.yaml dump in the corpus"
    for dump in dumps:
        log = parse_eventlog((tpm2_fixtures / dump.name.replace("-hex.yaml", ".bin")).read_bytes())
        records = re.split(r"^- ", dump.read_text(), flags=re.MULTILINE)[1:]
        assert len(records) == len(log.events)
        for record, event in zip(records, log.events, strict=True):
            assert f"pcr: {event.pcr}\n" in record
            assert f"event_type: {event.type_name}\n" in record
            data = re.search(r"event_data: '?([0-9a-f]*)'?$", record, re.MULTILINE)
            assert data is not None and bytes.fromhex(data[1]) == event.data
            listed = re.findall(r"hashAlg: (\w+)\n\s+digest: '?([0-9a-f]+)'?", record)
            digests = {Bank.from_name(name): bytes.fromhex(value) for name, value in listed}
            assert digests == event.digests, f"event {event.index} of {dump.name}"


def test_logged_digest_is_replayed_even_when_payload_differs(tpm2_fixtures: Path) -> None:
    """The .warn files name events whose digest is not the payload hash; replay trusts the log."""
    warnings = sorted(tpm2_fixtures.glob("*.bin.warn"))
    assert warnings
    for warn in warnings:
        log = parse_eventlog((tpm2_fixtures / warn.name.removesuffix(".warn")).read_bytes())
        for number in re.findall(r"Event (\d+)'s digest does not match", warn.read_text()):
            event = log.events[int(number)]
            assert all(bank.hash(event.data) != d for bank, d in event.digests.items())


def test_legacy_sha1_log_is_detected(tpm2_fixtures: Path) -> None:
    log = parse_eventlog((tpm2_fixtures / "event-uefi-sha1-log.bin").read_bytes())
    assert log.spec_id is None
    assert log.algorithms == (AlgorithmSpec(Bank.SHA1.alg_id, 20),)
    assert log.banks == (Bank.SHA1,)
    assert log.events[0].type_name == "EV_S_CRTM_VERSION"


def test_crypto_agile_log_header(tpm2_fixtures: Path) -> None:
    log = parse_eventlog((tpm2_fixtures / "event.bin").read_bytes())
    assert log.spec_id is not None
    assert (log.spec_id.spec_version_major, log.spec_id.uintn_size) == (2, 2)
    assert log.banks == (Bank.SHA1, Bank.SHA256, Bank.SHA384, Bank.SHA512)
    assert log.events[0].type_name == "EV_NO_ACTION"
    assert log.events[1].type_name == "EV_EFI_PLATFORM_FIRMWARE_BLOB"


def test_banks_without_digests_are_not_replayed(tpm2_fixtures: Path) -> None:
    """event-uefiaction.bin lists four algorithms but logs only sha1 and sha256 digests."""
    log = parse_eventlog((tpm2_fixtures / "event-uefiaction.bin").read_bytes())
    assert len(log.banks) == 4
    assert replayable_banks(log) == (Bank.SHA1, Bank.SHA256)
    assert log.events[1].description() == "Calling EFI Application from Boot Option"


def test_specid_vendordata_fixture_is_rejected(tpm2_fixtures: Path) -> None:
    """Its eventSize (37) leaves out the 4 vendorInfo bytes (tpm2-tools issue #2190)."""
    data = (tpm2_fixtures / "specid-vendordata.bin").read_bytes()
    with pytest.raises(EventLogError, match=r"event 0 at byte offset 0: vendorInfo"):
        parse_eventlog(data)
    # With eventSize covering vendorInfo, as the spec requires, it parses.
    fixed = data[:28] + struct.pack("<I", len(data) - 32) + data[32:]
    log = parse_eventlog(fixed)
    assert log.spec_id is not None and log.spec_id.vendor_info == bytes.fromhex("deadbeef")
    assert log.banks == (Bank.SHA1, Bank.SHA256)
    assert replay(log) == {Bank.SHA1: {}, Bank.SHA256: {}}


# --- known answers and synthetic logs ----------------------------------------------


def test_known_answer_sha256_separator_extend() -> None:
    value = extend(Bank.SHA256, Bank.SHA256.zero(), Bank.SHA256.hash(bytes(4)))
    assert value.hex() == "3d458cfe55cc03ea1f443f1562beec8df51c75e14a9fcf9a7234a13f198e7969"


def test_small_synthetic_log_replays() -> None:
    log = parse_eventlog(small_agile_log())
    values = replay(log)
    assert values[Bank.SHA256][7].hex() == (
        "3d458cfe55cc03ea1f443f1562beec8df51c75e14a9fcf9a7234a13f198e7969"
    )
    assert sorted(values[Bank.SHA1]) == [4, 7]


def test_unknown_algorithm_is_skipped_but_parsed() -> None:
    table = [(SM3_256, 32), (Bank.SHA256.alg_id, 32)]
    data = b"separator"
    digests = [(SM3_256, b"\x55" * 32), (Bank.SHA256.alg_id, Bank.SHA256.hash(data))]
    log = parse_eventlog(spec_id_event(table) + agile_event(2, EV_SEPARATOR, digests, data) * 2)
    assert log.algorithms[0] == AlgorithmSpec(SM3_256, 32) and log.algorithms[0].bank is None
    assert [set(event.digests) for event in log.events[1:]] == [{Bank.SHA256}] * 2
    once = extend(Bank.SHA256, Bank.SHA256.zero(), Bank.SHA256.hash(data))
    assert replay(log) == {Bank.SHA256: {2: extend(Bank.SHA256, once, Bank.SHA256.hash(data))}}


def test_startup_locality_sets_pcr0_start() -> None:
    # Firmware logs all-zero digests for EV_NO_ACTION events.
    zeros = [(alg_id, bytes(size)) for alg_id, size in SHA1_SHA256]
    locality = agile_event(0, EV_NO_ACTION, zeros, STARTUP_LOCALITY_SIGNATURE + b"\x03")
    crtm = b"crtm version"
    log = parse_eventlog(
        spec_id_event(SHA1_SHA256) + locality + agile_event(0, 8, both_digests(crtm), crtm)
    )
    values = replay(log)
    for bank in (Bank.SHA1, Bank.SHA256):
        start = bytes(bank.digest_size - 1) + b"\x03"
        assert values[bank][0] == extend(bank, start, bank.hash(crtm))
    # Only the locality: PCR 0 holds the reset value for that locality.
    only = parse_eventlog(spec_id_event(SHA1_SHA256) + locality)
    assert replay(only)[Bank.SHA256] == {0: bytes(31) + b"\x03"}


def test_startup_locality_after_pcr0_extend_is_rejected() -> None:
    locality = agile_event(0, EV_NO_ACTION, [], STARTUP_LOCALITY_SIGNATURE + b"\x03")
    crtm = b"crtm version"
    log = parse_eventlog(
        spec_id_event(SHA1_SHA256) + agile_event(0, 8, both_digests(crtm), crtm) + locality
    )
    with pytest.raises(EventLogError, match="event 2 at byte offset"):
        replay(log)


def test_trailing_zero_padding_is_ignored(tpm2_fixtures: Path) -> None:
    for name in ("event-sd-boot-fedora37.bin", "event-uefi-sha1-log.bin"):
        data = (tpm2_fixtures / name).read_bytes()
        padded = parse_eventlog(data + bytes(4096))
        assert padded.events == parse_eventlog(data).events
        # Junk after zeros is not padding: it is a malformed event.
        with pytest.raises(EventLogError):
            parse_eventlog(data + bytes(64) + b"\x01")


def test_no_action_events_are_not_extended() -> None:
    note = agile_event(5, EV_NO_ACTION, both_digests(b"x"), b"x")
    log = parse_eventlog(spec_id_event(SHA1_SHA256) + note)
    assert replay(log) == {Bank.SHA1: {}, Bank.SHA256: {}}


# --- comparing with actual PCR values ---------------------------------------------------


def test_find_mismatches_reports_the_differing_pcr() -> None:
    log = parse_eventlog(small_agile_log())
    actual = {bank: dict(values) for bank, values in replay(log).items()}
    assert find_mismatches(log, actual) == []
    actual[Bank.SHA256][4] = b"\x11" * 32
    mismatches = find_mismatches(log, actual)
    assert mismatches == [PcrMismatch(Bank.SHA256, 4, replay(log)[Bank.SHA256][4], b"\x11" * 32)]


def test_find_mismatches_with_pcrs_expects_untouched_pcrs_at_zero() -> None:
    log = parse_eventlog(small_agile_log())
    actual = {Bank.SHA256: {**replay(log)[Bank.SHA256], 0: bytes(32), 8: b"\x22" * 32}}
    assert find_mismatches(log, actual) == []
    mismatches = find_mismatches(log, actual, pcrs=range(9))
    assert [(m.bank, m.pcr, m.expected) for m in mismatches] == [(Bank.SHA256, 8, bytes(32))]


def test_find_mismatches_without_a_common_bank_is_an_error() -> None:
    log = parse_eventlog(small_agile_log())
    with pytest.raises(EventLogError, match="share no bank"):
        find_mismatches(log, {Bank.SHA384: {0: bytes(48)}})


# --- names and descriptions ----------------------------------------------------------


@pytest.mark.parametrize(
    ("event_type", "name"),
    [
        (0x0, "EV_PREBOOT_CERT"),
        (0x3, "EV_NO_ACTION"),
        (0xD, "EV_IPL"),
        (0x12, "EV_OMIT_BOOT_DEVICE_EVENTS"),
        (0x80000000, "EV_EFI_EVENT_BASE"),
        (0x80000003, "EV_EFI_BOOT_SERVICES_APPLICATION"),
        (0x8000000C, "EV_EFI_VARIABLE_BOOT2"),
        (0x80000010, "EV_EFI_HCRTM_EVENT"),
        (0x800000E0, "EV_EFI_VARIABLE_AUTHORITY"),
        (0x800000E2, "EV_EFI_SPDM_FIRMWARE_CONFIG"),
        (0x1234, "EV_UNKNOWN_0x00001234"),
    ],
)
def test_event_type_name(event_type: int, name: str) -> None:
    assert event_type_name(event_type) == name


def test_describe_event_data() -> None:
    assert describe_event_data(b"Exit Boot Services Invocation") == "Exit Boot Services Invocation"
    assert describe_event_data(b"grub_cmd: linux\0") == "grub_cmd: linux"
    assert describe_event_data(bytes(4)) == "00000000"
    assert describe_event_data(b"") == ""
    long = describe_event_data(bytes(range(100)))
    assert long.startswith(bytes(range(32)).hex()) and long.endswith("(100 bytes)")


# --- reading from a file ---------------------------------------------------------------


def test_read_eventlog_from_file(tmp_path: Path) -> None:
    path = tmp_path / "binary_bios_measurements"
    path.write_bytes(small_agile_log())
    assert len(read_eventlog(path).events) == 3


def test_read_eventlog_ignores_reported_size(tmp_path: Path) -> None:
    """A FIFO reports size 0, like securityfs: the reader must read until EOF."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    payload = small_agile_log() + bytes(100_000)
    writer = threading.Thread(target=fifo.write_bytes, args=(payload,), daemon=True)
    writer.start()
    log = read_eventlog(fifo)
    writer.join(timeout=10)
    assert len(log.events) == 3


def test_read_eventlog_missing_file(tmp_path: Path) -> None:
    with pytest.raises(EventLogError, match="no TPM event log at"):
        read_eventlog(tmp_path / "absent")


def test_read_eventlog_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(EventLogError, match="cannot read"):
        read_eventlog(tmp_path)


# --- malformed input -----------------------------------------------------------------


@pytest.mark.parametrize("data", [b"", bytes(1), bytes(64)], ids=["empty", "one-zero", "zeros"])
def test_empty_or_zero_input_is_an_error(data: bytes) -> None:
    with pytest.raises(EventLogError, match="event 0 at byte offset 0"):
        parse_eventlog(data)


@pytest.mark.parametrize("name", ["event-sd-boot-fedora37.bin", "event-uefi-sha1-log.bin"])
def test_every_truncation_inside_an_event_is_an_error(tpm2_fixtures: Path, name: str) -> None:
    data = (tpm2_fixtures / name).read_bytes()
    log = parse_eventlog(data)
    starts = [event.offset for event in log.events] + [len(data)]
    for number, (start, end) in enumerate(itertools.pairwise(starts)):
        for cut in range(start + 1, end):
            with pytest.raises(EventLogError) as caught:
                parse_eventlog(data[:cut])
            assert f"event {number} at byte offset {start}:" in str(caught.value), cut
        # Cutting exactly between events leaves a shorter, valid log.
        if number:
            assert len(parse_eventlog(data[:start]).events) == number


def test_random_bytes_are_rejected() -> None:
    rng = random.Random(1234)
    for size in (1, 7, 31, 32, 33, 100, 4096):
        with pytest.raises(EventLogError):
            parse_eventlog(bytes([1]) + rng.randbytes(size))


@pytest.mark.parametrize("agile", [True, False], ids=["crypto-agile", "legacy"])
def test_huge_event_size_is_an_error(agile: bool) -> None:
    if agile:
        event = agile_event(4, EV_POST_CODE, both_digests(b"abc"), b"abc")
        data = spec_id_event(SHA1_SHA256)
    else:
        event = legacy_event(4, EV_POST_CODE, Bank.SHA1.hash(b"abc"), b"abc")
        data = legacy_event(0, EV_POST_CODE, Bank.SHA1.hash(b"abc"), b"abc")
    offset = len(data)
    huge = event[:-7] + struct.pack("<I", 0xFFFFFFFF) + event[-3:]
    with pytest.raises(EventLogError, match=rf"event 1 at byte offset {offset}: .*4294967295"):
        parse_eventlog(data + huge)


def test_huge_digest_count_is_an_error() -> None:
    data = spec_id_event(SHA1_SHA256) + struct.pack("<III", 4, EV_POST_CODE, 0xFFFFFFFF)
    with pytest.raises(EventLogError, match="digest count 4294967295"):
        parse_eventlog(data + bytes(64))


def test_huge_algorithm_count_is_an_error() -> None:
    header = spec_id_event(SHA1_SHA256)
    count_at = 32 + len(SPEC_ID_SIGNATURE) + 8
    data = header[:count_at] + struct.pack("<I", 0x40000000) + header[count_at + 4 :]
    with pytest.raises(EventLogError, match=r"event 0 at byte offset 0: .*algorithms"):
        parse_eventlog(data)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ([(Bank.SHA256.alg_id, 20)], "sha256 digest size is 20"),
        ([(Bank.SHA1.alg_id, 20), (Bank.SHA1.alg_id, 20)], "listed twice"),
        ([(SM3_256, 0)], "zero digest size"),
        ([], "implausible 0 algorithms"),
    ],
)
def test_bad_algorithm_table_is_an_error(table: list[tuple[int, int]], message: str) -> None:
    with pytest.raises(EventLogError, match=message):
        parse_eventlog(spec_id_event(table))


def test_digest_for_unlisted_algorithm_is_an_error() -> None:
    event = agile_event(4, EV_POST_CODE, [(Bank.SHA384.alg_id, bytes(48))], b"")
    with pytest.raises(EventLogError, match="0x000c is not in the Spec ID event"):
        parse_eventlog(spec_id_event(SHA1_SHA256) + event)


def test_duplicate_digest_is_an_error() -> None:
    event = agile_event(4, EV_POST_CODE, [(Bank.SHA1.alg_id, bytes(20))] * 2, b"")
    with pytest.raises(EventLogError, match="appears twice"):
        parse_eventlog(spec_id_event(SHA1_SHA256) + event)


def test_pcr_index_out_of_range_is_an_error_on_replay() -> None:
    log = parse_eventlog(spec_id_event(SHA1_SHA256) + agile_event(24, 1, both_digests(b""), b""))
    with pytest.raises(EventLogError, match="PCR index 24"):
        replay(log)


# --- property tests: untrusted input never escapes as anything but EventLogError --------


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512))
def test_arbitrary_bytes_only_raise_eventlog_error(data: bytes) -> None:
    assert_only_eventlog_error(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=256))
def test_arbitrary_bytes_after_a_spec_id_header(data: bytes) -> None:
    """Start from a valid header so the fuzzer reaches the crypto-agile event parser."""
    assert_only_eventlog_error(spec_id_event([*SHA1_SHA256, (SM3_256, 32)]) + data)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.data())
def test_mutated_corpus_logs_only_raise_eventlog_error(
    corpus_logs: list[bytes], data: st.DataObject
) -> None:
    log = bytearray(data.draw(st.sampled_from(corpus_logs), label="log"))
    for _ in range(data.draw(st.integers(1, 8), label="mutations")):
        position = data.draw(st.integers(0, len(log) - 1), label="position")
        log[position] = data.draw(st.integers(0, 255), label="byte")
    cut = data.draw(st.integers(0, len(log)), label="cut")
    assert_only_eventlog_error(bytes(log[:cut]))


def test_parsed_log_is_immutable() -> None:
    log = parse_eventlog(small_agile_log())
    assert isinstance(log, ParsedLog)
    with pytest.raises(AttributeError):
        log.events[0].pcr = 5  # type: ignore[misc]
