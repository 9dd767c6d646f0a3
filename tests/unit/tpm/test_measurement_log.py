"""The in-RAM measurement log replays to the values a TPM would hold."""

from __future__ import annotations

from runtime.tpm.measurement_log import Measurement, MeasurementLog, replay
from runtime.tpm.pcr_math import Bank, extend


def _m(pcr: int, text: str) -> Measurement:
    return Measurement(
        pcr, {b: b.hash(text.encode()) for b in (Bank.SHA1, Bank.SHA256)}, "runtime", text
    )


def test_replay_from_zero_and_from_start_values() -> None:
    log = MeasurementLog()
    log.record(_m(4, "recovery"))
    log.record(_m(5, "module"))
    values = log.replay()
    assert values[Bank.SHA256][4] == extend(Bank.SHA256, bytes(32), Bank.SHA256.hash(b"recovery"))
    firmware = {Bank.SHA256: {4: b"\x11" * 32}}
    on_top = log.replay(firmware)
    assert on_top[Bank.SHA256][4] == extend(
        Bank.SHA256, b"\x11" * 32, Bank.SHA256.hash(b"recovery")
    )
    assert firmware[Bank.SHA256][4] == b"\x11" * 32  # the input is not modified


def test_check_names_the_disagreeing_pcr() -> None:
    log = MeasurementLog()
    log.record(_m(4, "generic"))
    log.record(_m(7, "config"))
    actual = {bank: dict(v) for bank, v in log.replay().items()}
    assert log.check(actual) == []
    actual[Bank.SHA256][7] = bytes(32)
    mismatches = log.check(actual)
    assert [(m.bank, m.pcr) for m in mismatches] == [(Bank.SHA256, 7)]
    # PCRs the log never touched are not judged.
    actual[Bank.SHA256][7] = log.replay()[Bank.SHA256][7]
    actual[Bank.SHA256][0] = b"\x01" * 32
    assert log.check(actual) == []


def test_for_pcr_and_module_replay() -> None:
    entries = [_m(4, "a"), _m(5, "b"), _m(4, "c")]
    log = MeasurementLog(list(entries))
    assert [m.description for m in log.for_pcr(4)] == ["a", "c"]
    assert replay(entries) == log.replay()
