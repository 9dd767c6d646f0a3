"""Wait for a server on a Unix socket by connecting to it.

A socket file appears at bind(), before the server calls listen(); until then
connect() is refused. So a file that exists says nothing about a server ready
for its client: only a connect() that succeeds does.
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path
from typing import Any

#: How long to sleep between two refused connects: servers start in milliseconds.
RETRY_PAUSE_S = 0.01


class SocketWaitError(RuntimeError):
    """The server never took a connection: it exited, or the deadline passed."""


def connect_unix(
    path: Path,
    timeout: float,
    *,
    what: str,
    process: subprocess.Popen[Any] | None = None,
) -> socket.socket:
    """A stream socket connected to ``path``, retried until it connects or
    ``timeout`` seconds pass. ``what`` names the server in the error; with
    ``process`` (the server), its exit ends the wait at once."""
    deadline = time.monotonic() + timeout
    while True:
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            client.connect(str(path))
            return client
        except OSError as err:
            client.close()
            last = err
        if process is not None and process.poll() is not None:
            raise SocketWaitError(
                f"{what} exited (status {process.returncode}) before it listened on {path}"
            )
        if time.monotonic() > deadline:
            raise SocketWaitError(
                f"{what} did not listen on {path} within {timeout:g} s (last error: {last})"
            )
        time.sleep(RETRY_PAUSE_S)


def wait_for_listener(
    path: Path,
    timeout: float,
    *,
    what: str,
    process: subprocess.Popen[Any] | None = None,
) -> None:
    """Return once a server accepts connections on ``path`` (see connect_unix)."""
    connect_unix(path, timeout, what=what, process=process).close()
