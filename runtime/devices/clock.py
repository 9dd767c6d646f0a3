"""The clock: is it plausible, and setting it (kernel clock and hardware RTC).

TOTP codes are computed from the time, so a wrong clock shows a code that
does not match the owner's authenticator: this is a boot-time check, not a
nicety. Times are UTC throughout; the RTC holds UTC, which is how the
kernel reads it at start (Heads' /init reads it as local time instead).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from runtime import error_detail
from runtime.image_files import BUILD_INFO_PATH

BUILD_TIME_KEY = "source_date_epoch"
BUSYBOX = "/bin/busybox"
HWCLOCK = (BUSYBOX, "hwclock")  # the applet, whether or not a symlink exists

MIN_YEAR, MAX_YEAR = 2024, 2200
# No clock before this is right whatever the image says (Heads uses 2024 too).
EARLIEST = datetime(MIN_YEAR, 1, 1, tzinfo=UTC).timestamp()
LATEST = datetime(MAX_YEAR + 1, 1, 1, tzinfo=UTC).timestamp()
FORMAT_HINT = (
    "type the time in UTC as YYYY-MM-DD HH:MM or YYYY-MM-DD HH:MM:SS, for example 2026-03-14 09:30"
)
#: the build date is in the image: damaged, it is the image's fault, not the clock's
_DAMAGED = (
    "The firmware image's build information is damaged, so the clock cannot be "
    "checked against the image's build date. Check the time shown yourself."
)
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


class ClockError(Exception):
    """The clock could not be read or set (the message says what to do)."""


class TimeInputError(ValueError):
    """What the owner typed is not a usable time (the message says why)."""


def _utc(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(seconds))


def image_build_time(path: str = BUILD_INFO_PATH) -> float | None:
    """When the image was built (seconds since 1970), None if it does not say.

    ClockError if the file is there but damaged: that is worth showing."""
    try:
        with open(path, encoding="utf-8") as f:
            info = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        error_detail.detail("clock-build-info", f"{path}: {error_detail.describe(err)}")
        raise ClockError(_DAMAGED) from None
    value = info.get(BUILD_TIME_KEY) if isinstance(info, dict) else None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < LATEST:
        error_detail.detail("clock-build-info", f"{path}: {BUILD_TIME_KEY} is {value!r}")
        raise ClockError(_DAMAGED)
    return float(value)


def clock_problem(now: float, build_time: float | None) -> str | None:
    """A warning in plain words when the clock is clearly wrong, else None.

    Clearly wrong: earlier than the image was built (or than 2024), or after
    2200. A clock a few minutes off cannot be told from here."""
    floor = max(build_time or 0.0, EARLIEST)
    if floor <= now < LATEST:
        return None
    if now >= LATEST:
        why = f"after {MAX_YEAR}, which cannot be right"
    elif build_time is not None and build_time >= EARLIEST:
        why = f"earlier than this firmware image was built ({_utc(build_time)})"
    else:
        why = f"earlier than {MIN_YEAR}, which cannot be right"
    return (
        f"The clock says {_utc(now)}, {why}. TOTP codes are computed from the time, so "
        "the code shown will not match your authenticator app. Set the correct time "
        "(in UTC) from the options menu, then check the code again."
    )


def _number(text: str, name: str, digits: tuple[int, int]) -> int:
    low, high = digits
    if not (text.isascii() and text.isdigit()) or not low <= len(text) <= high:
        size = f"{low}" if low == high else f"{low} or {high}"
        raise TimeInputError(
            f"The {name} {text!r} is not a number of {size} digits; {FORMAT_HINT}."
        )
    return int(text)


def _check(value: int, name: str, low: int, high: int) -> None:
    if not low <= value <= high:
        raise TimeInputError(
            f"The {name} {value} is out of range: it must be from {low} to {high}."
        )


def _days_in_month(year: int, month: int) -> int:
    first_of_next = datetime(year + month // 12, month % 12 + 1, 1)
    return (first_of_next - timedelta(days=1)).day


def parse_user_time(text: str) -> datetime:
    """A UTC time typed as YYYY-MM-DD HH:MM[:SS]; TimeInputError says what is wrong."""
    parts = text.split()
    if not parts:
        raise TimeInputError(f"No time was entered; {FORMAT_HINT}.")
    if len(parts) == 1 and parts[0].count("-") == 2:
        raise TimeInputError(f"The time of day is missing; {FORMAT_HINT}.")
    if len(parts) != 2:
        raise TimeInputError(f"{text.strip()!r} is not a date and a time; {FORMAT_HINT}.")
    date_text, clock_text = parts
    date_fields = date_text.split("-")
    if len(date_fields) != 3:
        raise TimeInputError(f"{date_text!r} is not a date written as YYYY-MM-DD; {FORMAT_HINT}.")
    clock_fields = clock_text.split(":")
    if len(clock_fields) not in (2, 3):
        raise TimeInputError(
            f"{clock_text!r} is not a time of day written as HH:MM or HH:MM:SS; {FORMAT_HINT}."
        )
    year = _number(date_fields[0], "year", (4, 4))
    month = _number(date_fields[1], "month", (1, 2))
    day = _number(date_fields[2], "day", (1, 2))
    hour = _number(clock_fields[0], "hour", (1, 2))
    minute = _number(clock_fields[1], "minute", (2, 2))
    second = _number(clock_fields[2], "second", (2, 2)) if len(clock_fields) == 3 else 0
    _check(year, "year", MIN_YEAR, MAX_YEAR)
    _check(month, "month", 1, 12)
    days = _days_in_month(year, month)
    if not 1 <= day <= days:
        raise TimeInputError(
            f"{date_text} does not exist: {_MONTHS[month - 1]} {year} has {days} days."
        )
    _check(hour, "hour", 0, 23)
    _check(minute, "minute", 0, 59)
    _check(second, "second", 0, 59)
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def set_system_time(when: datetime, hwclock: Sequence[str] = HWCLOCK) -> str | None:
    """Set the kernel clock, then the hardware clock (RTC) from it.

    Returns None when both are set, or a warning when only the kernel clock
    is (it then lasts until power-off). ClockError if nothing was set."""
    if when.tzinfo is None:
        raise ClockError(
            "internal error: a time without a time zone was given; the clock was not changed"
        )
    try:
        time.clock_settime(time.CLOCK_REALTIME, when.timestamp())
    except OSError as err:
        error_detail.detail("clock-set", error_detail.describe(err))
        raise ClockError(
            f"The clock could not be set ({err.strerror or 'refused'}); it was "
            "not changed. The runtime must run as root to set it."
        ) from None
    import subprocess  # only here: the menu item is rare, the import is not free

    until = "The clock is set, but only until power-off: "
    try:
        done = subprocess.run(
            [*hwclock, "-w", "-u"], capture_output=True, text=True, timeout=15, check=False
        )
    except FileNotFoundError:
        return until + f"{hwclock[0]} is not in this image, so the hardware clock was not written."
    except subprocess.TimeoutExpired:
        return until + "writing the hardware clock did not finish within 15 seconds."
    except OSError as err:
        return until + f"writing the hardware clock failed ({err.strerror or err})."
    if done.returncode != 0:
        lines = (done.stderr or done.stdout or "").strip().splitlines()
        detail = lines[-1] if lines else f"exit status {done.returncode}"
        return until + f"writing the hardware clock failed ({detail})."
    return None
