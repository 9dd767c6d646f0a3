"""Whether /init listens for the recovery shell on the line
CONFIG_BOOT_RECOVERY_SERIAL names, and if not, why.

The build decides what it can know from the settings and the image (a
serial line's name, an owner key to authenticate with, not the HOTP token's
line) and writes the line for /init (build_initrd.py); /init checks at boot
that the line exists and is none of the kernel's consoles. The runtime says
on the main menu why a line it was given gets no listener.
"""

from __future__ import annotations

import os
import re
import stat

CONSOLES = "/sys/class/tty/console/active"
_SERIAL_NAME = re.compile(r"/dev/tty[A-Za-z][A-Za-z0-9]*[0-9]")


def build_refusal(device: str | None, owner_key: bool, token_device: str | None) -> str:
    """Why the build gives /init no listener on ``device`` (empty: it does)."""
    if not device:
        return ""
    if not _SERIAL_NAME.fullmatch(device):
        return "it is not a serial line (/dev/ttyS0, /dev/ttyUSB0, ...)."
    if not owner_key:
        # the gate would open a root shell to anyone on the line, beside the menus
        return "the firmware holds no owner key, so nobody on the line could be authenticated."
    if device == token_device:
        return (
            "it is the HOTP token's line (CONFIG_HOTP_TOKEN): its answers would ask for the shell."
        )
    return ""


def recovery_serial_problem(
    device: str | None, *, owner_key: bool, token_device: str | None, consoles: str = CONSOLES
) -> str:
    """Empty when the listener runs on ``device`` (or none is asked for)."""
    if not device:
        return ""
    head = f"CONFIG_BOOT_RECOVERY_SERIAL={device}: no recovery listener runs, as "
    refusal = build_refusal(device, owner_key, token_device)
    if refusal:
        return head + refusal
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
        # unknown: /init cannot tell either, and refuses the same way
        return head + "the kernel's consoles cannot be read, so the line may be one."
    if device.removeprefix("/dev/") in active:
        return head + "it is the console the menus use."
    return ""
