"""What the next kernel could read: the guest's RAM, dumped through QEMU's
machine protocol (QMP) once the machine has stopped.

The board's QEMU is started with ``qemu_args(socket)``: ``-no-shutdown``
keeps the guest's RAM after the test OS powers off, and the QMP socket lets
the test dump it. The dump holds everything the next kernel inherited from
the firmware's kernel and did not overwrite itself, so a secret found there
is a secret the booted OS could have read.
"""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

QMP_TIMEOUT = 120.0


def qemu_args(qmp_socket: Path) -> list[str]:
    return ["-no-shutdown", "-qmp", f"unix:{qmp_socket},server=on,wait=off"]


class Qmp:
    """A minimal QMP client: one command at a time, events skipped."""

    def __init__(self, path: Path, timeout: float = QMP_TIMEOUT) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(str(path))
        self.file = self.sock.makefile("rwb")
        self._reply()  # the greeting
        self.command("qmp_capabilities")

    def _reply(self) -> dict[str, object]:
        while True:
            line = self.file.readline()
            if not line:
                raise ConnectionError("QMP closed the connection")
            message = json.loads(line)
            if "event" not in message:
                return dict(message)

    def command(self, name: str, **arguments: object) -> object:
        request: dict[str, object] = {"execute": name}
        if arguments:
            request["arguments"] = arguments
        self.file.write(json.dumps(request).encode() + b"\n")
        self.file.flush()
        reply = self._reply()
        if "error" in reply:
            raise RuntimeError(f"QMP {name}: {reply['error']}")
        return reply.get("return")

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def dump_after_power_off(qmp_socket: Path, out: Path, timeout: float = 120) -> bytes:
    """Wait until the guest has powered off (QEMU keeps it, stopped), dump its
    RAM to ``out`` and return the dump's bytes."""
    qmp = Qmp(qmp_socket)
    try:
        deadline = time.monotonic() + timeout
        while True:
            status = qmp.command("query-status")
            if isinstance(status, dict) and status.get("running") is False:
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"the guest still runs after {timeout} s: {status}")
            time.sleep(0.5)
        qmp.command("dump-guest-memory", paging=False, protocol=f"file:{out}")
        data = out.read_bytes()
        qmp.command("quit")
    finally:
        qmp.close()
    return data


def places(ram: bytes, needle: bytes, most: int = 20) -> list[int]:
    """The offsets of ``needle`` in the dump (at most ``most``)."""
    found: list[int] = []
    start = ram.find(needle)
    while start >= 0 and len(found) < most:
        found.append(start)
        start = ram.find(needle, start + 1)
    return found


#: The length of the pieces a secret is searched for in: what a reused input
#: buffer or a partly overwritten copy would still hold.
PIECE = 12


@dataclass
class Needles:
    """What to search a dump for: ``pieced`` values by every PIECE-byte window
    (the whole of a shorter one), ``whole`` values only whole (text made of
    words that the runtime's own texts also hold)."""

    pieced: dict[str, bytes] = field(default_factory=dict)
    whole: dict[str, bytes] = field(default_factory=dict)


def found_in(ram: bytes, needles: Needles) -> dict[str, list[bytes]]:
    """Each needle found ("<name> [i:j]" for a piece), with the bytes around
    each place: what held it."""
    hits: dict[str, list[int]] = {}
    for name, value in needles.whole.items():
        if at := places(ram, value):
            hits[name] = at
    for name, value in needles.pieced.items():
        hits.update(piece_places(ram, name, value))
    return {
        name: [ram[max(0, at - 48) : at + PIECE + 48] for at in offsets]
        for name, offsets in hits.items()
    }


def piece_places(ram: bytes, name: str, value: bytes, most: int = 20) -> dict[str, list[int]]:
    """Where each PIECE-byte window of ``value`` is in the dump. A gigabyte is
    searched once per anchor, not once per window: every window holds one of
    the half-piece anchors taken every PIECE - half + 1 bytes, and each place
    an anchor is found is checked against the windows around it."""
    if len(value) <= PIECE:
        whole = places(ram, value, most)
        return {name: whole} if whole else {}
    half = PIECE // 2
    step = PIECE - half + 1
    found: dict[str, list[int]] = {}
    for anchor in range(0, len(value) - half + 1, step):
        needle = value[anchor : anchor + half]
        at = ram.find(needle)
        while at >= 0:
            for window in range(
                max(0, anchor - (PIECE - half)), min(anchor, len(value) - PIECE) + 1
            ):
                start = at - (anchor - window)
                if start >= 0 and ram[start : start + PIECE] == value[window : window + PIECE]:
                    offsets = found.setdefault(f"{name} [{window}:{window + PIECE}]", [])
                    if start not in offsets and len(offsets) < most:
                        offsets.append(start)
            at = ram.find(needle, at + 1)
    return found
