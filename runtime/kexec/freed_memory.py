"""Whether this kernel zeroes memory when it is freed (``init_on_free``).

The hand-over relies on it: the runtime exits before ``kexec -e`` so that
what its memory held (passphrases, the TOTP secret) is freed, and only a
kernel that zeroes freed pages keeps that from the next kernel. The kernel
says so once at start ("mem auto-init: ..., heap free:on"); the command line
can turn it on or off, and the last word there wins over the build default.
"""

from __future__ import annotations

import errno
import functools
import os
import re
from collections.abc import Iterable

KMSG = "/dev/kmsg"
CMDLINE = "/proc/cmdline"
#: A kernel record (facility 0: the first field, priority, below 8) whose
#: text starts with the line; a device's name quoted in another line, or a
#: record written from user space, does not match.
_AUTO_INIT = re.compile(r"^[0-7],\d+,\d+,[^;]*;mem auto-init: [^\n]*heap free:(on|off)\b")
#: kstrtobool's true words (only the first character counts, "on" aside)
_TRUE_FIRST = frozenset("1yYtT")
#: Enough records for a quiet boot's start; the line comes early.
_MOST_RECORDS = 4096


def zeroed_by(cmdline: str, kernel_log: Iterable[str]) -> bool | None:
    """True or False as the kernel said; None when it said nothing we know."""
    for line in kernel_log:
        found = _AUTO_INIT.match(line)
        if found:
            return found.group(1) == "on"
    words = cmdline.split()
    if "--" in words:  # what follows goes to init, not to the kernel
        words = words[: words.index("--")]
    for word in reversed(words):
        if word.startswith("init_on_free="):
            value = word.partition("=")[2]
            return value.lower() == "on" or value[:1] in _TRUE_FIRST
    return None


def _kernel_log(path: str = KMSG) -> list[str]:
    """The kernel's log records still in its buffer; empty when unreadable."""
    records: list[str] = []
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return records
    try:
        while len(records) < _MOST_RECORDS:
            try:
                record = os.read(fd, 8192)
            except OSError as err:
                if err.errno == errno.EPIPE:  # overwritten while read: go on
                    continue
                break  # EAGAIN: the end of the buffer
            if not record:
                break
            records.append(record.decode("utf-8", "replace"))
    finally:
        os.close(fd)
    return records


@functools.cache  # the kernel's answer does not change while it runs
def freed_memory_zeroed(cmdline_path: str = CMDLINE, kmsg_path: str = KMSG) -> bool | None:
    try:
        with open(cmdline_path, encoding="utf-8", errors="replace") as f:
            cmdline = f.read()
    except OSError:
        cmdline = ""
    return zeroed_by(cmdline, _kernel_log(kmsg_path))


def handover_line(zeroed: bool | None) -> str:
    """One line for the boot log and the integrity report."""
    if zeroed:
        return "Freed memory is zeroed (init_on_free): the next kernel gets none of it"
    if zeroed is None:
        return (
            "Freed memory: the kernel did not say whether it zeroes it (look for "
            "init_on_free=1 on the firmware kernel's command line)"
        )
    return (
        "Freed memory is NOT zeroed: what the runtime held may reach the next kernel. "
        "Add init_on_free=1 to the firmware kernel's command line"
    )
