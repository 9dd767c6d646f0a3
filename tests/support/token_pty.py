"""A serial line on a pty for the HOTP token tests: the host's side (usually the
software token, tools/soft_token.py) serves the master end in a thread, the
runtime opens the slave's path as it opens /dev/ttyS1."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

from runtime.config import Settings

#: The host's side: ``serve(master_fd, stop)`` answers until ``stop`` is set
#: (SoftToken.serve is one).
Serve = Callable[[int, threading.Event], object]

JOIN_TIMEOUT_S = 5


class TokenPty:
    """A pty whose master end ``serve`` answers in a thread (None: nobody
    answers, a silent line); the runtime opens ``path``."""

    def __init__(self, serve: Serve | None = None) -> None:
        # The slave stays open here too, so the master never reads EIO
        # between two opens by the runtime.
        self.master, self.slave = os.openpty()
        self.path = os.ttyname(self.slave)
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None
        if serve is not None:
            self.thread = threading.Thread(target=serve, args=(self.master, self.stop), daemon=True)
            self.thread.start()

    def close(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(JOIN_TIMEOUT_S)
        os.close(self.master)
        os.close(self.slave)

    def __enter__(self) -> TokenPty:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


class PtySettings(Settings):
    """Settings naming a serial HOTP token, pointed at a pty (the setting
    itself only takes /dev/tty* paths)."""

    def __init__(self, path: str) -> None:
        super().__init__({"CONFIG_HOTPKEY": "y", "CONFIG_HOTP_TOKEN": "serial:/dev/ttyS1"})
        self._path = path

    @property
    def hotp_serial_device(self) -> str | None:
        return self._path
