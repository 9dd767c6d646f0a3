"""The host demo and the TPM benchmark still run end to end (figures are not judged)."""

from __future__ import annotations

import shutil

import pytest

from tools import bench_tpm, host_demo


def test_host_demo_tells_the_story(capsys: pytest.CaptureFixture[str]) -> None:
    assert host_demo.main([]) == 0
    out = capsys.readouterr().out
    assert "Unsealed again: identical" in out
    assert "Unseal refused" in out and "recovery shell" in out
    assert "replays to the TPM's PCRs: yes." in out


@pytest.mark.skipif(shutil.which("tpm2") is None, reason="tpm2-tools not installed")
def test_benchmark_runs(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_tpm.main(["--runs", "1"]) == 0
    out = capsys.readouterr().out
    assert "tpm2-tools" in out and "cold" in out
