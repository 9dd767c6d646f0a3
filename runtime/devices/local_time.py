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
NO_ZONE_FILES = "/nonexistent-zoneinfo"
_FORMAT = "%Y-%m-%d %H:%M:%S"


def local_time_text(zone: str, when: float | None = None) -> str:
    """``when`` (now if None) as "YYYY-MM-DD HH:MM:SS NAME" in ``zone``."""
    seconds = time.time() if when is None else when
    if zone == UTC_ZONE:
        return time.strftime(_FORMAT, time.gmtime(seconds)) + " UTC"
    # The C library first looks for a zone file named as the rule: TZDIR
    # points it at a directory that does not exist, so no file is ever read.
    before = {name: os.environ.get(name) for name in ("TZ", "TZDIR")}
    os.environ["TZ"], os.environ["TZDIR"] = zone, NO_ZONE_FILES
    time.tzset()
    try:
        local = time.localtime(seconds)
    finally:
        for name, value in before.items():
            if value is None:
                del os.environ[name]
            else:
                os.environ[name] = value
        time.tzset()
    name = local.tm_zone if local.tm_zone and local.tm_zone.isprintable() else zone
    return time.strftime(_FORMAT, local) + f" {name}"
