"""The clock check, typed times and setting the clock (runtime/devices/clock.py).

The setter runs against fakes: the host clock is never changed."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from runtime.devices.clock import (
    ClockError,
    TimeInputError,
    clock_problem,
    image_build_time,
    parse_user_time,
    set_system_time,
)

BUILT = datetime(2026, 1, 1, tzinfo=UTC).timestamp()


# --- the decision -----------------------------------------------------------


def test_a_clock_after_the_build_is_fine() -> None:
    assert clock_problem(BUILT, BUILT) is None
    assert clock_problem(BUILT + 86400 * 365 * 10, BUILT) is None


def test_a_clock_before_the_build_is_wrong() -> None:
    message = clock_problem(BUILT - 60, BUILT)
    assert message is not None
    assert "2025-12-31 23:59 UTC" in message
    assert "built (2026-01-01 00:00 UTC)" in message
    assert "TOTP" in message and "Set the correct time" in message


def test_without_a_build_time_2024_is_the_floor() -> None:
    assert clock_problem(datetime(2024, 6, 1, tzinfo=UTC).timestamp(), None) is None
    message = clock_problem(0.0, None)
    assert message is not None and "1970-01-01 00:00 UTC, earlier than 2024" in message
    # A build time older than 2024 (a default SOURCE_DATE_EPOCH) does not lower it.
    assert clock_problem(datetime(2020, 1, 1, tzinfo=UTC).timestamp(), 0.0) is not None


def test_a_clock_after_2200_is_wrong() -> None:
    message = clock_problem(datetime(2201, 1, 1, tzinfo=UTC).timestamp(), BUILT)
    assert message is not None and "after 2200" in message


# --- the build time ---------------------------------------------------------


def test_image_build_time(tmp_path: Path) -> None:
    path = tmp_path / "build-info.json"
    path.write_text(json.dumps({"board": "qemu-swtpm", "source_date_epoch": 1767225600}))
    assert image_build_time(str(path)) == 1767225600.0
    assert image_build_time(str(tmp_path / "absent.json")) is None


@pytest.mark.parametrize(
    "content",
    [
        '{"source_date_epoch": "1767225600"}',
        '{"source_date_epoch": true}',
        '{"source_date_epoch": -5}',
        '{"other": 1}',
        "[1]",
        "{not json",
    ],
)
def test_image_build_time_damaged(tmp_path: Path, content: str) -> None:
    path = tmp_path / "build-info.json"
    path.write_text(content)
    with pytest.raises(ClockError, match="cannot be checked against the image's build date"):
        image_build_time(str(path))


# --- typed times ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-14 09:30", datetime(2026, 3, 14, 9, 30, tzinfo=UTC)),
        ("2026-03-14 09:30:59", datetime(2026, 3, 14, 9, 30, 59, tzinfo=UTC)),
        ("  2026-3-4   9:05  ", datetime(2026, 3, 4, 9, 5, tzinfo=UTC)),
        ("2028-02-29 00:00", datetime(2028, 2, 29, tzinfo=UTC)),
        ("2024-01-01 00:00", datetime(2024, 1, 1, tzinfo=UTC)),
        ("2200-12-31 23:59:59", datetime(2200, 12, 31, 23, 59, 59, tzinfo=UTC)),
    ],
)
def test_parse_user_time(text: str, expected: datetime) -> None:
    assert parse_user_time(text) == expected


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "No time was entered"),
        ("2026-03-14", "time of day is missing"),
        ("09:30", "is not a date and a time"),
        ("2026-03-14 09:30 UTC", "is not a date and a time"),
        ("2026/03/14 09:30", "not a date written as YYYY-MM-DD"),
        ("2026-03-14 0930", "not a time of day"),
        ("2026-03-14 09:30:00:00", "not a time of day"),
        ("26-03-14 09:30", "year '26' is not a number of 4 digits"),
        ("2026-0x-14 09:30", "month '0x' is not a number"),
        ("2026-03-1a 09:30", "day '1a' is not a number"),
        ("2026-03-14 9:5", "minute '5' is not a number of 2 digits"),
        ("2026-03-14 -9:30", "hour '-9'"),
        ("2026-03-14 ٠٩:30", "hour"),
        ("2023-12-31 23:59", "year 2023 is out of range: it must be from 2024 to 2200"),
        ("2201-01-01 00:00", "year 2201 is out of range"),
        ("2026-13-01 00:00", "month 13 is out of range"),
        ("2026-00-01 00:00", "month 0 is out of range"),
        ("2026-04-31 00:00", "2026-04-31 does not exist: April 2026 has 30 days"),
        ("2026-02-29 00:00", "February 2026 has 28 days"),
        ("2026-01-00 00:00", "January 2026 has 31 days"),
        ("2026-03-14 24:00", "hour 24 is out of range"),
        ("2026-03-14 23:60", "minute 60 is out of range"),
        ("2026-03-14 23:59:60", "second 60 is out of range"),
    ],
)
def test_parse_user_time_errors(text: str, words: str) -> None:
    with pytest.raises(TimeInputError) as err:
        parse_user_time(text)
    assert words in str(err.value)


# --- setting the clock (fakes only) ----------------------------------------

WHEN = datetime(2026, 3, 14, 9, 30, tzinfo=UTC)


@pytest.fixture
def kernel_clock(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, float]]:
    calls: list[tuple[int, float]] = []
    monkeypatch.setattr(
        time, "clock_settime", lambda which, seconds: calls.append((which, seconds))
    )
    return calls


def fake_hwclock(tmp_path: Path, body: str) -> str:
    script = tmp_path / "hwclock"
    script.write_text(f'#!/bin/sh\necho "$@" > {tmp_path}/args\n{body}\n')
    script.chmod(0o755)
    return str(script)


def test_set_system_time_sets_both_clocks(
    tmp_path: Path, kernel_clock: list[tuple[int, float]]
) -> None:
    assert set_system_time(WHEN, (fake_hwclock(tmp_path, "exit 0"),)) is None
    assert kernel_clock == [(time.CLOCK_REALTIME, WHEN.timestamp())]
    assert (tmp_path / "args").read_text() == "-w -u\n"


def test_busybox_applet_form(tmp_path: Path, kernel_clock: list[tuple[int, float]]) -> None:
    assert set_system_time(WHEN, (fake_hwclock(tmp_path, "exit 0"), "hwclock")) is None
    assert (tmp_path / "args").read_text() == "hwclock -w -u\n"


def test_missing_hwclock_sets_the_clock_until_power_off(
    tmp_path: Path, kernel_clock: list[tuple[int, float]]
) -> None:
    warning = set_system_time(WHEN, (str(tmp_path / "no-such-hwclock"), "hwclock"))
    assert warning is not None
    assert "only until power-off" in warning and "not in this image" in warning
    assert len(kernel_clock) == 1


def test_failing_hwclock_is_reported(tmp_path: Path, kernel_clock: list[tuple[int, float]]) -> None:
    script = fake_hwclock(tmp_path, "echo \"hwclock: can't open '/dev/misc/rtc'\" >&2; exit 1")
    warning = set_system_time(WHEN, (script,))
    assert warning is not None
    assert "only until power-off" in warning and "can't open '/dev/misc/rtc'" in warning


def test_kernel_clock_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(which: int, seconds: float) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(time, "clock_settime", refuse)
    with pytest.raises(ClockError, match=r"Operation not permitted.*not changed"):
        set_system_time(WHEN, (fake_hwclock(tmp_path, "exit 0"),))
    assert not (tmp_path / "args").exists()  # the RTC is not touched either


def test_naive_time_is_refused(kernel_clock: list[tuple[int, float]]) -> None:
    with pytest.raises(ClockError, match="without a time zone"):
        set_system_time(datetime(2026, 3, 14), (os.devnull,))
    assert kernel_clock == []
