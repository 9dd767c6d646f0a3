"""The recovery gate against a real TPM: PCR 4 is extended with "recovery"
before anything else, so a secret sealed to the normal boot no longer
unseals in that boot, and a TPM that cannot be extended means no shell.
`python -m runtime.recovery` is the entry /init runs before every shell.

(The gate's TPM tests live here, not in tests/tpm/test_recovery_gate.py: that
basename is taken by the unit tests and pytest's default import mode needs
unique basenames.)"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest

from runtime.recovery import __main__ as entry
from runtime.recovery.__main__ import Paths
from runtime.recovery.auth import AuthResult
from runtime.recovery.gate import open_recovery
from runtime.secrets.ram import SecretDir
from runtime.tpm import sealing
from runtime.tpm.connection import TCTI_ENV, Tpm
from runtime.tpm.errors import PcrsChanged
from runtime.tpm.pcr_math import Bank, extend
from runtime.tpm.pcrs import read_pcrs
from tests.support.secret_dir import pretend_tmpfs
from tools.swtpm import Swtpm

RECOVERY_FROM_ZERO = hashlib.sha256(bytes(32) + hashlib.sha256(b"recovery").digest()).digest()


@pytest.fixture
def secret_dir(tmp_path: Path) -> Path:
    path = tmp_path / "secret"
    path.mkdir(mode=0o700)
    (path / "tpm_owner_passphrase").write_bytes(b"owner passphrase")
    return path


def test_heads_reference_value() -> None:
    # ../shared/reference/heads-facts.md §2.1: one "recovery" extend from zero gives
    # 51737c77…afd614.
    assert RECOVERY_FROM_ZERO.hex().startswith("51737c77")
    assert RECOVERY_FROM_ZERO.hex().endswith("afd614")


def test_the_gate_extends_pcr4_from_zero(
    tpm: Tpm, swtpm: Swtpm, secret_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert read_pcrs(tpm, [4])[4] == bytes(32)
    monkeypatch.setenv(TCTI_ENV, swtpm.tcti)
    result = open_recovery(
        "test",
        restricted=False,
        extend_pcr4=entry.extend_pcr4,
        lock_platform=entry.lock_platform,
        wipe_secrets=SecretDir(str(secret_dir), pretend_tmpfs).wipe_all,
        owner_key=None,
        authenticate=lambda: AuthResult(False, "not asked"),
    )
    assert result.allowed
    assert read_pcrs(tpm, [4])[4] == RECOVERY_FROM_ZERO
    assert list(secret_dir.iterdir()) == []


def test_a_tpm_that_cannot_be_extended_gives_no_shell(tpm: Tpm, secret_dir: Path) -> None:
    nowhere = "swtpm:path=/nonexistent/sock"
    result = open_recovery(
        "test",
        restricted=False,
        extend_pcr4=lambda: entry.extend_pcr4(nowhere),
        lock_platform=lambda: entry.lock_platform(nowhere),
        wipe_secrets=SecretDir(str(secret_dir), pretend_tmpfs).wipe_all,
        owner_key=None,
        authenticate=lambda: AuthResult(True, "not asked"),
    )
    assert not result.allowed
    assert any("PCR 4 could not be extended" in line for line in result.lines)
    assert read_pcrs(tpm, [4])[4] == bytes(32)  # the real TPM was not touched


def test_a_refused_owner_still_leaves_pcr4_extended_and_ram_wiped(
    tpm: Tpm,
    swtpm: Swtpm,
    secret_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    owner_key = tmp_path / "owner.asc"
    owner_key.write_text("an owner key is installed")
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # nobody answers the challenge
    paths = entry.Paths(
        secret_dir=str(secret_dir),
        owner_key=str(owner_key),
        restricted_flag=str(tmp_path / "absent"),
        tcti=swtpm.tcti,
    )
    assert entry.main(["--reason", "asked from the menu"], paths) == 1
    out = capsys.readouterr().out
    assert "Owner authentication failed: cancelled" in out
    assert read_pcrs(tpm, [4])[4] == RECOVERY_FROM_ZERO
    assert list(secret_dir.iterdir()) == []


def host_paths(tmp_path: Path) -> Paths:
    """No owner key, not restricted, and a secret directory of the test's own
    (the host's /tmp/secret is not this test's to wipe)."""
    return Paths(
        secret_dir=str(tmp_path / "secret"),
        owner_key=str(tmp_path / "owner.asc"),
        restricted_flag=str(tmp_path / "restricted"),
    )


def test_recovery_extends_pcr4_and_sealed_secrets_refuse(
    tpm: Tpm, swtpm: Swtpm, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    sealed = sealing.seal(tpm, b"totp secret", [4])
    before = read_pcrs(tpm, [4])[4]
    monkeypatch.setenv(TCTI_ENV, swtpm.tcti)
    assert entry.main(["--reason", "test"], host_paths(tmp_path)) == 0  # /init's gate
    after = read_pcrs(tpm, [4])[4]
    assert after == extend(Bank.SHA256, before, Bank.SHA256.hash(b"recovery"))
    with pytest.raises(PcrsChanged) as refused:
        sealing.unseal(tpm, sealed)
    assert [m.pcr for m in refused.value.mismatches] == [4]


def test_without_a_tpm_recovery_says_so_and_fails(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv(TCTI_ENV, "swtpm:path=/nonexistent/tpm.sock")
    assert entry.main(["--reason", "test"], host_paths(tmp_path)) == 1  # no shell
    out = capsys.readouterr().out
    assert "Recovery shell requested: test" in out
    assert "PCR 4 could not be extended" in out


def test_a_gate_beside_the_menus_is_said_as_recovery_and_stops_sealing(
    tpm: Tpm, swtpm: Swtpm, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The serial line's gate, in another process, extends PCR 4 while the menus
    run: the runtime then says RECOVERY (not a changed measurement), and
    refuses to seal a new secret or reset the TPM beside that shell."""
    from runtime import bootlog
    from runtime.config import LoadedSettings, Settings
    from runtime.state.device_platform import DevicePlatform

    monkeypatch.setattr(bootlog, "LOG_PATH", str(tmp_path / "runtime.log"))
    platform = DevicePlatform()
    platform.tpm = tpm
    platform.loaded = LoadedSettings(Settings(), [], {})
    platform._pcr4_at_start = read_pcrs(tpm, [4])[4]  # what measure() records
    assert platform._pcr4_moved() == ""
    assert not platform._recovery_since_start()
    monkeypatch.setenv(TCTI_ENV, swtpm.tcti)
    assert entry.main(["--reason", "serial line"], host_paths(tmp_path)) == 0
    assert platform._recovery_since_start()
    assert "recovery shell was opened" in platform._pcr4_moved()
    refused = platform.reset_tpm(bytearray(b"a new owner passphrase"), None)
    assert "Nothing was changed" in refused.problem
    # a PCR 4 moved by anything else is not taken for the recovery shell
    other = DevicePlatform()
    other.tpm = tpm
    other._pcr4_at_start = bytes([1]) * 32  # no "recovery" extend leads from here
    assert not other._recovery_since_start()
