"""Wait for /init's recovery-key window to close before taking the console.

/init starts the runtime while it still waits half a second for the recovery
key, so that the runtime's imports overlap the wait. Until the window closes
the runtime must not change the console's settings (/init's `read` restores
its own afterwards, which would undo urwid's raw mode) nor send anything to
the TPM (a key in the window kills the runtime, and a command cut short would
leave the recovery gate a TPM in an unknown state). /init names, in
RUNTIME_RECOVERY_WINDOW, the file it creates when the window closed without
the key; without that variable (a later start, the host) there is no window.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping

WINDOW_VARIABLE = "RUNTIME_RECOVERY_WINDOW"
#: /init's window is half a second; well past it, /init has either created
#: the file or killed this process. Never wait forever on a file that a full
#: RAM disk kept from being written.
LONGEST_WAIT_SECONDS = 10.0
POLL_SECONDS = 0.01


def wait_for_recovery_window(environ: Mapping[str, str] | None = None) -> float:
    """Return once /init's window closed (or there is none); the seconds waited."""
    env: Mapping[str, str] = os.environ if environ is None else environ
    closed_marker = env.get(WINDOW_VARIABLE)
    if not closed_marker:
        return 0.0
    started = time.monotonic()
    while not os.path.exists(closed_marker):
        if time.monotonic() - started >= LONGEST_WAIT_SECONDS:
            break
        time.sleep(POLL_SECONDS)
    return time.monotonic() - started
