"""Whether CONFIG_BOOT_RECOVERY_SERIAL names a line /init can listen on.

/init starts the listener before the runtime, and the menus then own the
screen: a line it refuses is said here, on the main menu, with the reason.
The rules are /init's (its recovery_serial function): a serial tty that
exists and is none of the kernel's consoles.
"""

from __future__ import annotations

import os
import re
import stat

CONSOLES = "/sys/class/tty/console/active"
_SERIAL_NAME = re.compile(r"/dev/tty[A-Za-z][^/]*[0-9]")


def recovery_serial_problem(device: str | None, consoles: str = CONSOLES) -> str:
    """Empty when the listener runs on ``device`` (or none is asked for)."""
    if not device:
        return ""
    head = f"CONFIG_BOOT_RECOVERY_SERIAL={device}: no recovery listener runs, as "
    if not _SERIAL_NAME.fullmatch(device):
        return head + "it is not a serial line (/dev/ttyS0, /dev/ttyUSB0, ...)."
    try:
        is_tty = stat.S_ISCHR(os.stat(device).st_mode)
    except OSError:
        is_tty = False
    if not is_tty:
        return head + "this machine has no such line."
    try:
        with open(consoles, encoding="ascii", errors="replace") as f:
            active = f.read().split()
    except OSError:
        active = []
    if device.removeprefix("/dev/") in active:
        return head + "it is the console the menus use."
    return ""
