"""The software HOTP token's host tool (tools/soft_token.py) as its own
process, serving a Unix socket (QEMU's serial port connects there)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tools.socket_wait import SocketWaitError, wait_for_listener

# abspath, not resolve(): a symlinked checkout runs its own tools.
REPO_ROOT = Path(os.path.abspath(__file__)).parents[2]
START_TIMEOUT_S = 20.0


def soft_token_command(state: Path, socket: Path, *flags: str) -> list[str]:
    """The tool's command line: its state file, its socket, then ``flags``."""
    return [
        sys.executable,
        "-m",
        "tools.soft_token",
        "--state",
        str(state),
        "--socket",
        str(socket),
        *flags,
    ]


def start_soft_token(
    state: Path, socket: Path, *flags: str, timeout: float = START_TIMEOUT_S
) -> subprocess.Popen[bytes]:
    """The tool, started and listening on ``socket``."""
    socket.unlink(missing_ok=True)
    process = subprocess.Popen(
        soft_token_command(state, socket, *flags), cwd=REPO_ROOT, stdin=subprocess.DEVNULL
    )
    try:
        wait_for_listener(socket, timeout, what="the software token", process=process)
    except SocketWaitError:
        process.kill()
        process.wait()
        raise
    return process
