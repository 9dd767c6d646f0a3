"""The PCR replay report (runtime/measure/replay.py): firmware event log plus
the runtime's own extends, compared with the PCR values the TPM reports."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.measure.replay import replay_report
from runtime.tpm.eventlog import (
    EV_NO_ACTION,
    STARTUP_LOCALITY_SIGNATURE,
    AlgorithmSpec,
    LogEvent,
    ParsedLog,
    parse_eventlog,
    replay,
    replayable_banks,
)
from runtime.tpm.measurement_log import Measurement, MeasurementLog
from runtime.tpm.pcr_math import Bank, extend

EV_SEPARATOR = 0x4
EV_EFI_ACTION = 0x80000007
ACTION = b"Calling EFI Application from Boot Option"
MODULE = b"ext4.ko contents"
PCRS = [0, 4, 5, 7, 8]


def _event(
    index: int,
    pcr: int,
    event_type: int,
    data: bytes,
    banks: tuple[Bank, ...] = (Bank.SHA1, Bank.SHA256),
) -> LogEvent:
    return LogEvent(index, 0, pcr, event_type, {b: b.hash(data) for b in banks}, data)


def small_log() -> ParsedLog:
    """StartupLocality 3, an EFI action in PCR 4 and a separator in PCR 7."""
    return ParsedLog(
        spec_id=None,
        algorithms=(AlgorithmSpec(Bank.SHA1.alg_id, 20), AlgorithmSpec(Bank.SHA256.alg_id, 32)),
        events=(
            LogEvent(0, 0, 0, EV_NO_ACTION, {}, STARTUP_LOCALITY_SIGNATURE + b"\x03"),
            _event(1, 4, EV_EFI_ACTION, ACTION),
            _event(2, 7, EV_SEPARATOR, bytes(4)),
        ),
    )


def own_log() -> MeasurementLog:
    log = MeasurementLog()
    log.record(Measurement(5, {b: b.hash(MODULE) for b in Bank}, "module", "ext4.ko"))
    return log


def expected(bank: Bank) -> dict[int, bytes]:
    """Worked out by hand from the events above, not with the replay under test."""
    zero = bank.zero()
    return {
        0: bytes(bank.digest_size - 1) + b"\x03",
        4: extend(bank, zero, bank.hash(ACTION)),
        5: extend(bank, zero, bank.hash(MODULE)),
        7: extend(bank, zero, bank.hash(bytes(4))),
        8: zero,
    }


def _status(report_rows: tuple[tuple[str, str], ...]) -> dict[str, str]:
    return dict(report_rows)


@pytest.mark.parametrize("bank", [Bank.SHA256, Bank.SHA1])
def test_all_rows_match_when_the_tpm_agrees(bank: Bank) -> None:
    report = replay_report(small_log(), "", own_log(), expected(bank), PCRS, bank)
    assert report.all_match
    assert [name for name, _ in report.rows] == [f"PCR {p}" for p in sorted(PCRS)]
    for name, status in report.rows:
        assert status.startswith("matches the logs"), (name, status)
    assert report.summary.startswith(f"All {len(PCRS)} PCRs match")


def test_the_replay_agrees_with_the_hand_computed_values() -> None:
    firmware = replay(small_log())
    combined = own_log().replay(firmware)
    for bank in (Bank.SHA1, Bank.SHA256):
        want = expected(bank)
        assert {p: combined[bank].get(p, bank.zero()) for p in PCRS} == want


@pytest.mark.parametrize("changed", [4, 5, 7])
def test_a_changed_pcr_is_reported(changed: int) -> None:
    actual = expected(Bank.SHA256)
    actual[changed] = Bank.SHA256.hash(b"something else")
    report = replay_report(small_log(), "", own_log(), actual, PCRS)
    assert not report.all_match
    assert report.summary.startswith(f"PCR {changed} do not match")
    rows = _status(report.rows)
    assert rows[f"PCR {changed}"].startswith("DIFFERS")
    assert actual[changed].hex()[:16] in rows[f"PCR {changed}"]
    assert expected(Bank.SHA256)[changed].hex()[:16] in rows[f"PCR {changed}"]
    for pcr in PCRS:
        if pcr != changed:
            assert rows[f"PCR {pcr}"].startswith("matches"), pcr


def test_several_changed_pcrs_are_all_named() -> None:
    actual = expected(Bank.SHA256)
    actual[7] = actual[4]
    actual[0] = Bank.SHA256.zero()
    report = replay_report(small_log(), "", own_log(), actual, PCRS)
    assert report.summary.startswith("PCR 0, 7 do not match")


def test_own_extend_missing_from_the_tpm_is_reported() -> None:
    """The TPM's PCR 5 was never extended: the runtime's log says it should be."""
    actual = expected(Bank.SHA256)
    actual[5] = Bank.SHA256.zero()
    report = replay_report(small_log(), "", own_log(), actual, PCRS)
    assert _status(report.rows)["PCR 5"].startswith("DIFFERS")


def test_pcrs_not_in_the_log_must_be_zero() -> None:
    actual = expected(Bank.SHA256)
    assert actual[8] == Bank.SHA256.zero()
    actual[8] = Bank.SHA256.hash(b"unlogged")
    report = replay_report(small_log(), "", own_log(), actual, PCRS)
    assert not report.all_match
    assert _status(report.rows)["PCR 8"].startswith("DIFFERS")
    assert "PCR 8" in report.summary


def test_no_log() -> None:
    problem = "no TPM event log at /sys/kernel/security/tpm0/binary_bios_measurements"
    report = replay_report(None, problem, own_log(), expected(Bank.SHA256), PCRS)
    assert report.summary.startswith("No firmware event log")
    assert problem in report.summary
    assert report.rows == ()
    assert not report.all_match


def test_unreadable_log() -> None:
    log = small_log()
    bad = ParsedLog(
        log.spec_id, log.algorithms, (*log.events, _event(3, 30, EV_SEPARATOR, bytes(4)))
    )
    report = replay_report(bad, "", own_log(), expected(Bank.SHA256), PCRS)
    assert report.summary.startswith("The firmware event log is unreadable")
    assert "PCR index 30" in report.summary
    assert not report.all_match


def test_unread_pcr_is_shown() -> None:
    actual = expected(Bank.SHA256)
    del actual[7]
    report = replay_report(small_log(), "", own_log(), actual, PCRS)
    assert _status(report.rows)["PCR 7"] == "not read from the TPM"
    assert not report.all_match and "7" in report.summary


def test_corpus_logs_match_their_own_replay(tpm2_eventlog_bin: Path) -> None:
    log = parse_eventlog(tpm2_eventlog_bin.read_bytes())
    bank = replayable_banks(log)[0]
    own = MeasurementLog()
    own.record(Measurement(5, {bank: bank.hash(MODULE)}, "module", "ext4.ko"))
    values = own.replay(replay(log))[bank]
    pcrs = range(24)
    actual = {p: values.get(p, bank.zero()) for p in pcrs}
    report = replay_report(log, "", own, actual, pcrs, bank)
    assert report.all_match, report.summary
    assert len(report.rows) == 24
    actual[5] = bank.zero()
    report = replay_report(log, "", own, actual, pcrs, bank)
    assert report.summary.startswith("PCR 5 do not match")
