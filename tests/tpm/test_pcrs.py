"""PCR read and extend on a real swtpm, with the in-RAM log replaying to the TPM's values."""

from __future__ import annotations

from tpm2_pytss.constants import ESYS_TR
from tpm2_pytss.types import TPML_DIGEST_VALUES, TPMT_HA, TPMU_HA

from runtime.tpm import pcrs
from runtime.tpm.connection import Tpm
from runtime.tpm.pcr_math import Bank, extend, measure_string


def test_read_more_than_eight_pcrs(tpm: Tpm) -> None:
    values = pcrs.read_pcrs(tpm, range(24))
    assert sorted(values) == list(range(24))
    assert values[0] == bytes(32)
    sha1 = pcrs.read_pcrs(tpm, [0, 16], Bank.SHA1)
    assert len(sha1[16]) == 20


def test_extend_string_matches_heads_value(tpm: Tpm) -> None:
    pcrs.extend_string(tpm, 4, "recovery")
    value = pcrs.read_pcrs(tpm, [4])[4]
    assert value.hex().startswith("51737c77") and value.hex().endswith("afd614")
    assert value == extend(Bank.SHA256, bytes(32), measure_string(Bank.SHA256, "recovery"))


def test_every_active_bank_is_extended_and_logged(tpm: Tpm) -> None:
    banks = pcrs.active_banks(tpm)
    assert Bank.SHA256 in banks
    m = pcrs.extend(tpm, 5, b"module bytes", "usbhid.ko", "module")
    assert set(m.digests) == set(banks)
    assert tpm.log.entries[-1] == m
    for bank in banks:
        expected = extend(bank, bank.zero(), bank.hash(b"module bytes"))
        assert pcrs.read_pcrs(tpm, [5], bank)[5] == expected


def test_log_replay_matches_tpm_and_names_an_unlogged_extend(tpm: Tpm) -> None:
    pcrs.extend_string(tpm, 4, "generic")
    pcrs.extend(tpm, 5, b"a", "a")
    pcrs.extend(tpm, 7, b"b", "b")
    pcrs.extend(tpm, 5, b"c", "c")
    actual = pcrs.read_all_banks(tpm, range(24))
    assert tpm.log.check(actual) == []
    # An extend behind the log's back (e.g. another program) is detected and named.
    sneaky = TPML_DIGEST_VALUES(
        [TPMT_HA(hashAlg=Bank.SHA256.alg_id, digest=TPMU_HA(sha256=bytes(32)))]
    )
    tpm.esapi.pcr_extend(ESYS_TR.PCR7, sneaky)
    mismatches = tpm.log.check(pcrs.read_all_banks(tpm, range(24)))
    assert {(m.bank, m.pcr) for m in mismatches} == {(Bank.SHA256, 7)}
