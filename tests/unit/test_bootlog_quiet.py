"""The stage log keeps the console quiet unless the kernel command line asks
for the trace or the owner's settings ask for a console level
(CONFIG_QUIET_MODE=n, CONFIG_DEBUG_OUTPUT=y): every line still reaches the log
file, none is dumped on the console after the UI when quiet, and a crash
still says so in plain words.
The harness that reads the trace puts the word on the command line, and its
PCR 9 predictions use that same command line."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runtime import bootlog
from tests.conftest import REPO_ROOT
from tools import board_console
from tools.qemu_board import BoardFiles, BoardInstance, kernel_cmdline

BASE = "console=ttyS0,115200 quiet panic=-1"


@pytest.fixture
def log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh stage log in a temporary file; the command line still unread."""
    path = tmp_path / "runtime.log"
    monkeypatch.setattr(bootlog, "LOG_PATH", str(path))
    monkeypatch.setattr(bootlog, "CMDLINE_PATH", str(tmp_path / "cmdline"))
    monkeypatch.setattr(bootlog, "_trace", None)
    monkeypatch.setattr(bootlog, "_echo", True)
    monkeypatch.setattr(bootlog, "_lines", [])
    monkeypatch.setattr(bootlog, "_echoed", 0)
    monkeypatch.setattr(bootlog, "_level", bootlog.ConsoleLevel.QUIET)
    yield path


def cmdline(log: Path, text: str) -> None:
    (log.parent / "cmdline").write_text(text + "\n")


def logged(log: Path) -> list[str]:
    return log.read_text().splitlines()


def test_quiet_by_default(log: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cmdline(log, BASE)
    bootlog.stage("python-started")
    bootlog.stage("pcr", index=9, sha256="ab" * 32)
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""
    assert [line.split(" stage=")[1] for line in logged(log)] == [
        "python-started",
        f"pcr index=9 sha256={'ab' * 32}",
    ]
    assert all(line.startswith("runtime: t=") for line in logged(log))


def test_without_a_readable_command_line_it_stays_quiet(
    log: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bootlog.stage("python-started")  # no cmdline file at all
    assert capsys.readouterr().err == ""
    assert len(logged(log)) == 1


@pytest.mark.parametrize(
    "text", [f"{BASE} runtime.tracer", f"{BASE} noruntime.trace", f"{BASE} runtime.trace=0x"]
)
def test_only_the_whole_word_turns_the_trace_on(
    log: Path, capsys: pytest.CaptureFixture[str], text: str
) -> None:
    cmdline(log, text)
    bootlog.stage("python-started")
    assert capsys.readouterr().err == ""


def test_the_trace_word_puts_the_lines_on_the_console(
    log: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cmdline(log, f"{BASE} {bootlog.TRACE_PARAM}")
    bootlog.stage("python-started")
    bootlog.stage("imports-ui")
    assert capsys.readouterr().err.splitlines() == logged(log)


def test_the_command_line_is_read_once(log: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cmdline(log, BASE)
    bootlog.stage("python-started")
    cmdline(log, f"{BASE} {bootlog.TRACE_PARAM}")  # too late: already read
    bootlog.stage("imports-ui")
    assert capsys.readouterr().err == ""


def test_quiet_nothing_is_dumped_after_the_ui(
    log: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cmdline(log, BASE)
    bootlog.stage("ui-up")
    bootlog.echo_to_console(False)
    for n in range(140):
        bootlog.stage("state", n=n)
    bootlog.echo_to_console(True)
    bootlog.stage("final", state="recovery")
    assert capsys.readouterr().err == ""
    assert len(logged(log)) == 142  # the log file still has every line


def test_traced_the_lines_of_the_ui_wait_for_its_end(
    log: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cmdline(log, f"{bootlog.TRACE_PARAM} {BASE}")
    bootlog.stage("ui-up")
    bootlog.echo_to_console(False)
    assert len(capsys.readouterr().err.splitlines()) == 1
    bootlog.stage("pcr", index=4, sha256="00" * 32)
    assert capsys.readouterr().err == ""  # the UI owns the screen
    bootlog.echo_to_console(True)
    bootlog.stage("final", state="power-off")
    assert capsys.readouterr().err.splitlines() == logged(log)[1:]


def test_a_crash_is_said_in_plain_words_even_when_quiet(
    log: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cmdline(log, BASE)
    try:
        raise ValueError("bad thing")
    except ValueError as err:
        bootlog.report_crash(err)
    console = capsys.readouterr().err
    assert "The runtime stopped on an internal error (ValueError: bad thing)" in console
    assert str(log) in console and "Traceback" not in console
    assert "Traceback" in log.read_text()


def _startup_main(monkeypatch: pytest.MonkeyPatch) -> int:
    """runtime.state.startup.main with a fake UI and state machine: the UI
    comes up, one state is logged while it runs, the user chose recovery."""
    from runtime import ui
    from runtime.state import driver, startup
    from runtime.state.machine import State

    def fake_run(ctx: Any, on_state: Any = None) -> State:
        bootlog.stage("state", at="menu")
        return State.RECOVERY

    class FirstScreenUi:
        def progress(self, progress: Any) -> None:
            pass

    def fake_run_ui(machine: Any, columns: int, rows: int) -> State:
        result: State = machine(FirstScreenUi())
        return result

    monkeypatch.setattr(signal, "signal", lambda *_: None)
    monkeypatch.setattr(startup, "_console_size", lambda: (80, 24))
    monkeypatch.setattr(driver, "run", fake_run)
    monkeypatch.setattr(ui, "run_ui", fake_run_ui)
    return startup.main()


def test_leaving_the_menu_for_recovery_prints_nothing_when_quiet(
    log: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from runtime.state import startup

    cmdline(log, BASE)
    assert _startup_main(monkeypatch) == startup.RECOVERY_EXIT
    assert capsys.readouterr().err == ""
    stages = [line.split(" stage=")[1].split()[0] for line in logged(log)]
    assert stages == [
        "imports-ui",
        "recovery-window-closed",
        "ui-up",
        "imports-machine",
        "state",
        "final",
    ]


def test_leaving_the_menu_traced_prints_the_held_lines(
    log: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cmdline(log, f"{BASE} {bootlog.TRACE_PARAM}")
    _startup_main(monkeypatch)
    assert capsys.readouterr().err.splitlines() == logged(log)


def test_init_reads_the_same_word() -> None:
    """/init prints its own stage line under the same switch as the runtime."""
    init = (REPO_ROOT / "initrd_overlay" / "init").read_text()
    assert f'*" {bootlog.TRACE_PARAM} "*) trace=1' in init
    stage_echo = init.index('echo "init: stage=init uptime=')
    assert init.rfind('if [ -n "$trace" ]; then', 0, stage_echo) != -1
    assert init.count("init: stage=init") == 1


def _files(cmdline: str) -> BoardFiles:
    return BoardFiles(
        Path("vmlinuz"),
        Path("code"),
        Path("vars"),
        cmdline,
        {"machine": "q35", "memory_mib": 512, "cpus": 1, "tpm_device": "tpm-crb"},
    )


def test_the_user_s_boot_is_quiet_and_the_harness_boot_traces(tmp_path: Path) -> None:
    files = _files(BASE)
    user = BoardInstance("qemu-swtpm", tmp_path, tmp_path / "initrd")
    harness = BoardInstance(
        "qemu-swtpm", tmp_path, tmp_path / "initrd", trace=board_console.HARNESS_TRACE
    )
    assert user.kernel_cmdline(files) == BASE
    assert harness.kernel_cmdline(files) == f"{BASE} {bootlog.TRACE_PARAM}"
    command = harness.qemu_command(files)
    assert command[command.index("-append") + 1] == harness.kernel_cmdline(files)
    harness.extra_cmdline = "runtime.importtime"
    assert harness.kernel_cmdline(files).split() == [
        *BASE.split(),
        bootlog.TRACE_PARAM,
        "runtime.importtime",
    ]


def test_pcr9_predictions_use_the_harness_command_line() -> None:
    """tests/e2e's board_cmdline fixture is harness_cmdline: the one boot() passes."""
    from tools.boards import load_board_table

    base = str(load_board_table("qemu-swtpm")["kernel"]["cmdline"])
    assert board_console.harness_cmdline("qemu-swtpm") == kernel_cmdline(base, trace=True)
    assert kernel_cmdline(base) == base  # tools/run and provision_board without --trace


# --- the owner's settings: CONFIG_QUIET_MODE and CONFIG_DEBUG_OUTPUT ----------


def _level_of(text: str) -> bootlog.ConsoleLevel:
    """The console level DevicePlatform.start sets from the settings."""
    from runtime.config import Settings
    from runtime.state.platform_start import console_level

    quiet, debug = text.split()
    return console_level(Settings({"CONFIG_QUIET_MODE": quiet, "CONFIG_DEBUG_OUTPUT": debug}))


@pytest.mark.parametrize(
    ("settings", "level"),
    [
        ("y n", bootlog.ConsoleLevel.QUIET),
        ("n n", bootlog.ConsoleLevel.STAGES),
        ("y y", bootlog.ConsoleLevel.DEBUG),
        ("n y", bootlog.ConsoleLevel.DEBUG),
    ],
)
def test_the_settings_choose_the_console_level(settings: str, level: bootlog.ConsoleLevel) -> None:
    assert _level_of(settings) is level


def test_quiet_mode_off_shows_the_stages_not_the_details(
    log: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from runtime import error_detail

    cmdline(log, BASE)
    bootlog.stage("python-started")  # before the settings are read: held
    assert capsys.readouterr().err == ""
    bootlog.set_console_level(_level_of("n n"))
    error_detail.detail("sign-boot", "gpg exited with status 2")
    bootlog.stage("imports-ui")
    console = capsys.readouterr().err.splitlines()
    assert [line.split(" stage=")[1] for line in console] == ["python-started", "imports-ui"]
    assert "detail sign-boot: gpg exited with status 2" in log.read_text()


def test_debug_output_shows_the_details_too_after_the_ui(
    log: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from runtime import error_detail

    cmdline(log, BASE)
    bootlog.set_console_level(_level_of("y y"))
    bootlog.echo_to_console(False)  # the UI owns the screen
    error_detail.detail("sign-boot", "gpg exited with status 2")
    assert capsys.readouterr().err == ""
    bootlog.echo_to_console(True)
    console = capsys.readouterr().err
    assert "detail sign-boot: gpg exited with status 2" in console


def test_quiet_mode_keeps_details_off_the_console(
    log: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from runtime import error_detail

    cmdline(log, BASE)
    bootlog.set_console_level(_level_of("y n"))
    error_detail.detail("sign-boot", "gpg exited with status 2")
    bootlog.stage("final")
    assert capsys.readouterr().err == ""
    assert len(logged(log)) == 2
