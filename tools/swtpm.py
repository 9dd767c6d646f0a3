"""Start and drive a software TPM (swtpm): the one launcher of the tests, the
benchmarks, the host demo and the QEMU boards.

Two kinds of client use it. This host's TSS (the default) talks to a command
socket beside the control socket, and finds the TPM powered on and started.
QEMU's TPM emulator (``for_qemu``) takes the control socket only: over it,
QEMU powers the TPM on and passes the firmware's commands.

An instance without a state directory gets its own short temporary one
(removed at stop), so instances never collide and tests can run in parallel.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import struct
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from tools.socket_wait import SocketWaitError, wait_for_listener

# swtpm control-channel commands (swtpm's ioctl protocol, big-endian).
_CMD_INIT = 0x02
_CMD_SHUTDOWN = 0x03
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0
#: A host client needs no power-on, and a TPM that has seen TPM2_Startup.
HOST_FLAGS = ("not-need-init", "startup-clear")


class SwtpmError(RuntimeError):
    pass


class Swtpm:
    """A running ``swtpm socket --tpm2`` process."""

    def __init__(
        self,
        state_dir: Path | None = None,
        *,
        for_qemu: bool = False,
        ctrl: Path | None = None,
        flags: Sequence[str] | None = None,
    ) -> None:
        """``ctrl``: the control socket (default: where the swtpm TCTI looks for
        it, beside the command socket); ``flags``: swtpm's --flags (default:
        HOST_FLAGS for a host client, none for QEMU, which powers it on)."""
        if shutil.which("swtpm") is None:
            raise SwtpmError("swtpm is not installed (Debian package 'swtpm')")
        # Unix socket paths are limited to 108 bytes: keep the directory short.
        self._own_dir = state_dir is None
        self.dir = (
            Path(tempfile.mkdtemp(prefix="swtpm-", dir="/tmp")) if state_dir is None else state_dir
        )
        self.dir.mkdir(parents=True, exist_ok=True)
        self.for_qemu = for_qemu
        self.server = None if for_qemu else self.dir / "tpm.sock"
        self.ctrl = ctrl or self.dir / "tpm.sock.ctrl"
        if flags is None:
            flags = () if for_qemu else HOST_FLAGS
        self.flags = tuple(flags)
        # A file, not a pipe: swtpm logs every client disconnect, and a pipe nobody
        # reads fills up and blocks it mid-command (a test session then hangs).
        self.log = self.dir / "swtpm.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def tcti(self) -> str:
        if self.server is None:
            raise SwtpmError("a swtpm started for QEMU has no command socket")
        return f"swtpm:path={self.server}"

    def _command(self) -> list[str]:
        argv = ["swtpm", "socket", "--tpm2", "--tpmstate", f"dir={self.dir}"]
        if self.server is not None:
            argv += ["--server", f"type=unixio,path={self.server}"]
        argv += ["--ctrl", f"type=unixio,path={self.ctrl}"]
        if self.flags:
            argv += ["--flags", ",".join(self.flags)]
        return argv

    def _sockets(self) -> list[Path]:
        return [path for path in (self.server, self.ctrl) if path is not None]

    def start(self) -> Swtpm:
        for path in self._sockets():
            path.unlink(missing_ok=True)
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                self._command(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log
            )
        try:
            for path in self._sockets():
                wait_for_listener(path, START_TIMEOUT_S, what="swtpm", process=self.process)
        except SocketWaitError as err:
            said = self.log.read_text(errors="replace").strip()
            self.stop()
            raise SwtpmError(f"{err}: {said}" if said else str(err)) from None
        return self

    def _control(self, command: int, payload: bytes = b"") -> None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(str(self.ctrl))
            sock.sendall(struct.pack(">I", command) + payload)
            reply = sock.recv(4)
        if len(reply) != 4 or struct.unpack(">I", reply)[0] != 0:
            raise SwtpmError(f"swtpm control command {command} failed: {reply!r}")

    def power_cycle(self) -> None:
        """Reset the TPM as a power cycle does: PCRs go back to their initial values.
        The caller sends TPM2_Startup afterwards (as firmware would)."""
        self._control(_CMD_INIT, struct.pack(">I", 0))

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self._ask_to_exit(self.process)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STOP_TIMEOUT_S)
        self.process = None
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def _ask_to_exit(self, process: subprocess.Popen[bytes]) -> None:
        # The control channel takes one client at a time: QEMU may still hold it.
        if self.for_qemu:
            process.terminate()
        else:
            with contextlib.suppress(OSError, SwtpmError):
                self._control(_CMD_SHUTDOWN)

    def __enter__(self) -> Swtpm:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
