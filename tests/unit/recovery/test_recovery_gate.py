"""The recovery gate's ordering: restricted refuses before touching anything;
PCR 4 is extended first, then the platform hierarchy locked, then the wipe,
the wipe before the authentication; any failure closes the gate. Also the
console front end (python -m runtime.recovery)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from runtime import bootlog
from runtime.recovery import __main__ as entry
from runtime.recovery.auth import AuthResult, Failure
from runtime.recovery.gate import EXIT_HINT, PCR_NOTE, GateResult, open_recovery
from runtime.tpm.errors import PlatformNotLocked


class Recorder:
    """Fakes for the gate's four guards, recording the order they run in."""

    def __init__(
        self,
        *,
        extend_error: Exception | None = None,
        lock_error: Exception | None = None,
        wipe_error: Exception | None = None,
        auth: AuthResult | Exception | None = None,
    ) -> None:
        self.calls: list[str] = []
        self._extend_error = extend_error
        self._lock_error = lock_error
        self._wipe_error = wipe_error
        self._auth = auth if auth is not None else AuthResult(True, "signed by the owner's key X.")

    def extend(self) -> None:
        self.calls.append("extend")
        if self._extend_error:
            raise self._extend_error

    def lock(self) -> str:
        self.calls.append("lock")
        if self._lock_error:
            raise self._lock_error
        return "locked"

    def wipe(self) -> int:
        self.calls.append("wipe")
        if self._wipe_error:
            raise self._wipe_error
        return 4

    def authenticate(self) -> AuthResult:
        self.calls.append("auth")
        if isinstance(self._auth, Exception):
            raise self._auth
        return self._auth

    def gate(
        self,
        *,
        restricted: bool = False,
        owner_key: str | None = "/etc/runtime/owner.asc",
        key_required: bool = False,
    ) -> GateResult:
        return open_recovery(
            "the runtime stopped",
            restricted=restricted,
            extend_pcr4=self.extend,
            lock_platform=self.lock,
            wipe_secrets=self.wipe,
            owner_key=owner_key,
            authenticate=self.authenticate,
            key_required=key_required,
        )


def text(result: GateResult) -> str:
    return "\n".join(result.lines)


def test_restricted_refuses_without_touching_anything() -> None:
    fakes = Recorder()
    result = fakes.gate(restricted=True)
    assert not result.allowed
    assert fakes.calls == []
    assert "Restricted boot is on" in text(result)
    assert "Restart the machine" in text(result)
    assert "the runtime stopped" in text(result)


def test_a_failed_extend_gives_no_shell_and_nothing_else_runs() -> None:
    fakes = Recorder(extend_error=OSError("the TPM does not answer"))
    result = fakes.gate()
    assert not result.allowed
    assert fakes.calls == ["extend"]
    assert "PCR 4 could not be extended" in text(result)
    assert "the TPM does not answer" in text(result)
    assert "No shell is opened" in text(result)


def test_a_failed_wipe_gives_no_shell_after_the_extend() -> None:
    fakes = Recorder(wipe_error=OSError("busy"))
    result = fakes.gate()
    assert not result.allowed
    assert fakes.calls == ["extend", "lock", "wipe"]
    assert PCR_NOTE in result.lines
    assert "could not be wiped (busy)" in text(result)


def test_a_platform_that_cannot_be_locked_gives_no_shell_and_no_wipe_or_auth() -> None:
    fakes = Recorder(lock_error=PlatformNotLocked("Locking failed: TPM error (0x918)"))
    result = fakes.gate()
    assert not result.allowed
    assert fakes.calls == ["extend", "lock"]
    assert PCR_NOTE in result.lines
    assert "platform authority could not be locked" in text(result)
    assert PlatformNotLocked.summary in text(result)  # plain words, not the code
    assert "0x918" not in text(result)
    assert "No shell is opened" in text(result)


def test_a_lock_that_crashes_says_what_happened() -> None:
    result = Recorder(lock_error=OSError("no such device")).gate()
    assert not result.allowed
    assert "platform authority could not be locked (no such device)" in text(result)


def test_failed_authentication_comes_after_extend_and_wipe() -> None:
    refused = AuthResult(
        False, "3 answers were refused; the last: not a signature: ...", Failure.NOT_SIGNATURE
    )
    fakes = Recorder(auth=refused)
    result = fakes.gate()
    assert not result.allowed
    assert fakes.calls == ["extend", "lock", "wipe", "auth"]
    # The user learns the TPM is already locked for this boot, and why no shell.
    assert PCR_NOTE in result.lines
    assert f"Owner authentication failed: {refused.reason}" in result.lines
    assert EXIT_HINT not in result.lines


def test_an_authentication_that_crashes_gives_no_shell() -> None:
    fakes = Recorder(auth=RuntimeError("gpg vanished"))
    result = fakes.gate()
    assert not result.allowed
    assert fakes.calls == ["extend", "lock", "wipe", "auth"]
    assert "gpg vanished" in text(result)


def test_the_owner_passes_in_order_and_is_told_how_to_leave() -> None:
    fakes = Recorder()
    result = fakes.gate()
    assert result.allowed
    assert fakes.calls == ["extend", "lock", "wipe", "auth"]
    assert result.lines[1:] == (
        PCR_NOTE,
        "4 secret file(s) were wiped from RAM.",
        "Owner authenticated: signed by the owner's key X.",
        EXIT_HINT,
    )


def test_without_an_owner_key_no_authentication_is_asked() -> None:
    fakes = Recorder(auth=AssertionError("must not be called"))
    result = fakes.gate(owner_key=None)
    assert result.allowed
    assert fakes.calls == ["extend", "lock", "wipe"]
    assert "No owner key is installed" in text(result)


def test_a_required_key_that_is_missing_refuses_without_touching_anything() -> None:
    """CONFIG_HAVE_GPG_KEY_BACKUP=y and no owner key: nobody can authenticate."""
    fakes = Recorder(auth=AssertionError("must not be called"))
    result = fakes.gate(owner_key=None, key_required=True)
    assert not result.allowed and fakes.calls == []
    assert "CONFIG_HAVE_GPG_KEY_BACKUP=y" in text(result)


def test_a_required_key_that_is_there_is_asked_as_always() -> None:
    fakes = Recorder()
    assert fakes.gate(key_required=True).allowed
    assert fakes.calls == ["extend", "lock", "wipe", "auth"]


def test_main_reads_config_have_gpg_key_backup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from runtime.config import Layer, load_settings

    user = tmp_path / "config.user"
    user.write_text('export CONFIG_HAVE_GPG_KEY_BACKUP="y"\n')
    loaded = load_settings([Layer("your settings", str(user))])
    monkeypatch.setattr("runtime.config.load_settings", lambda *_: loaded)
    monkeypatch.setattr(entry, "extend_pcr4", lambda _tcti=None: pytest.fail("extended"))
    monkeypatch.setattr(bootlog, "LOG_PATH", str(tmp_path / "runtime.log"))
    paths = entry.Paths(
        secret_dir=str(tmp_path),
        owner_key=str(tmp_path / "none.asc"),
        restricted_flag=str(tmp_path / "absent"),
    )
    assert entry.main(["--reason", "asked"], paths) == 1
    assert "holds no owner key" in " ".join(capsys.readouterr().out.split())


# -- the console front end ------------------------------------------------------


def test_restricted_mode_sources(tmp_path: Path) -> None:
    flag = tmp_path / "restricted"
    assert not entry.restricted_mode(str(flag), {})
    assert entry.restricted_mode(str(flag), {entry.RESTRICTED_ENV: "y"})
    assert not entry.restricted_mode(str(flag), {entry.RESTRICTED_ENV: "n"})
    flag.touch()
    assert entry.restricted_mode(str(flag), {entry.RESTRICTED_ENV: "n"})  # only adds


def test_restricted_mode_follows_config_restricted_boot(tmp_path: Path) -> None:
    from runtime.config import Layer, load_settings

    user = tmp_path / "config.user"
    user.write_text('export CONFIG_RESTRICTED_BOOT="y"\n')
    loaded = load_settings([Layer("your settings", str(user))])
    assert entry.restricted_mode(
        str(tmp_path / "none"), {}, lambda: loaded.settings.restricted_boot
    )
    assert not entry.restricted_mode(str(tmp_path / "none"), {}, lambda: False)


def test_main_in_restricted_mode_refuses_with_status_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flag = tmp_path / "restricted"
    flag.touch()
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "pin").write_bytes(b"1234")
    paths = entry.Paths(
        secret_dir=str(secret),
        owner_key=str(tmp_path / "none.asc"),
        restricted_flag=str(flag),
        tcti="swtpm:path=/nonexistent",
    )
    assert entry.main(["--reason", "asked from the menu"], paths) == 1
    out = capsys.readouterr().out
    assert "Recovery shell requested: asked from the menu" in out
    assert "Restricted boot is on" in out
    assert (secret / "pin").exists()  # restricted: nothing touched, just restart


def test_main_with_a_bad_option_exits_without_a_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as stopped:
        entry.main(["--unknown"], entry.Paths())
    assert stopped.value.code == 2  # non-zero: /init opens no shell
    assert "Traceback" not in capsys.readouterr().err


def test_main_asks_the_owner_and_a_way_out_ends_in_no_shell(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    extended: list[str] = []
    monkeypatch.setattr(entry, "extend_pcr4", lambda _tcti=None: extended.append("pcr4"))
    monkeypatch.setattr(entry, "lock_platform", lambda _tcti=None: extended.append("lock"))
    log = tmp_path / "runtime.log"
    monkeypatch.setattr(bootlog, "LOG_PATH", str(log))
    monkeypatch.setenv("COLUMNS", "60")
    owner_key = tmp_path / "owner.asc"
    owner_key.write_text("an owner key is installed")
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "pin").write_bytes(b"1234")
    # Enter on the empty paste prompt, then Enter again to leave.
    monkeypatch.setattr("sys.stdin", io.StringIO("\n\n"))
    paths = entry.Paths(
        secret_dir=str(secret), owner_key=str(owner_key), restricted_flag=str(tmp_path / "absent")
    )
    assert entry.main(["--reason", "chosen in the menu"], paths) == 1
    captured = capsys.readouterr()
    out = captured.out
    assert extended == ["pcr4", "lock"]
    assert list(secret.iterdir()) == []
    assert "Not accepted: nothing was pasted." in out
    assert "Enter or Ctrl-D: leave without a shell" in out
    assert "Owner authentication failed: cancelled" in " ".join(out.split())
    assert all(len(line) < 60 for line in out.splitlines())  # the gate's lines too
    assert "Traceback" not in out + captured.err
    # The log has a line per answer; the console has none of them.
    assert "detail recovery: challenge=1 try=1 refused" in log.read_text()
    assert "challenge=1" not in out


def test_the_gate_lines_fit_80_columns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # wider consoles get the 80-column layout
    flag = tmp_path / "restricted"
    flag.touch()
    paths = entry.Paths(
        secret_dir=str(tmp_path / "secret"),
        owner_key=str(tmp_path / "x"),
        restricted_flag=str(flag),
    )
    assert entry.main(["--reason", "r pressed at power-on"], paths) == 1
    out = capsys.readouterr().out
    assert all(len(line) < 80 for line in out.splitlines())
    assert "Restricted boot is on, so the recovery shell is disabled." in " ".join(out.split())
