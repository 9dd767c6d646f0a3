"""The software token: the guest side (SerialToken, on a pty as on a serial
port) against the host side (tools.soft_token.SoftToken) in-process, the
token's own HOTP against RFC 4226, its state file, and the host tool."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import termios
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime.secrets.hotp.serial_token import SerialToken
from runtime.secrets.hotp.token import HotpCheck
from runtime.secrets.totp import hotp_code
from tests.conftest import REPO_ROOT, known_answers
from tests.support.soft_token_process import soft_token_command, start_soft_token
from tests.support.token_pty import TokenPty
from tools.soft_token import SoftToken, TokenState, hotp

SECRET = b"12345678901234567890"
B32 = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"


class Wire(TokenPty):
    """The token's pty, with the token at hand; the guest opens the slave's path."""

    def __init__(self, token: SoftToken | None) -> None:
        super().__init__(None if token is None else token.serve)
        self.token = token

    def guest(self, **kwargs: float) -> SerialToken:
        return SerialToken(self.path, **kwargs)


@pytest.fixture
def wire() -> Iterator[Wire]:
    token = SoftToken(state=TokenState(secret_base32=B32, counter=5))
    link = Wire(token)
    yield link
    link.close()


def test_hello_gives_name_and_lookahead(wire: Wire) -> None:
    with wire.guest() as guest:
        assert guest.present()
        assert guest.name == "software token" and guest.lookahead == 10


def test_the_guest_line_is_raw(wire: Wire) -> None:
    with wire.guest() as guest:
        guest.present()
        iflag, oflag, _, lflag, *_ = termios.tcgetattr(wire.slave)
        assert not lflag & (termios.ECHO | termios.ICANON | termios.ISIG)
        assert not iflag & termios.ICRNL and not oflag & termios.OPOST
    # Closing restores what the port had before.
    assert termios.tcgetattr(wire.slave)[3] & termios.ECHO


def test_a_code_is_accepted_once(wire: Wire) -> None:
    assert wire.token is not None
    with wire.guest() as guest:
        assert guest.present()
        code = hotp_code(SECRET, 5)
        assert guest.check(code).result is HotpCheck.SUCCESS
        assert wire.token.state.counter == 6
        assert guest.check(code).result is HotpCheck.INVALID  # used up


def test_the_token_looks_ahead_and_jumps(wire: Wire) -> None:
    assert wire.token is not None
    with wire.guest() as guest:
        assert guest.check(hotp_code(SECRET, 5 + 9)).ok  # the last one it looks at
        assert wire.token.state.counter == 15
        assert guest.check(hotp_code(SECRET, 15 + 10)).result is HotpCheck.INVALID
        assert guest.check(hotp_code(SECRET, 14)).result is HotpCheck.INVALID  # behind
        assert wire.token.state.counter == 15


def test_an_unprogrammed_token_says_so() -> None:
    link = Wire(SoftToken())
    try:
        with link.guest() as guest:
            assert guest.check("123456").result is HotpCheck.NOT_PROGRAMMED
    finally:
        link.close()


def test_programming_needs_the_admin_pin(wire: Wire) -> None:
    assert wire.token is not None
    with wire.guest() as guest:
        status = guest.program(bytearray(b"x" * 20), 40, bytearray(b"wrong"))
        assert status.result is HotpCheck.INVALID and "2 tries left" in status.message
        assert guest.program(bytearray(b"x" * 20), 40, bytearray(b"12345678")).ok
        assert wire.token.state.counter == 40 and wire.token.state.pin_tries == 3
        assert guest.check(hotp_code(b"x" * 20, 40)).ok


def test_the_admin_pin_locks_after_three_wrong_tries(wire: Wire) -> None:
    with wire.guest() as guest:
        results = [guest.program(bytearray(b"y" * 20), 0, bytearray(b"bad")) for _ in range(4)]
        assert [r.result for r in results] == [
            HotpCheck.INVALID,
            HotpCheck.INVALID,
            HotpCheck.ERROR,
            HotpCheck.ERROR,
        ]
        assert "locked" in results[-1].message
        assert not guest.program(bytearray(b"y" * 20), 0, bytearray(b"12345678")).ok


def test_the_guest_refuses_what_it_cannot_send(wire: Wire) -> None:
    with wire.guest() as guest:
        assert guest.check("12345").result is HotpCheck.INVALID
        assert guest.program(bytearray(), 0, bytearray(b"1")).result is HotpCheck.INVALID
        assert guest.program(bytearray(b"k"), 0, bytearray(b"1\n")).result is HotpCheck.INVALID


def test_the_request_buffers_are_wiped(wire: Wire) -> None:
    secret, pin = bytearray(b"z" * 20), bytearray(b"12345678")
    with wire.guest() as guest:
        assert guest.program(secret, 1, pin).ok
    assert secret == bytearray(b"z" * 20) and pin == bytearray(b"12345678")  # the caller's


def test_a_silent_line_is_absent_within_a_second() -> None:
    link = Wire(None)  # nobody serves the pty
    try:
        with link.guest() as guest:
            started = time.monotonic()
            assert not guest.present()
            assert time.monotonic() - started < 1.0
            status = guest.why_absent()
            assert status.result is HotpCheck.ABSENT and "nothing answered" in status.message
    finally:
        link.close()


def test_a_missing_device_is_absent(tmp_path: Path) -> None:
    guest = SerialToken(str(tmp_path / "ttyS9"))
    assert not guest.present()
    assert "cannot be opened" in guest.why_absent().message
    assert guest.check("123456").result is HotpCheck.ABSENT


def test_a_token_that_stops_answering_is_an_error(wire: Wire) -> None:
    with wire.guest(reply_timeout=0.3) as guest:
        assert guest.present()
        wire.stop.set()
        assert wire.thread is not None
        wire.thread.join(5)
        status = guest.check(hotp_code(SECRET, 5))
        assert status.result is HotpCheck.ERROR and "did not answer" in status.message


def test_stale_answers_and_noise_are_skipped() -> None:
    """A host that first sends an old answer, noise and a bare line, then the real one."""
    token = SoftToken(state=TokenState(secret_base32=B32))

    def host(master: int, _stop: threading.Event) -> None:
        request = b""
        while not request.endswith(b"\n"):
            request += os.read(master, 100)
        reply = token.answer(request.decode().strip())
        assert reply is not None
        os.write(master, b"0 OK\n\x00\xff garbage\r\nOK\n" + reply.encode() + b"\r\n")

    with TokenPty(host) as line, SerialToken(line.path) as guest:
        assert guest.check(hotp_code(SECRET, 0)).ok


def test_the_host_never_answers_answers() -> None:
    token = SoftToken(state=TokenState(secret_base32=B32))
    for line in (
        "1 OK",
        "1 INVALID",
        "1 TOKEN 10 x",
        "1 ERROR unknown command",
        "OK",
        "",
        "UPPER HELLO",
        "a b c",
        "x" * 17 + " HELLO",
    ):
        assert token.answer(line) is None or line == "a b c"
    assert token.answer("a b c") == "a ERROR unknown command"
    assert token.answer("7 HELLO\r") == "7 TOKEN 10 software token"


def test_set_checks_the_format_before_the_pin() -> None:
    token = SoftToken()
    for argument in (
        "notbase32! 1 12345678",
        f"{B32} -1 12345678",
        f"{B32} x 12345678",
        f"{B32} 1",
        f"{B32} {2**64} 12345678",
        "",
    ):
        assert token.answer(f"1 SET {argument}") == "1 BADFORMAT"
    assert token.state.pin_tries == 3
    assert token.answer(f"1 SET {B32} 3 12345678") == "1 OK"
    assert token.state.secret_base32 == B32 and token.state.counter == 3


def test_a_pin_may_hold_spaces() -> None:
    token = SoftToken(state=TokenState(admin_pin="my pin 1"))
    assert token.answer(f"1 SET {B32} 0 my pin 1") == "1 OK"


def test_the_tokens_own_hotp_matches_rfc4226() -> None:
    table = known_answers()["rfc4226_hotp"]
    secret = table["secret_ascii"].encode()
    for row in table["rows"]:
        assert hotp(secret, row["counter"]) == row["hotp6"]


def test_the_state_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "token.json"
    token = SoftToken(str(path))
    assert json.loads(path.read_text())["secret_base32"] == ""  # written at once
    token.answer(f"1 SET {B32} 100 12345678")
    token.answer(f"2 CHECK {hotp_code(SECRET, 103)}")
    again = SoftToken(str(path))
    assert again.state.counter == 104 and again.state.secret_base32 == B32
    assert (path.stat().st_mode & 0o777) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["token.json"]  # no temporary left


def test_a_damaged_state_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "token.json"
    for text in (
        "{",
        "[]",
        '{"counter": -1}',
        '{"counter": "1"}',
        '{"pin_tries": 9}',
        '{"secret_base32": "!!"}',
    ):
        path.write_text(text)
        with pytest.raises(ValueError):
            SoftToken(str(path))


def test_serve_returns_when_a_socket_peer_hangs_up() -> None:
    here, there = socket.socketpair()
    token = SoftToken(state=TokenState(secret_base32=B32))
    thread = threading.Thread(target=token.serve, args=(there.fileno(),), daemon=True)
    thread.start()
    here.sendall(b"1 HELLO\n")
    assert here.recv(100) == b"1 TOKEN 10 software token\n"
    here.close()
    thread.join(5)
    assert not thread.is_alive()
    there.close()


def _run_tool(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen[bytes], Path]:
    sock = tmp_path / "t.sock"
    return start_soft_token(tmp_path / "state.json", sock, *extra, timeout=10), sock


def _ask(sock: Path, line: str) -> str:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(5)
        client.connect(str(sock))
        client.sendall(line.encode() + b"\n")
        answer = b""
        while not answer.endswith(b"\n"):
            answer += client.recv(100)
        return answer.decode().strip()


def test_the_host_tool_serves_a_unix_socket_and_keeps_state(tmp_path: Path) -> None:
    tool, sock = _run_tool(tmp_path)
    try:
        assert _ask(sock, "1 HELLO") == "1 TOKEN 10 software token"
        assert _ask(sock, f"2 SET {B32} 0 12345678") == "2 OK"  # a second connection
        assert _ask(sock, f"3 CHECK {hotp_code(SECRET, 0)}") == "3 OK"
    finally:
        tool.send_signal(signal.SIGTERM)
        assert tool.wait(10) == 0
    assert not sock.exists()
    assert json.loads((tmp_path / "state.json").read_text())["counter"] == 1
    tool, sock = _run_tool(tmp_path, "--wrong-secret")
    try:
        assert _ask(sock, f"4 CHECK {hotp_code(SECRET, 1)}") == "4 INVALID"
    finally:
        tool.send_signal(signal.SIGTERM)
        tool.wait(10)
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["counter"] == 1 and state["secret_base32"] != B32
    tool, sock = _run_tool(tmp_path, "--reset")
    try:
        assert _ask(sock, f"5 CHECK {hotp_code(SECRET, 1)}") == "5 UNPROGRAMMED"
    finally:
        tool.send_signal(signal.SIGTERM)
        tool.wait(10)


def test_the_host_tool_refuses_a_bad_state_file(tmp_path: Path) -> None:
    (tmp_path / "state.json").write_text("not json")
    done = subprocess.run(
        soft_token_command(tmp_path / "state.json", tmp_path / "s"),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert "cannot use the state file" in done.stderr and "Traceback" not in done.stderr


def test_an_echoing_token_puts_no_secret_or_pin_in_the_detail() -> None:
    """A token that answers HELLO but echoes SET back: the unexpected answer
    becomes a failure detail (the log, the details view, the console at the
    debug level), so only its first word is kept."""
    import base64
    import select

    def echo(master: int, stop: threading.Event) -> None:
        pending = b""
        while not stop.is_set():
            # never a read on a closed descriptor: its number may be another test's
            if not select.select([master], [], [], 0.05)[0]:
                continue
            try:
                chunk = os.read(master, 1024)
            except OSError:
                return
            if not chunk:
                return
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                words = line.split()
                if len(words) >= 2 and words[1] == b"HELLO":
                    os.write(master, words[0] + b" TOKEN 10 Echo token\n")
                elif words:
                    os.write(master, line + b"\n")

    link = TokenPty(echo)
    token = SerialToken(link.path)
    try:
        assert token.present()
        secret = bytearray(b"\x11" * 20)
        status = token.program(bytearray(secret), 0, bytearray(b"admin-pin-1234"))
        assert status.result is HotpCheck.ERROR
        said = f"{status.message} {status.detail}"
        assert base64.b32encode(bytes(secret)).decode() not in said
        assert "admin-pin-1234" not in said
    finally:
        token.close()
        link.close()
