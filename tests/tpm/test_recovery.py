"""Taking the recovery shell is recorded in PCR 4 before the shell starts, so
a secret sealed to the normal boot no longer unseals in that boot."""

from __future__ import annotations

import pytest

from runtime.measure import recovery
from runtime.tpm import sealing
from runtime.tpm.connection import TCTI_ENV, Tpm
from runtime.tpm.errors import PcrsChanged
from runtime.tpm.pcr_math import Bank, extend
from runtime.tpm.pcrs import read_pcrs
from tools.swtpm import Swtpm


def test_recovery_extends_pcr4_and_sealed_secrets_refuse(
    tpm: Tpm, swtpm: Swtpm, monkeypatch: pytest.MonkeyPatch
) -> None:
    sealed = sealing.seal(tpm, b"totp secret", [4])
    before = read_pcrs(tpm, [4])[4]
    monkeypatch.setenv(TCTI_ENV, swtpm.tcti)
    assert recovery.main() == 0  # what /init runs before it opens the shell
    after = read_pcrs(tpm, [4])[4]
    assert after == extend(Bank.SHA256, before, Bank.SHA256.hash(b"recovery"))
    with pytest.raises(PcrsChanged) as refused:
        sealing.unseal(tpm, sealed)
    assert [m.pcr for m in refused.value.mismatches] == [4]


def test_without_a_tpm_recovery_says_so_and_fails(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(TCTI_ENV, "swtpm:path=/nonexistent/tpm.sock")
    assert recovery.main() == 1  # so /init opens no shell
    assert "PCR 4 could not be extended" in capsys.readouterr().err
