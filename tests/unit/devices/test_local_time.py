"""CONFIG_TIME_ZONE: the clock on screen in the owner's zone, from a POSIX TZ
rule (no zone database in the image); nothing else in the process changes."""

from __future__ import annotations

import calendar
import os
import time
from pathlib import Path

import pytest

from runtime.config import Settings
from runtime.devices.local_time import local_time_text

SUMMER = calendar.timegm((2026, 7, 1, 12, 0, 0))
WINTER = calendar.timegm((2026, 1, 15, 12, 0, 0))


@pytest.mark.parametrize(
    ("zone", "when", "shown"),
    [
        ("UTC", SUMMER, "2026-07-01 12:00:00 UTC"),
        ("UTC0", SUMMER, "2026-07-01 12:00:00 UTC"),
        ("CET-1CEST,M3.5.0,M10.5.0/3", SUMMER, "2026-07-01 14:00:00 CEST"),
        ("CET-1CEST,M3.5.0,M10.5.0/3", WINTER, "2026-01-15 13:00:00 CET"),
        ("EST5EDT,M3.2.0,M11.1.0", SUMMER, "2026-07-01 08:00:00 EDT"),
        ("<+0530>-5:30", WINTER, "2026-01-15 17:30:00 +0530"),
        ("JST-9", WINTER, "2026-01-15 21:00:00 JST"),
    ],
)
def test_the_clock_in_the_zone(zone: str, when: float, shown: str) -> None:
    assert Settings({"CONFIG_TIME_ZONE": zone}).time_zone == zone  # a valid setting
    assert local_time_text(zone, when) == shown


def test_the_process_zone_is_put_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TZ", raising=False)
    time.tzset()
    before = time.localtime(SUMMER)
    local_time_text("JST-9", SUMMER)
    assert "TZ" not in os.environ and time.localtime(SUMMER) == before
    monkeypatch.setenv("TZ", "EST5EDT,M3.2.0,M11.1.0")
    local_time_text("JST-9", SUMMER)
    assert os.environ["TZ"] == "EST5EDT,M3.2.0,M11.1.0"
    assert time.localtime(SUMMER).tm_hour == 8
    monkeypatch.delenv("TZ")
    time.tzset()


@pytest.mark.parametrize(
    "zone",
    ["CET-1CEST,J60,J300", "CET-1CEST,0,365", "CET-1CEST,M12.5.6/2,M1.1.0", "CET-1CEST,59,300/-2"],
)
def test_rules_at_the_edges_of_the_ranges_are_accepted(zone: str) -> None:
    assert Settings({"CONFIG_TIME_ZONE": zone}).time_zone == zone
    assert local_time_text(zone, SUMMER).startswith("2026-07-01")


def test_no_zone_file_is_opened(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A file named as the rule under TZDIR would win over the rule itself."""
    zone_dir = tmp_path / "zoneinfo"
    (zone_dir / "JST-9").parent.mkdir(parents=True)
    (zone_dir / "JST-9").write_bytes(
        Path("/usr/share/zoneinfo/UTC").read_bytes()
        if Path("/usr/share/zoneinfo/UTC").exists()
        else b""
    )
    monkeypatch.setenv("TZDIR", str(zone_dir))
    assert local_time_text("JST-9", WINTER) == "2026-01-15 21:00:00 JST"
    assert os.environ["TZDIR"] == str(zone_dir)


def test_the_device_platform_shows_the_settings_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    from runtime.config import LoadedSettings
    from runtime.state.device_platform import DevicePlatform

    platform = DevicePlatform()
    assert platform.now_text().endswith(" UTC")  # settings not read yet
    platform.loaded = LoadedSettings(Settings({"CONFIG_TIME_ZONE": "JST-9"}), [], {})
    monkeypatch.setattr(time, "time", lambda: WINTER)
    assert platform.now_text() == "2026-01-15 21:00:00 JST"
