"""The memory figures read from this machine's /proc, and a /proc that cannot
be read giving nothing rather than an error."""

from __future__ import annotations

import pytest

from runtime.devices import memory_use


def test_the_figures_of_this_machine_are_plausible() -> None:
    fields = memory_use.meminfo_kib()
    assert fields["MemTotal"] >= fields["MemAvailable"] > 0
    assert 0 < memory_use.guest_memory_used_kib() <= fields["MemTotal"]
    assert memory_use.peak_rss_kib() > 0


def test_an_unreadable_proc_gives_no_figures(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory_use, "MEMINFO", "/nonexistent/meminfo")
    monkeypatch.setattr(memory_use, "SELF_STATUS", "/nonexistent/status")
    assert memory_use.meminfo_kib() == {}
    assert memory_use.guest_memory_used_kib() == 0
    assert memory_use.peak_rss_kib() == 0
