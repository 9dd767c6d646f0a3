"""The runtime's measurement log survives its own restart in one power-on (as
after a recovery shell): a second connection replays the first one's extends,
and the TPM's PCRs are explained by them."""

from __future__ import annotations

from pathlib import Path

from runtime.tpm.connection import Tpm
from runtime.tpm.log_journal import MAX_ENTRIES, decode, encode, load
from runtime.tpm.pcr_math import Bank
from runtime.tpm.pcrs import extend_string, read_all_banks
from tools.swtpm import Swtpm


def test_a_restarted_runtime_replays_every_extend_of_this_power_on(
    swtpm: Swtpm, bare_tpm: Tpm, tmp_path: Path
) -> None:
    journal = str(tmp_path / "run" / "measurements.jsonl")
    start = read_all_banks(bare_tpm, [4, 5])
    first = Tpm.connect(swtpm.tcti, journal=journal)
    try:
        extend_string(first, 5, "module a", "module")
        extend_string(first, 5, "module b", "module")
    finally:
        first.close()
    gate = Tpm.connect(swtpm.tcti, journal=journal)  # the recovery gate's own process
    try:
        extend_string(gate, 4, "recovery", "recovery-shell")
    finally:
        gate.close()
    again = Tpm.connect(swtpm.tcti, journal=journal)
    try:
        assert [m.event_type for m in again.log.entries] == ["module", "module", "recovery-shell"]
        actual = read_all_banks(again, [4, 5])
        assert again.log.check(actual, start) == []
    finally:
        again.close()


def test_a_damaged_or_huge_journal_is_read_as_far_as_it_goes(tmp_path: Path) -> None:
    from runtime.tpm.measurement_log import Measurement

    m = Measurement(4, {Bank.SHA256: bytes(32)}, "recovery-shell", "recovery")
    assert decode(encode(m)) == m
    path = tmp_path / "j"
    path.write_text(encode(m) + "\n{not json\n" + encode(m)[:20] + "\n" + encode(m) + "\n")
    assert len(load(str(path)).entries) == 2
    path.write_text((encode(m) + "\n") * (MAX_ENTRIES + 5))
    assert len(load(str(path)).entries) == MAX_ENTRIES
    assert load(str(tmp_path / "none")).entries == []
