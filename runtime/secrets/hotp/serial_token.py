"""The guest side of the software HOTP token: a line protocol on a serial port.

In QEMU the token is tools/soft_token.py on the host, wired to the guest's
second serial port (/dev/ttyS1; the exact QEMU arguments are in that file).
Standard library only: this runs in the initramfs.

Protocol: ASCII lines ending in "\\n" (a "\\r" before it is ignored), at most
512 bytes. Each request starts with a tag the guest picks ([0-9a-z], 1 to 16
characters); the answer repeats it, so an answer left over from an earlier,
timed-out request is recognised and dropped.

    <tag> HELLO                         -> <tag> TOKEN <lookahead> <name...>
    <tag> CHECK <6 digits>              -> <tag> OK | INVALID | UNPROGRAMMED
    <tag> SET <base32> <counter> <pin>  -> <tag> OK | BADPIN <tries left> | LOCKED
                                           | BADFORMAT
    <tag> <anything else>               -> <tag> ERROR <words>

The PIN is the rest of the SET line (it may hold spaces, no control
characters). The token ignores untagged lines and lines whose word is an
answer word, so an echo of its own answers can never start a loop.
"""

from __future__ import annotations

import base64
import contextlib
import os
import select
import termios
import time
from typing import Any

from runtime.secrets.hotp.token import HotpCheck, TokenStatus, is_code
from runtime.secrets.ram import wipe_buffer

DEVICE = "/dev/ttyS1"
#: A missing token must be reported quickly: HELLO waits this long.
HELLO_TIMEOUT = 0.5
REPLY_TIMEOUT = 3.0
MAX_LINE = 512
ANSWER_WORDS = frozenset(
    {"TOKEN", "OK", "INVALID", "UNPROGRAMMED", "BADPIN", "LOCKED", "BADFORMAT", "ERROR"}
)


def _raw(attrs: list[Any]) -> list[Any]:
    """termios attributes for a clean 8-bit line: no echo, no line editing,
    no CR/LF translation, no flow control, modem lines ignored, 115200 baud."""
    iflag, oflag, cflag, lflag, _, _, cc = attrs
    iflag &= ~(
        termios.IGNBRK
        | termios.BRKINT
        | termios.PARMRK
        | termios.ISTRIP
        | termios.INLCR
        | termios.IGNCR
        | termios.ICRNL
        | termios.IXON
        | termios.IXOFF
        | termios.IXANY
    )
    oflag &= ~termios.OPOST
    lflag &= ~(termios.ECHO | termios.ECHONL | termios.ICANON | termios.ISIG | termios.IEXTEN)
    cflag &= ~(termios.CSIZE | termios.PARENB | termios.CRTSCTS)
    cflag |= termios.CS8 | termios.CREAD | termios.CLOCAL
    cc = list(cc)
    cc[termios.VMIN] = 0
    cc[termios.VTIME] = 0
    return [iflag, oflag, cflag, lflag, termios.B115200, termios.B115200, cc]


class SerialToken:
    """HotpToken speaking the protocol above on ``device``."""

    def __init__(
        self,
        device: str = DEVICE,
        *,
        hello_timeout: float = HELLO_TIMEOUT,
        reply_timeout: float = REPLY_TIMEOUT,
    ) -> None:
        self.device = device
        self._hello_timeout = hello_timeout
        self._reply_timeout = reply_timeout
        self._fd: int | None = None
        self._saved: list[Any] | None = None
        self._pending = bytearray()
        self._name = "software token"
        self._lookahead = 0
        self._absence = "it was not asked yet"
        # Tags need only differ from stale ones, not be secret: no entropy
        # needed (getrandom may still block this early in the boot).
        self._tag = time.monotonic_ns() & 0xFFFFFFFF

    @property
    def name(self) -> str:
        return self._name

    @property
    def lookahead(self) -> int:
        return self._lookahead

    def __enter__(self) -> SerialToken:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        if self._fd is None:
            return
        if self._saved is not None:
            with contextlib.suppress(termios.error):  # the port may be gone already
                termios.tcsetattr(self._fd, termios.TCSANOW, self._saved)
        os.close(self._fd)
        self._fd = self._saved = None

    def _open(self) -> int:
        if self._fd is None:
            # O_NONBLOCK: a real UART must not wait for a carrier on open.
            fd = os.open(self.device, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC)
            try:
                if os.isatty(fd):
                    self._saved = termios.tcgetattr(fd)
                    termios.tcsetattr(fd, termios.TCSANOW, _raw(list(self._saved)))
            except termios.error:
                os.close(fd)
                raise
            self._fd = fd
        return self._fd

    def _drain(self, fd: int) -> None:
        """Drop whatever arrived before this request."""
        self._pending.clear()
        if os.isatty(fd):
            termios.tcflush(fd, termios.TCIFLUSH)
        while select.select([fd], [], [], 0)[0]:
            try:
                if not os.read(fd, 4096):
                    return
            except BlockingIOError:
                return

    def _write(self, fd: int, data: bytearray, deadline: float) -> bool:
        view = memoryview(data)
        while view:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([], [fd], [], left)[1]:
                return False
            try:
                view = view[os.write(fd, view) :]
            except BlockingIOError:
                continue
        return True

    def _read_answer(self, fd: int, tag: str, deadline: float) -> list[str] | None:
        while True:
            while b"\n" in self._pending:
                line, _, rest = bytes(self._pending).partition(b"\n")
                self._pending[:] = rest
                words = line.rstrip(b"\r").decode("ascii", errors="replace").split(" ")
                if len(words) >= 2 and words[0] == tag:
                    return words[1:]
            if len(self._pending) > MAX_LINE:
                self._pending.clear()  # noise without line ends
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            try:
                chunk = os.read(fd, 1024)
            except BlockingIOError:
                continue
            if not chunk:
                return None  # the other end is gone
            self._pending += chunk

    def _ask(self, request: bytearray, timeout: float) -> list[str] | None:
        """Send one request (wiped afterwards) and wait for its answer's words."""
        self._tag = (self._tag + 1) & 0xFFFFFFFF
        tag = f"{self._tag:x}"
        line = bytearray(tag.encode() + b" ") + request + b"\n"
        try:
            fd = self._open()
            self._drain(fd)
            deadline = time.monotonic() + timeout
            if not self._write(fd, line, deadline):
                return None
            return self._read_answer(fd, tag, deadline)
        finally:
            wipe_buffer(line)
            wipe_buffer(request)

    def present(self) -> bool:
        try:
            words = self._ask(bytearray(b"HELLO"), self._hello_timeout)
        except OSError as err:
            self.close()
            self._absence = f"{self.device} cannot be opened ({err.strerror})"
            return False
        if not words or words[0] != "TOKEN" or len(words) < 3 or not words[1].isdigit():
            self.close()
            self._absence = f"nothing answered on {self.device}"
            return False
        self._lookahead = int(words[1])
        self._name = " ".join(words[2:])[:64] or self._name
        return True

    def why_absent(self) -> TokenStatus:
        return TokenStatus(
            HotpCheck.ABSENT,
            (
                f"No HOTP token answered ({self._absence}), so the firmware was not checked "
                "by one. Connect the token and retry; the HOTP counter was not used."
            ),
        )

    def _no_answer(self, what: str) -> TokenStatus:
        return TokenStatus(
            HotpCheck.ERROR,
            (
                f"The {self._name} did not answer {what} on {self.device}. Check that it is "
                "still connected and retry."
            ),
            "no answer",
        )

    def _reply(self, request: bytearray, what: str) -> list[str] | TokenStatus:
        """The words of the token's answer to ``request`` (``what`` it is, in
        plain words), or the status when the token is gone or does not answer."""
        try:
            words = self._ask(request, self._reply_timeout)
        except OSError as err:
            self.close()
            return TokenStatus(
                HotpCheck.ABSENT,
                (f"The {self._name} is gone: {self.device} cannot be used ({err.strerror})."),
            )
        if words is None:
            return self._no_answer(what)
        return words

    def _unexpected(self, words: list[str]) -> TokenStatus:
        return TokenStatus(
            HotpCheck.ERROR,
            f"The {self._name} gave an unexpected answer.",
            f"first word {words[0][:32]!r}",
        )  # the rest may echo a secret

    def check(self, code: str) -> TokenStatus:
        if not is_code(code):
            return TokenStatus(
                HotpCheck.INVALID,
                ("The HOTP code to check is not six digits; it was not sent to the token."),
            )
        words = self._reply(bytearray(b"CHECK " + code.encode()), "the code check")
        if isinstance(words, TokenStatus):
            return words
        answer = words[0]
        if answer == "OK":
            return TokenStatus(HotpCheck.SUCCESS, f"The {self._name} accepted the HOTP code.")
        if answer == "INVALID":
            return TokenStatus(HotpCheck.INVALID, f"The {self._name} refused the HOTP code.")
        if answer == "UNPROGRAMMED":
            return TokenStatus(
                HotpCheck.NOT_PROGRAMMED,
                (
                    f"The {self._name} has no HOTP secret yet, so it cannot check this firmware. "
                    "Generate a new TOTP/HOTP secret to program it."
                ),
            )
        return self._unexpected(words)

    def program(self, secret: bytearray, counter: int, admin_pin: bytearray) -> TokenStatus:
        if not secret or counter < 0:
            return TokenStatus(
                HotpCheck.INVALID, ("Programming needs a secret and a counter of 0 or more.")
            )
        if not admin_pin:
            return TokenStatus(
                HotpCheck.INVALID, "The admin PIN is empty. Try again.", wrong_pin=True
            )
        if any(byte < 0x20 or byte == 0x7F for byte in admin_pin):
            return TokenStatus(
                HotpCheck.INVALID,
                ("The admin PIN contains control characters; it cannot be sent. Try again."),
                wrong_pin=True,
            )
        request = bytearray(b"SET ")
        request += base64.b32encode(bytes(secret))
        request += b" %d " % counter
        request += admin_pin
        words = self._reply(request, "the programming request")
        if isinstance(words, TokenStatus):
            return words
        answer = words[0]
        if answer == "OK":
            return TokenStatus(
                HotpCheck.SUCCESS, f"The {self._name} was programmed with the new HOTP secret."
            )
        if answer == "BADPIN":
            left = words[1] if len(words) > 1 and words[1].isdigit() else "?"
            return TokenStatus(
                HotpCheck.INVALID,
                (
                    f"The {self._name} refused the admin PIN ({left} tries left before it "
                    "locks). Check the PIN and try again."
                ),
                wrong_pin=True,
            )
        if answer == "LOCKED":
            return TokenStatus(
                HotpCheck.ERROR,
                (
                    f"The {self._name}'s admin PIN is locked after too many wrong tries; the "
                    "token must be reset before it can be programmed."
                ),
            )
        if answer == "BADFORMAT":
            return TokenStatus(
                HotpCheck.INVALID, f"The {self._name} refused the secret or counter as malformed."
            )
        return self._unexpected(words)
