"""A recording TPM transport, and a scanner for what crossed it (issue 27).

``RecordingTcti`` is a TCTI written in Python (tpm2-pytss's ``PyTCTI``) that
forwards every command to an inner TCTI (the real swtpm one, loaded by
``TCTILdr``) and keeps each command and its response byte for byte: what a
probe on the LPC/SPI bus between the CPU and a discrete TPM would see.

    tcti = RecordingTcti("swtpm:path=/tmp/x/tpm.sock")
    tpm = Tpm(ESAPI(tcti), TctiSpec.parse("swtpm:path=/tmp/x/tpm.sock"))
    ...
    hits = scan(tcti.exchanges, wire_forms("owner", b"owner passphrase"))

``scan`` finds values (in their usual encodings: ``wire_forms``) anywhere in
the recorded commands and responses and says where, with the bytes around
them; ``session_starts`` decodes the TPM2_StartAuthSession commands, to see
whether a session's parameter encryption is keyed by a salt a probe cannot
read (an unsalted, unbound session's key follows from the nonces on the bus).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import struct
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tpm2_pytss.constants import TPM2_CC
from tpm2_pytss.TCTI import PollData, PyTCTI
from tpm2_pytss.TCTILdr import TCTILdr

if TYPE_CHECKING:
    from runtime.tpm.connection import Tpm

#: tag, size, command or response code: every TPM command and response starts so.
HEADER = struct.Struct(">HII")
TPM_ST_SESSIONS = 0x8002
TPM_RH_NULL = 0x40000007
TPM_RS_PW = 0x40000009
TPM_ALG_NULL = 0x0010
CC_START_AUTH_SESSION = 0x00000176
#: A TPM response is at most 4096 bytes (TPM_PT_MAX_RESPONSE_SIZE of swtpm and
#: of the discrete TPMs this runtime meets).
MAX_RESPONSE = 4096
#: Shorter values turn up by chance in kilobytes of binary traffic.
MIN_NEEDLE = 8
COMMAND, RESPONSE = "command", "response"


@dataclass(frozen=True)
class Exchange:
    """One command and the response the TPM gave to it."""

    command: bytes
    response: bytes

    @property
    def code(self) -> int:
        return int(HEADER.unpack_from(self.command)[2])

    @property
    def name(self) -> str:
        try:
            return f"TPM2_{TPM2_CC(self.code)}"
        except ValueError:
            return f"TPM2_CC 0x{self.code:08x}"

    @property
    def response_code(self) -> int:
        return int(HEADER.unpack_from(self.response)[2])

    def part(self, direction: str) -> bytes:
        return self.command if direction == COMMAND else self.response


class RecordingTcti(PyTCTI):  # type: ignore[misc]
    """A TCTI that passes everything to ``spec``'s TCTI and records it.

    ESAPI sends one command and then reads its response, so each response
    is paired with the command sent last. Close with ``close()`` after the
    ESAPI context that uses it (ESAPI does not finalize a TCTI it was given).
    """

    def __init__(self, spec: str) -> None:
        self.inner = TCTILdr.parse(spec)
        self.exchanges: list[Exchange] = []
        self._pending: bytes | None = None
        super().__init__(max_size=MAX_RESPONSE, magic=b"RECTCTI\x00")

    def do_transmit(self, command: bytes) -> None:
        if self._pending is not None:
            raise RuntimeError("a second command was sent before the first one's response")
        self._pending = bytes(command)
        self.inner.transmit(command)

    def do_receive(self, timeout: int) -> bytes:
        response = bytes(self.inner.receive(MAX_RESPONSE, timeout))
        if self._pending is None:
            raise RuntimeError("a response was read with no command outstanding")
        self.exchanges.append(Exchange(self._pending, response))
        self._pending = None
        return response

    def do_cancel(self) -> None:
        self.inner.cancel()

    def do_get_poll_handles(self) -> tuple[PollData, ...]:
        return tuple(self.inner.get_poll_handles())

    def do_set_locality(self, locality: int) -> None:
        self.inner.set_locality(locality)

    def close(self) -> None:
        self.inner.close()

    def mark(self) -> int:
        """The number of exchanges so far: ``exchanges[mark:]`` are those after it."""
        return len(self.exchanges)


# -- the values and their encodings ------------------------------------------------


def wire_forms(name: str, value: bytes | bytearray, *, digests: bool = False) -> dict[str, bytes]:
    """``value`` as it could cross the bus in clear, labelled ``name (form)``:
    raw, UTF-16 (both byte orders, what UEFI variables hold), hex, base32 (the
    enrolment screen's; padded, unpadded, lower case) and base64; with
    ``digests``, also its SHA-1 and SHA-256 (an unsalted hash of a passphrase
    is as good as the passphrase to a dictionary search)."""
    raw = bytes(value)
    if len(raw) < MIN_NEEDLE:
        raise ValueError(
            f"{name}: {len(raw)} bytes are too few to search for without "
            f"false alarms; use at least {MIN_NEEDLE}"
        )
    b32 = base64.b32encode(raw)
    forms = {
        "raw": raw,
        "UTF-16LE": b"".join(bytes((b, 0)) for b in raw),
        "UTF-16BE": b"".join(bytes((0, b)) for b in raw),
        "hex": raw.hex().encode(),
        "HEX": raw.hex().upper().encode(),
        "base32": b32,
        "base32 unpadded": b32.rstrip(b"="),
        "base32 lower case": b32.rstrip(b"=").lower(),
        "base64": base64.b64encode(raw).rstrip(b"="),
    }
    if digests:
        forms["SHA-1"] = hashlib.sha1(raw).digest()  # noqa: S324 -- searched for, not used
        forms["SHA-256"] = hashlib.sha256(raw).digest()
    unique: dict[str, bytes] = {}
    for form, data in forms.items():
        if data not in unique.values():
            unique[f"{name} ({form})"] = data
    return unique


# -- the scanner -------------------------------------------------------------------


@dataclass(frozen=True)
class Hit:
    """A value found on the bus: where, and the bytes around it."""

    label: str
    index: int  # which exchange
    command: str  # its command's name
    direction: str  # COMMAND or RESPONSE
    offset: int
    context: str  # hex, the value in [brackets]

    def __str__(self) -> str:
        return (
            f"{self.label} in the {self.direction} of exchange #{self.index} "
            f"({self.command}) at byte {self.offset}: {self.context}"
        )


def _context(data: bytes, offset: int, length: int, around: int = 12) -> str:
    before = data[max(0, offset - around) : offset].hex()
    found = data[offset : offset + length].hex()
    after = data[offset + length : offset + length + around].hex()
    return f"{before}[{found}]{after}"


def scan(
    exchanges: Iterable[Exchange],
    needles: Mapping[str, bytes],
    directions: Iterable[str] = (COMMAND, RESPONSE),
    first: int = 0,
) -> list[Hit]:
    """Every place where one of ``needles`` appears; ``first`` numbers the
    first exchange (when scanning ``exchanges[mark:]``)."""
    wanted = tuple(directions)
    hits = []
    for index, exchange in enumerate(exchanges, first):
        for direction in wanted:
            data = exchange.part(direction)
            for label, needle in needles.items():
                if len(needle) < MIN_NEEDLE:
                    raise ValueError(f"{label}: too short to search for")
                offset = data.find(needle)
                while offset >= 0:
                    hits.append(
                        Hit(
                            label,
                            index,
                            exchange.name,
                            direction,
                            offset,
                            _context(data, offset, len(needle)),
                        )
                    )
                    offset = data.find(needle, offset + 1)
    return hits


def report(hits: Iterable[Hit], limit: int = 20) -> str:
    lines = [str(hit) for hit in hits]
    more = f"\n... and {len(lines) - limit} more" if len(lines) > limit else ""
    return "\n".join(lines[:limit]) + more


# -- sessions ----------------------------------------------------------------------


@dataclass(frozen=True)
class SessionStart:
    """What a TPM2_StartAuthSession command asked for (TPM 2.0 Part 3, 11.1)."""

    index: int
    tpm_key: int  # the key that decrypts the salt; TPM_RH_NULL: no salt
    bind: int  # TPM_RH_NULL: unbound
    salt_size: int  # the encrypted salt's size
    session_type: int  # TPM2_SE
    symmetric: int  # the parameter-encryption algorithm; TPM_ALG_NULL: none

    @property
    def salted(self) -> bool:
        return self.tpm_key != TPM_RH_NULL and self.salt_size > 0


def session_starts(exchanges: Iterable[Exchange]) -> list[SessionStart]:
    """The StartAuthSession commands among ``exchanges``, decoded."""
    starts = []
    for index, exchange in enumerate(exchanges):
        if exchange.code != CC_START_AUTH_SESSION:
            continue
        data = exchange.command
        tag = HEADER.unpack_from(data)[0]
        tpm_key, bind = struct.unpack_from(">II", data, HEADER.size)
        offset = HEADER.size + 8
        if tag == TPM_ST_SESSIONS:  # an audit session: skip the authorization area
            (size,) = struct.unpack_from(">I", data, offset)
            offset += 4 + size
        (nonce_size,) = struct.unpack_from(">H", data, offset)
        offset += 2 + nonce_size
        (salt_size,) = struct.unpack_from(">H", data, offset)
        offset += 2 + salt_size
        session_type = data[offset]
        (symmetric,) = struct.unpack_from(">H", data, offset + 1)
        starts.append(SessionStart(index, tpm_key, bind, salt_size, session_type, symmetric))
    return starts


@contextlib.contextmanager
def runtime_tpms(tcti: str) -> Iterator[Callable[..., tuple[Tpm, RecordingTcti]]]:
    """``open_(pin, transport=RecordingTcti)``: the runtime's Tpm on a recording
    (or interposing) transport around ``tcti``, pinned to ``pin``; every one
    opened is closed at the end."""
    from tpm2_pytss import ESAPI

    from runtime.tpm.connection import TctiSpec, Tpm

    os.environ.setdefault("TSS2_LOG", "all+NONE")  # as Tpm.connect: libtss2 keeps quiet
    opened: list[tuple[Tpm, RecordingTcti]] = []

    def open_(
        pin: bytes | None, transport: type[RecordingTcti] = RecordingTcti
    ) -> tuple[Tpm, RecordingTcti]:
        bus = transport(tcti)
        runtime_tpm = Tpm(ESAPI(bus), TctiSpec.parse(tcti), pinned_primary_name=pin)
        opened.append((runtime_tpm, bus))
        return runtime_tpm, bus

    try:
        yield open_
    finally:
        for runtime_tpm, bus in reversed(opened):
            runtime_tpm.close()
            bus.close()
