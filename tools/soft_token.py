"""The software HOTP token: the host side of runtime/secrets/hotp/serial_token.py.

It behaves like a Nitrokey's HOTP slot: it holds a secret and its own
counter, accepts a code equal to hotp(secret, c) for counter <= c < counter
+ lookahead, then sets counter = c + 1; it can be programmed (secret and
counter) with its admin PIN (3 tries, then locked). The protocol is in
serial_token.py's docstring. HOTP is computed here with hmac, apart from the
runtime's pyotp path, so each side checks the other.

Its state (secret, counter, PIN, tries left) lives in a JSON file, replaced
atomically (temporary file, fsync, rename, fsync of the folder) after every
change, so a guest reboot or a token restart keeps the counter.

Run the token first (it is the server of a Unix socket and serves one
connection at a time, accepting the next one when QEMU reconnects):

    .venv/bin/python -m tools.soft_token --state build/hotp-token.json \\
        --socket build/hotp-token.sock

and give QEMU (7.2; on QEMU 9.2 and later write reconnect-ms=1000):

    -chardev socket,id=hotp,path=build/hotp-token.sock,server=off,reconnect=1
    -device isa-serial,chardev=hotp,index=1

index=1 makes it the guest's /dev/ttyS1 (I/O 0x2f8, IRQ 3) next to the
console on ttyS0; reconnect=1 lets QEMU start before the token and find it
again after a restart. The guest uses SerialToken("/dev/ttyS1").

--wrong-secret makes the token hold a random secret (the "wrong code is
refused" case); --reset forgets secret and counter (the "not programmed"
case). Unit tests use SoftToken in-process: SoftToken().serve(fd) on one end
of os.openpty() or socket.socketpair().
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import errno
import hashlib
import hmac
import json
import os
import re
import secrets
import select
import signal
import socket
import struct
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from types import FrameType

DEFAULT_ADMIN_PIN = "12345678"  # a Nitrokey's factory admin PIN
PIN_TRIES = 3
LOOKAHEAD = 10
NAME = "software token"
MAX_LINE = 512
_TAG = re.compile(r"[0-9a-z]{1,16}")
_ANSWER_WORDS = frozenset(
    {"TOKEN", "OK", "INVALID", "UNPROGRAMMED", "BADPIN", "LOCKED", "BADFORMAT", "ERROR"}
)


def hotp(secret: bytes, counter: int, digits: int = 6) -> str:
    """RFC 4226: HMAC-SHA1 over the 8-byte big-endian counter, dynamic truncation."""
    mac = hmac.new(secret, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    number = int.from_bytes(mac[offset : offset + 4], "big") & 0x7FFFFFFF
    return str(number % 10**digits).zfill(digits)


def decode_base32(text: str) -> bytes | None:
    """The secret from base32 with or without padding; None if malformed."""
    if not text or not re.fullmatch(r"[A-Z2-7]+=*", text):
        return None
    try:
        return base64.b32decode(text.rstrip("=") + "=" * (-len(text.rstrip("=")) % 8))
    except ValueError:
        return None


@dataclass
class TokenState:
    secret_base32: str = ""  # empty: not programmed
    counter: int = 0
    admin_pin: str = DEFAULT_ADMIN_PIN
    pin_tries: int = PIN_TRIES

    @classmethod
    def from_json(cls, text: str) -> TokenState:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("the state is not a JSON object")
        state = cls(
            str(data.get("secret_base32", "")),
            data.get("counter", 0),
            str(data.get("admin_pin", DEFAULT_ADMIN_PIN)),
            data.get("pin_tries", PIN_TRIES),
        )
        if not isinstance(state.counter, int) or state.counter < 0:
            raise ValueError("counter is not a number of 0 or more")
        if not isinstance(state.pin_tries, int) or not 0 <= state.pin_tries <= PIN_TRIES:
            raise ValueError(f"pin_tries is not a number from 0 to {PIN_TRIES}")
        if state.secret_base32 and decode_base32(state.secret_base32) is None:
            raise ValueError("secret_base32 is not base32")
        return state


def write_atomically(path: str, text: str) -> None:
    """Replace ``path`` so that a crash leaves the old or the new file, whole."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, temporary = tempfile.mkstemp(prefix=".soft-token-", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    directory = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(directory)  # the rename itself must survive a crash
    finally:
        os.close(directory)


class SoftToken:
    """The token's logic and its serving loop; ``state_path`` None keeps the
    state in memory only."""

    def __init__(
        self,
        state_path: str | None = None,
        *,
        name: str = NAME,
        lookahead: int = LOOKAHEAD,
        state: TokenState | None = None,
    ) -> None:
        if lookahead < 1:
            raise ValueError("the look-ahead is at least 1")
        self.state_path = state_path
        self.name = name
        self.lookahead = lookahead
        if state is None and state_path is not None and os.path.exists(state_path):
            with open(state_path, encoding="utf-8") as handle:
                state = TokenState.from_json(handle.read())
        self.state = state or TokenState()
        self.save()

    def save(self) -> None:
        if self.state_path is not None:
            write_atomically(self.state_path, json.dumps(asdict(self.state), indent=1) + "\n")

    def program(self, secret: bytes, counter: int) -> None:
        self.state.secret_base32 = base64.b32encode(secret).decode()
        self.state.counter = counter
        self.save()

    def answer(self, line: str) -> str | None:
        """The answer line for one request line, or None to stay silent."""
        tag, _, rest = line.rstrip("\r").partition(" ")
        command, _, argument = rest.partition(" ")
        if not _TAG.fullmatch(tag) or not command or command in _ANSWER_WORDS:
            return None
        if command == "HELLO":
            return f"{tag} TOKEN {self.lookahead} {self.name}"
        if command == "CHECK":
            return f"{tag} {self._check(argument)}"
        if command == "SET":
            return f"{tag} {self._set(argument)}"
        return f"{tag} ERROR unknown command"

    def _check(self, code: str) -> str:
        secret = decode_base32(self.state.secret_base32)
        if secret is None:
            return "UNPROGRAMMED"
        if not (len(code) == 6 and code.isascii() and code.isdigit()):
            return "INVALID"
        for candidate in range(self.state.counter, self.state.counter + self.lookahead):
            if hmac.compare_digest(hotp(secret, candidate), code):
                self.state.counter = candidate + 1
                self.save()
                return "OK"
        return "INVALID"

    def _set(self, argument: str) -> str:
        secret_text, _, rest = argument.partition(" ")
        counter_text, _, pin = rest.partition(" ")
        secret = decode_base32(secret_text)
        if (
            secret is None
            or not 0 < len(secret) <= 64
            or not counter_text.isdigit()
            or int(counter_text) >= 2**64
            or not pin
        ):
            return "BADFORMAT"  # checked before the PIN: a typo costs no try
        if self.state.pin_tries == 0:
            return "LOCKED"
        if not hmac.compare_digest(pin.encode(), self.state.admin_pin.encode()):
            self.state.pin_tries -= 1
            self.save()
            return f"BADPIN {self.state.pin_tries}" if self.state.pin_tries else "LOCKED"
        self.state.pin_tries = PIN_TRIES
        self.program(secret, int(counter_text))
        return "OK"

    def serve(self, fd: int, stop: threading.Event | None = None) -> None:
        """Answer requests on ``fd`` until the peer hangs up (a socket) or
        ``stop`` is set. On a pty master, a closed slave is waited for."""
        pending = b""
        while stop is None or not stop.is_set():
            if not select.select([fd], [], [], 0.1)[0]:
                continue
            try:
                chunk = os.read(fd, 1024)
            except ConnectionResetError:
                return
            except OSError as err:
                if err.errno != errno.EIO:  # EIO: no pty slave open right now
                    raise
                time.sleep(0.05)
                continue
            if not chunk:
                return
            pending += chunk
            while b"\n" in pending:
                line, _, pending = pending.partition(b"\n")
                reply = self.answer(line.decode("ascii", errors="replace"))
                if reply is not None:
                    try:
                        _write_all(fd, (reply + "\n").encode())
                    except (BrokenPipeError, ConnectionResetError):
                        return
            if len(pending) > MAX_LINE:
                pending = b""

    def serve_unix(self, path: str, stop: threading.Event) -> None:
        """Be the server on Unix socket ``path`` until ``stop`` is set."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
            server.bind(path)
            server.listen(1)
            try:
                while not stop.is_set():
                    if not select.select([server], [], [], 0.2)[0]:
                        continue
                    connection, _ = server.accept()
                    with connection:
                        self.serve(connection.fileno(), stop)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        select.select([], [fd], [], 1.0)
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            continue


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--state", required=True, help="JSON file holding the token's state")
    parser.add_argument("--socket", required=True, help="Unix socket to serve (QEMU connects)")
    parser.add_argument("--name", default=NAME, help="the brand the token gives the guest")
    parser.add_argument("--lookahead", type=int, default=LOOKAHEAD)
    parser.add_argument(
        "--wrong-secret",
        action="store_true",
        help="hold a random secret (codes from the guest are refused)",
    )
    parser.add_argument(
        "--reset",
        action="store_true",
        help="forget secret and counter (the token is not programmed)",
    )
    args = parser.parse_args(argv)
    if args.lookahead < 1:
        parser.error("--lookahead is at least 1")
    try:
        token = SoftToken(args.state, name=args.name, lookahead=args.lookahead)
    except (OSError, ValueError) as err:
        print(f"soft_token: cannot use the state file {args.state}: {err}", file=sys.stderr)
        return 2
    if args.reset:
        token.state.secret_base32, token.state.counter = "", 0
        token.save()
    if args.wrong_secret:
        token.program(secrets.token_bytes(20), token.state.counter)
    stop = threading.Event()

    def _stop(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        token.serve_unix(args.socket, stop)
    except OSError as err:
        print(f"soft_token: cannot serve on {args.socket}: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
