"""The rollback preflight: before the boot trusts or re-signs /boot, check
that the TPM rollback counter named by /boot exists and is a proper counter.

/boot/kexec_rollback.txt is one line, ``<sha256>  /tmp/counter-<hex id>``
(Heads' format): the hash of the counter's text at signing time. The check of
the value itself is part of verifying the signature; here only the
counter's existence and policy are checked, so a TPM that was reset or
swapped is reported before anything else happens.

This runs at every power-on before any menu, on a /boot anyone with the disk
may have changed: the file is read through safe_read, so a FIFO, a symbolic
link, a directory or a huge file under that name is a plain finding, never a
hang.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass

from runtime.error_detail import detail
from runtime.integrity.safe_read import UnsafeFile, read_regular

ROLLBACK_FILE = "kexec_rollback.txt"
SIGNED_STATE_FILES = ("kexec.sig", "kexec_default_hashes.txt")
#: Heads writes one line of about 100 bytes
MAX_ROLLBACK_BYTES = 4096
_COUNTER_NAME = re.compile(r"counter-([0-9a-fA-F]{1,8})\b")


class CounterMissing(Exception):
    """The NV index does not exist."""


@dataclass(frozen=True)
class CounterView:
    """What the TPM says about the counter: its attributes' problem (None: fine)."""

    problem: str | None


def counter_id(text: str) -> int | None:
    match = _COUNTER_NAME.search(text)
    return int(match.group(1), 16) if match else None


def preflight(boot_dir: str, inspect: Callable[[int], CounterView]) -> str:
    """Empty when /boot and the TPM agree; else what is wrong, in plain words.

    ``inspect(index)`` asks the TPM about the counter; it raises CounterMissing
    when the index does not exist, or OSError/ValueError, whose text is plain
    words for the screen, when it cannot be read. The NV index itself is no
    screen's business: it goes to the log (runtime.error_detail).
    """
    shown = f"/boot/{ROLLBACK_FILE}"
    try:
        data = read_regular(os.path.join(boot_dir, ROLLBACK_FILE), MAX_ROLLBACK_BYTES, shown=shown)
    except FileNotFoundError:
        # lexists: a planted link or FIFO under a signed name is "something there"
        signed = [
            name for name in SIGNED_STATE_FILES if os.path.lexists(os.path.join(boot_dir, name))
        ]
        if signed:
            return (
                f"/boot has signed state ({', '.join(signed)}) but no {ROLLBACK_FILE}: "
                "the file naming the TPM rollback counter is missing."
            )
        return ""  # first installation: nothing signed yet
    except UnsafeFile as err:
        # strerror, not str(): str() of an OSError starts with "[Errno N]"
        return (
            f"{err.strerror}: Heads writes one short line there, so /boot was tampered "
            "with or is damaged. Remove the file from the recovery shell, then sign /boot "
            "again (Options > Update checksums)."
        )
    except OSError as err:
        return f"{shown} cannot be read: {err.strerror or err}."
    index = counter_id(data.decode("utf-8", errors="replace"))
    if index is None:
        return f"{shown} names no TPM counter: the file is damaged."
    nv_index = 0x01000000 | index if index <= 0xFFFFFF else index
    try:
        view = inspect(nv_index)
    except CounterMissing:
        detail("rollback-preflight", f"NV index 0x{nv_index:08x} is not defined")
        return (
            "The TPM no longer holds the rollback counter /boot was signed with: the TPM "
            "was reset or replaced since /boot was signed."
        )
    except (OSError, ValueError) as err:
        detail("rollback-preflight", f"NV index 0x{nv_index:08x}: {err}")
        return f"The TPM rollback counter cannot be read. {str(err).rstrip('.')}."
    if view.problem:
        detail("rollback-preflight", f"NV index 0x{nv_index:08x}: {view.problem}")
        return f"The TPM rollback counter cannot be used: {view.problem}."
    return ""
