"""Before the machine powers off, reboots or hands over to the loaded kernel,
the runtime shuts the TPM down in order (issue 15); never before the recovery
gate, which uses the TPM next. Errors there are logged, never fatal."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tpm2_pytss import TSS2_Exception

from runtime import bootlog
from runtime.devices import power
from runtime.state import startup
from runtime.state.device_platform import DevicePlatform
from runtime.state.machine import State
from runtime.tpm.connection import Tpm
from runtime.tpm.power_state import orderly_shutdown
from tests.fakes_platform import FakePlatform

#: a TCTI I/O failure: the TPM does not answer
TCTI_IO_ERROR = 0x000A000A


@pytest.fixture(autouse=True)
def log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    path = tmp_path / "runtime.log"
    monkeypatch.setattr(bootlog, "LOG_PATH", str(path))
    monkeypatch.setattr(bootlog, "_lines", [])
    yield path


@pytest.fixture
def platform(monkeypatch: pytest.MonkeyPatch) -> FakePlatform:
    """A fake platform whose calls list also records the power calls, in order."""
    fake = FakePlatform()
    monkeypatch.setattr(power, "reboot", lambda: fake.calls.append("reboot"))
    monkeypatch.setattr(power, "power_off", lambda: fake.calls.append("power_off"))
    return fake


@pytest.mark.parametrize(
    ("final", "status", "calls"),
    [
        (State.POWER_OFF, 0, ["before_power_change", "power_off"]),
        (State.REBOOT, 0, ["before_power_change", "reboot"]),
        (State.HANDOVER, startup.HANDOVER_EXIT, ["before_power_change"]),
        (State.RECOVERY, startup.RECOVERY_EXIT, []),
    ],
)
def test_the_tpm_is_shut_down_before_each_power_change_but_not_for_recovery(
    platform: FakePlatform, final: State, status: int, calls: list[str]
) -> None:
    assert startup.leave(final, platform) == status
    assert platform.calls == calls


@pytest.mark.parametrize(
    ("final", "status", "calls"),
    [
        (State.REBOOT, 0, ["before_power_change", "reboot"]),
        (State.HANDOVER, startup.HANDOVER_EXIT, ["before_power_change"]),
        (State.RECOVERY, startup.RECOVERY_EXIT, []),
    ],
)
def test_main_leaves_through_the_platform_the_machine_ran_on(
    platform: FakePlatform,
    monkeypatch: pytest.MonkeyPatch,
    final: State,
    status: int,
    calls: list[str],
) -> None:
    import signal

    from runtime import ui
    from runtime.state import device_platform, driver

    ran_on: list[object] = []
    order: list[str] = []

    class FirstScreenUi:
        def progress(self, progress: Any) -> None:
            order.append(f"screen {progress.title}")

    def made() -> FakePlatform:
        order.append("platform")
        return platform

    def fake_run(ctx: Any, on_state: Any = None) -> State:
        ran_on.append(ctx.platform)
        return final

    def fake_run_ui(machine: Any, columns: int, rows: int) -> State:
        result: State = machine(FirstScreenUi())
        return result

    monkeypatch.setattr(signal, "signal", lambda *_: None)
    monkeypatch.setattr(startup, "_console_size", lambda: (80, 24))
    monkeypatch.setattr(device_platform, "DevicePlatform", made)
    monkeypatch.setattr(driver, "run", fake_run)
    monkeypatch.setattr(ui, "run_ui", fake_run_ui)
    assert startup.main() == status
    assert ran_on == [platform]
    assert platform.calls == calls
    # the first screen is up before the state machine's side is made
    assert order == ["screen Starting", "platform"]


class _Esapi:
    def __init__(self, fails: bool) -> None:
        self.fails = fails
        self.commands: list[str] = []

    def shutdown(self, shutdown_type: int) -> None:
        self.commands.append(f"shutdown {shutdown_type}")
        if self.fails:
            raise TSS2_Exception(TCTI_IO_ERROR)

    def close(self) -> None:
        self.commands.append("close")


class _Tpm:
    """What orderly_shutdown and DevicePlatform use of a Tpm, recorded."""

    def __init__(self, fails: bool = False) -> None:
        self.esapi = _Esapi(fails)

    def flush_sessions(self) -> None:
        self.esapi.commands.append("flush_sessions")

    def close(self) -> None:
        self.esapi.close()


def _as_tpm(stub: _Tpm) -> Tpm:
    return stub  # type: ignore[return-value]


def test_sessions_are_flushed_before_the_shutdown(log: Path) -> None:
    stub = _Tpm()
    line = orderly_shutdown(_as_tpm(stub))
    assert stub.esapi.commands == ["flush_sessions", "shutdown clear"]
    assert "TPM2_Shutdown(CLEAR)" in line
    assert "stage=tpm-shutdown orderly=True" in log.read_text()


def test_a_failed_shutdown_is_logged_not_raised(log: Path) -> None:
    line = orderly_shutdown(_as_tpm(_Tpm(fails=True)))
    assert line.startswith("TPM2_Shutdown(CLEAR) failed:")
    text = log.read_text()
    assert "stage=tpm-shutdown orderly=False" in text
    assert "detail tpm-shutdown:" in text


def test_the_device_platform_shuts_down_closes_and_forgets_its_tpm() -> None:
    stub = _Tpm()
    platform = DevicePlatform()
    platform.tpm = _as_tpm(stub)
    platform.before_power_change()
    assert platform.tpm is None  # nothing after it finds a TPM to use
    assert stub.esapi.commands == ["flush_sessions", "shutdown clear", "close"]
    platform.before_power_change()  # a second call: nothing more is sent
    assert stub.esapi.commands == ["flush_sessions", "shutdown clear", "close"]


def test_the_device_platform_without_a_tpm_does_nothing() -> None:
    DevicePlatform().before_power_change()
