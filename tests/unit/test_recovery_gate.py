"""The recovery gate's ordering: restricted refuses before touching anything;
PCR 4 is extended before the wipe, the wipe before the authentication; any
failure closes the gate. Also the console front end (python -m runtime.recovery)."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest

from runtime.recovery import __main__ as entry
from runtime.recovery.auth import AuthResult, Failure
from runtime.recovery.gate import EXIT_HINT, PCR_NOTE, GateResult, open_recovery


class Recorder:
    """Fakes for the gate's three guards, recording the order they run in."""

    def __init__(self, *, extend_error: Exception | None = None,
                 wipe_error: Exception | None = None,
                 auth: AuthResult | Exception | None = None) -> None:
        self.calls: list[str] = []
        self._extend_error = extend_error
        self._wipe_error = wipe_error
        self._auth = auth if auth is not None else AuthResult(True, "signed by the owner's key X.")

    def extend(self) -> None:
        self.calls.append("extend")
        if self._extend_error:
            raise self._extend_error

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

    def gate(self, *, restricted: bool = False,
             owner_key: str | None = "/etc/runtime/owner.asc") -> GateResult:
        return open_recovery("the runtime stopped", restricted=restricted,
                             extend_pcr4=self.extend, wipe_secrets=self.wipe,
                             owner_key=owner_key, authenticate=self.authenticate)


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
    assert fakes.calls == ["extend", "wipe"]
    assert PCR_NOTE in result.lines
    assert "could not be wiped (busy)" in text(result)


def test_failed_authentication_comes_after_extend_and_wipe() -> None:
    refused = AuthResult(False, "3 answers were refused; the last: not a signature: ...",
                         Failure.NOT_SIGNATURE)
    fakes = Recorder(auth=refused)
    result = fakes.gate()
    assert not result.allowed
    assert fakes.calls == ["extend", "wipe", "auth"]
    # The user learns the TPM is already locked for this boot, and why no shell.
    assert PCR_NOTE in result.lines
    assert f"Owner authentication failed: {refused.reason}" in result.lines
    assert EXIT_HINT not in result.lines


def test_an_authentication_that_crashes_gives_no_shell() -> None:
    fakes = Recorder(auth=RuntimeError("gpg vanished"))
    result = fakes.gate()
    assert not result.allowed
    assert fakes.calls == ["extend", "wipe", "auth"]
    assert "gpg vanished" in text(result)


def test_the_owner_passes_in_order_and_is_told_how_to_leave() -> None:
    fakes = Recorder()
    result = fakes.gate()
    assert result.allowed
    assert fakes.calls == ["extend", "wipe", "auth"]
    assert result.lines[1:] == (
        PCR_NOTE, "4 secret file(s) were wiped from RAM.",
        "Owner authenticated: signed by the owner's key X.", EXIT_HINT)


def test_without_an_owner_key_no_authentication_is_asked() -> None:
    fakes = Recorder(auth=AssertionError("must not be called"))
    result = fakes.gate(owner_key=None)
    assert result.allowed
    assert fakes.calls == ["extend", "wipe"]
    assert "No owner key is installed" in text(result)


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
    assert entry.restricted_mode(str(tmp_path / "none"), {},
                                 lambda: loaded.settings.restricted_boot)
    assert not entry.restricted_mode(str(tmp_path / "none"), {}, lambda: False)


def lines_of(text: str) -> Callable[[], str]:
    return io.StringIO(text).readline


def test_read_signature_stops_at_the_end_line(capsys: pytest.CaptureFixture[str]) -> None:
    pasted = ("-----BEGIN PGP SIGNATURE-----\n\nAAAA\n=abcd\n"
              "-----END PGP SIGNATURE-----\nnot read\n")
    got = entry.read_signature("sign this", lines_of(pasted))
    assert got == pasted.removesuffix("not read\n")
    assert "sign this" in capsys.readouterr().out


def test_read_signature_cancels_on_an_empty_line_or_end_of_input() -> None:
    assert entry.read_signature("p", lines_of("\nsomething\n")) is None
    assert entry.read_signature("p", lines_of("")) is None
    assert entry.read_signature("p", lines_of("-----BEGIN PGP SIGNATURE-----\n")) is None


def test_main_in_restricted_mode_refuses_with_status_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flag = tmp_path / "restricted"
    flag.touch()
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "pin").write_bytes(b"1234")
    paths = entry.Paths(secret_dir=str(secret), owner_key=str(tmp_path / "none.asc"),
                        restricted_flag=str(flag), tcti="swtpm:path=/nonexistent")
    assert entry.main(["--reason", "asked from the menu"], paths) == 1
    out = capsys.readouterr().out
    assert "Recovery shell requested: asked from the menu" in out
    assert "Restricted boot is on" in out
    assert (secret / "pin").exists()  # restricted: nothing touched, just restart


def test_main_with_a_bad_option_exits_without_a_traceback(
    capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        entry.main(["--unknown"], entry.Paths())
    assert stopped.value.code == 2  # non-zero: /init opens no shell
    assert "Traceback" not in capsys.readouterr().err
