"""The QEMU console driver starts one machine per Boot, however it is entered:
two machines on one TPM state race for swtpm's socket (a flaky boot)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest

from tools.board_console import Boot


@dataclass
class FakeInstance:
    """Stands in for BoardInstance: counts TPM starts, runs `sleep` as the machine."""

    swtpm_starts: int = 0
    swtpm_stops: int = 0
    commands: list[list[str]] = field(default_factory=list)

    def prepare(self, files: object) -> None:
        pass

    def start_swtpm(self) -> None:
        self.swtpm_starts += 1

    def stop_swtpm(self) -> None:
        self.swtpm_stops += 1

    def qemu_command(self, files: object) -> list[str]:
        self.commands.append(["sleep", "30"])
        return self.commands[-1]


def _boot(instance: FakeInstance) -> Boot:
    return Boot(cast(Any, instance), cast(Any, Path("/nonexistent")))


def test_entering_a_started_boot_does_not_start_a_second_machine() -> None:
    instance = FakeInstance()
    with _boot(instance).start() as running:
        assert running.child is not None and running.child.isalive()
    assert instance.swtpm_starts == 1 and len(instance.commands) == 1
    assert instance.swtpm_stops == 1


def test_entering_starts_a_boot_that_was_not_started() -> None:
    instance = FakeInstance()
    with _boot(instance):
        pass
    assert instance.swtpm_starts == 1


def test_starting_a_running_machine_again_is_refused() -> None:
    instance = FakeInstance()
    running = _boot(instance).start()
    try:
        with pytest.raises(RuntimeError, match="already running"):
            running.start()
    finally:
        running.close()
    running.start()  # after power off, the same machine may start again
    running.close()
    assert instance.swtpm_starts == 2
