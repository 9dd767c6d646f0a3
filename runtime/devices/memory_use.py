"""How much memory the machine and the runtime use, for the boot log and the
system information page (/proc/meminfo, /proc/self/status). A figure that
cannot be read is 0 (or missing), never an error: these only inform."""

from __future__ import annotations

MEMINFO = "/proc/meminfo"
SELF_STATUS = "/proc/self/status"


def meminfo_kib() -> dict[str, int]:
    """/proc/meminfo's fields given in kB (MemTotal, MemAvailable, ...)."""
    fields: dict[str, int] = {}
    try:
        with open(MEMINFO) as f:
            for line in f:
                key, _, value = line.partition(":")
                if value.strip().endswith("kB"):
                    fields[key] = int(value.split()[0])
    except (OSError, ValueError):
        return {}
    return fields


def peak_rss_kib() -> int:
    """The most memory this process has held at once (VmHWM)."""
    try:
        with open(SELF_STATUS) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def guest_memory_used_kib() -> int:
    """The machine's memory in use: total less what is available."""
    fields = meminfo_kib()
    return fields.get("MemTotal", 0) - fields.get("MemAvailable", 0)
