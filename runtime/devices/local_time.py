"""The time on screen in the owner's time zone (CONFIG_TIME_ZONE).

Only the clock shown: TOTP codes, the RTC and every log use UTC. The zone is
a POSIX TZ rule, which the C library reads without a zone database; it is
set for the one conversion and put back, so nothing else in the process (a
command started later, hwclock) sees local time.
"""

from __future__ import annotations

import os
import time

UTC_ZONE = "UTC"
_FORMAT = "%Y-%m-%d %H:%M:%S"


def local_time_text(zone: str, when: float | None = None) -> str:
    """``when`` (now if None) as "YYYY-MM-DD HH:MM:SS NAME" in ``zone``."""
    seconds = time.time() if when is None else when
    if zone == UTC_ZONE:
        return time.strftime(_FORMAT, time.gmtime(seconds)) + " UTC"
    before = os.environ.get("TZ")
    os.environ["TZ"] = zone
    time.tzset()
    try:
        local = time.localtime(seconds)
    finally:
        if before is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = before
        time.tzset()
    name = local.tm_zone if local.tm_zone and local.tm_zone.isprintable() else zone
    return time.strftime(_FORMAT, local) + f" {name}"
