"""The boot path's TPM checks, each with the case that must be refused: the
TOTP secret must be bound to the runtime's PCR and to unchanged PCRs, and a
kernel module is measured before it is offered to the kernel, loaded or not."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from runtime.measure.modules import measure_and_load
from runtime.secrets.totp import totp_code, unseal_totp
from runtime.tpm import handles, nv, sealing
from runtime.tpm.connection import Tpm
from runtime.tpm.pcr_math import Bank, extend
from runtime.tpm.pcrs import extend_string, read_pcrs
from tests.tpm.conftest import OWNER

SECRET = bytes(range(20))
RUNTIME_PCR = 9


def _store(tpm: Tpm, pcrs: list[int]) -> None:
    nv.store_sealed(tpm, sealing.seal(tpm, SECRET, pcrs), handles.TOTP_SEALED_NV, OWNER)


def test_totp_unseals_to_the_code_of_the_sealed_secret(tpm: Tpm) -> None:
    _store(tpm, [0, RUNTIME_PCR])
    result = unseal_totp(tpm, RUNTIME_PCR)
    now = time.time()
    assert result.code in {totp_code(SECRET, now + d) for d in (-30, 0)}


def test_a_secret_not_sealed_to_the_runtime_pcr_is_not_shown(tpm: Tpm) -> None:
    _store(tpm, [0, 7])  # unseals fine, but proves nothing about this runtime
    result = unseal_totp(tpm, RUNTIME_PCR)
    assert result.code is None
    assert f"not sealed to PCR {RUNTIME_PCR}" in result.message


def test_a_changed_runtime_pcr_refuses_and_names_it(tpm: Tpm) -> None:
    _store(tpm, [RUNTIME_PCR])
    extend_string(tpm, RUNTIME_PCR, "another initramfs")
    result = unseal_totp(tpm, RUNTIME_PCR)
    assert result.code is None
    assert f"PCR {RUNTIME_PCR} changed" in result.message


def test_no_secret_yet_is_said_plainly(tpm: Tpm) -> None:
    result = unseal_totp(tpm, RUNTIME_PCR)
    assert result.code is None and "No TOTP secret" in result.message


@pytest.mark.skipif(os.geteuid() != 0, reason="init_module needs root to be even tried")
def test_a_module_is_measured_before_the_kernel_sees_it(tpm: Tpm, tmp_path: Path) -> None:
    # Not a module: the kernel refuses it (ENOEXEC), which is the point: the
    # measurement must already be in PCR 5 whatever the kernel then does.
    bogus = tmp_path / "bogus.ko"
    bogus.write_bytes(b"not an ELF module")
    before = read_pcrs(tpm, [5])[5]
    (result,) = measure_and_load(tpm, 5, [str(bogus)])
    assert not result.loaded and result.problem
    expected = extend(Bank.SHA256, before, Bank.SHA256.hash(bogus.read_bytes()))
    assert read_pcrs(tpm, [5])[5] == expected


def test_an_unreadable_module_is_reported_and_not_measured(tpm: Tpm, tmp_path: Path) -> None:
    before = read_pcrs(tpm, [5])[5]
    (result,) = measure_and_load(tpm, 5, [str(tmp_path / "missing.ko")])
    assert not result.loaded and "cannot read it" in result.problem
    assert read_pcrs(tpm, [5])[5] == before
