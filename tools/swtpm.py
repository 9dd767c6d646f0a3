"""Start and drive a software TPM (swtpm) for tests, benchmarks and the host demo.

Each instance gets its own short temporary directory holding the TPM state
and two Unix sockets (commands and control), so instances never collide and
tests can run in parallel.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import struct
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

# swtpm control-channel commands (swtpm's ioctl protocol, big-endian).
_CMD_INIT = 0x02
_CMD_SHUTDOWN = 0x03
START_TIMEOUT_S = 10.0


class SwtpmError(RuntimeError):
    pass


class Swtpm:
    """A running ``swtpm socket --tpm2`` process."""

    def __init__(self, state_dir: Path | None = None) -> None:
        if shutil.which("swtpm") is None:
            raise SwtpmError("swtpm is not installed (Debian package 'swtpm')")
        # Unix socket paths are limited to 108 bytes: keep the directory short.
        self._own_dir = state_dir is None
        self.dir = (
            Path(tempfile.mkdtemp(prefix="swtpm-", dir="/tmp")) if state_dir is None else state_dir
        )
        self.dir.mkdir(parents=True, exist_ok=True)
        self.server = self.dir / "tpm.sock"
        self.ctrl = self.dir / "tpm.sock.ctrl"  # where the swtpm TCTI looks for it
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def tcti(self) -> str:
        return f"swtpm:path={self.server}"

    def start(self) -> Swtpm:
        for path in (self.server, self.ctrl):
            path.unlink(missing_ok=True)
        # A file, not a pipe: swtpm logs every client disconnect, and a pipe nobody
        # reads fills up and blocks it mid-command (a test session then hangs).
        self.log = self.dir / "swtpm.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    "swtpm",
                    "socket",
                    "--tpm2",
                    "--tpmstate",
                    f"dir={self.dir}",
                    "--server",
                    f"type=unixio,path={self.server}",
                    "--ctrl",
                    f"type=unixio,path={self.ctrl}",
                    "--flags",
                    "not-need-init,startup-clear",
                ],
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        # The socket files appear at bind(), before listen(): wait until both accept.
        while not (self._accepts(self.server) and self._accepts(self.ctrl)):
            if self.process.poll() is not None:
                err = self.log.read_text(errors="replace")
                raise SwtpmError(f"swtpm exited at start: {err.strip()}")
            if time.monotonic() > deadline:
                self.stop()
                raise SwtpmError("swtpm did not open its sockets in time")
            time.sleep(0.005)
        return self

    @staticmethod
    def _accepts(path: Path) -> bool:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            try:
                sock.connect(str(path))
            except OSError:
                return False
        return True

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
            with contextlib.suppress(OSError, SwtpmError):
                self._control(_CMD_SHUTDOWN)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.process = None
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Swtpm:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
