"""run_ui: the loop in the main thread, the machine in a worker, the answers between.

Most tests use FakeScreen, a terminal with no tty that records each screen drawn
and types each step's keys once its text is shown; one test runs on a real pty.
"""

from __future__ import annotations

import os
import select
import signal
import termios
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import pyte
import pytest
import urwid
import urwid.display_common
import urwid.raw_display

from runtime.state.view import Choice, Menu, Page, Progress, Prompt, Ui
from runtime.ui import UiClosed, prepare_console, run_ui
from runtime.ui import bridge as bridge_module
from runtime.ui.bridge import Bridge
from runtime.ui.views import Done

MAIN = Menu(
    title="qemu-swtpm | heads-runtime Boot Menu",
    body=("TOTP: 123456",),
    choices=(
        Choice("d", "Default boot", "default-boot"),
        Choice("o", "Options -->", "options"),
        Choice("p", "Power Off", "power-off"),
    ),
)
XY = Menu("Last question", (), (Choice("x", "Ex", "x-event"), Choice("y", "Why", "y-event")))
WATCHDOG_SECONDS = 10.0
Step = tuple[str, Sequence[str]]


class FakeScreen(urwid.display_common.BaseScreen):  # type: ignore[misc]
    """Records every screen drawn as text; once a step's text is on the screen,
    types its keys (from the loop's thread, as real input arrives). Gives up
    with TimeoutError after WATCHDOG_SECONDS so a test fails instead of hanging."""

    def __init__(
        self,
        script: Sequence[Step] = (),
        size: tuple[int, int] = (80, 24),
        fail_on_draw: str | None = None,
    ) -> None:
        super().__init__()
        self.size = size
        self.script = list(script)
        self.frames: list[list[str]] = []
        self.stops = 0
        self.typed_steps = 0
        self._fail_on_draw = fail_on_draw
        self._typed = threading.Condition()
        self._event_loop: Any = None
        self._callback: Callable[[list[str], list[int]], None] | None = None
        self._watchdog: Any = None

    def get_cols_rows(self) -> tuple[int, int]:
        return self.size

    def hook_event_loop(self, event_loop: Any, callback: Any) -> None:
        self._event_loop, self._callback = event_loop, callback
        self._watchdog = event_loop.alarm(WATCHDOG_SECONDS, self._give_up)

    def unhook_event_loop(self, event_loop: Any) -> None:
        if self._watchdog is not None:
            event_loop.remove_alarm(self._watchdog)
            self._watchdog = None

    def draw_screen(self, size: tuple[int, int], canvas: Any) -> None:
        lines = [line.decode() for line in canvas.text]
        if self._fail_on_draw is not None and any(self._fail_on_draw in line for line in lines):
            raise RuntimeError("the terminal went away")
        self.frames.append(lines)
        if self.script and any(self.script[0][0] in line for line in lines):
            keys = list(self.script.pop(0)[1])
            self._event_loop.alarm(0, lambda: self._type(keys))

    def clear(self) -> None:
        pass

    def _stop(self) -> None:
        self.stops += 1
        super()._stop()

    def _type(self, keys: list[str]) -> None:
        assert self._callback is not None
        self._callback(keys, [])
        with self._typed:
            self.typed_steps += 1
            self._typed.notify_all()

    def wait_typed(self, steps: int) -> None:
        """From the machine's thread: until ``steps`` steps' keys have been handled."""
        with self._typed:
            assert self._typed.wait_for(lambda: self.typed_steps >= steps, WATCHDOG_SECONDS)

    def _give_up(self) -> None:
        waiting = repr(self.script[0][0]) if self.script else "(script finished)"
        last = "\n".join(self.frames[-1]) if self.frames else "(nothing drawn)"
        raise TimeoutError(f"still waiting for {waiting}; the screen shows:\n{last}")

    def shown(self, text: str) -> bool:
        return any(text in line for frame in self.frames for line in frame)


def test_a_session_choose_ask_show_progress() -> None:
    screen = FakeScreen(
        [
            ("Default boot", ["down"]),
            ("> o  Options -->", ["enter"]),
            ("Passphrase:", [*"s3cret"]),
            ("Passphrase: ******", ["enter"]),
            ("All PCRs match", ["q"]),
            ("Rebooting...", ["x", "enter", "y"]),  # typed during progress: dropped
            ("> x  Ex", ["y"]),
        ]
    )

    def machine(ui: Ui) -> dict[str, object]:
        seen: dict[str, object] = {"unicode": ui.unicode}
        seen["choice"] = ui.choose(MAIN)
        seen["secret"] = ui.ask(Prompt("Owner passphrase", (), "Passphrase", secret=True))
        ui.show(Page("Report", ("All PCRs match.",)))
        ui.progress(Progress("Rebooting", "Rebooting..."))
        screen.wait_typed(6)
        seen["after"] = ui.choose(XY)
        return seen

    seen = run_ui(machine, screen=screen, unicode=False)
    assert seen == {
        "unicode": False,
        "choice": "options",
        "secret": bytearray(b"s3cret"),
        "after": "y-event",
    }
    assert isinstance(seen["secret"], bytearray)
    assert not screen.shown("s3cret") and screen.shown("Passphrase: ******")
    assert not screen.started and screen.stops >= 1
    assert screen.script == []


def test_a_key_typed_while_a_step_runs_does_not_act_on_the_next_screen() -> None:
    # No waiting here: the key may arrive during the progress or just after the
    # menu is put up but before it is drawn; it is dropped either way.
    screen = FakeScreen([("Working", ["d"]), ("Default boot", ["p"])])

    def machine(ui: Ui) -> str:
        ui.progress(Progress("Working", "Working..."))
        screen.wait_typed(1)
        return ui.choose(MAIN)

    assert run_ui(machine, screen=screen) == "power-off"


def test_countdown_and_live_lines_in_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bridge_module, "TICK_SECONDS", 0.05)
    calls = iter(range(100))

    def live() -> tuple[str, ...]:
        n = next(calls)
        if n == 2:
            raise OSError("TPM busy")
        return (f"live {n}",)

    menu = Menu(
        "Automatic boot", (), MAIN.choices, live=live, timeout=4, timeout_event="default-boot"
    )
    screen = FakeScreen()
    assert run_ui(lambda ui: ui.choose(menu), screen=screen) == "default-boot"
    for text in ("in 4 s", "in 3 s", "in 1 s", "live 0", "live 1", "(unavailable)", "live 3"):
        assert screen.shown(text), text


def test_an_exception_in_the_machine_is_raised_by_run_ui_and_the_screen_stopped() -> None:
    screen = FakeScreen([("Default boot", ["d"])])

    def machine(ui: Ui) -> None:
        ui.choose(MAIN)
        raise ValueError("the machine broke")

    with pytest.raises(ValueError, match="the machine broke"):
        run_ui(machine, screen=screen)
    assert not screen.started and screen.stops >= 1


def test_a_wrong_description_is_a_type_error_in_the_machine() -> None:
    with pytest.raises(TypeError):
        run_ui(lambda ui: ui.progress(MAIN), screen=FakeScreen())  # type: ignore[arg-type]


def test_when_the_loop_fails_run_ui_raises_and_the_machine_gets_ui_closed() -> None:
    screen = FakeScreen(fail_on_draw="Default boot")  # the first draw of the menu
    machine_saw: list[BaseException] = []

    def machine(ui: Ui) -> str:
        try:
            return ui.choose(MAIN)
        except UiClosed as err:
            machine_saw.append(err)
            raise

    with pytest.raises(RuntimeError, match="the terminal went away"):
        run_ui(machine, screen=screen)
    assert len(machine_saw) == 1
    assert not screen.started


# --- the bridge alone, with a loop that is driven by hand ---------------------------


class HandLoop:
    """What Bridge uses of MainLoop; the test runs its callbacks."""

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()
        self.on_wake: Callable[[bytes], bool] | None = None
        self.alarms: list[Any] = []

    def watch_pipe(self, callback: Callable[[bytes], bool]) -> int:
        self.on_wake = callback
        return self.write_fd

    def remove_watch_pipe(self, fd: int) -> bool:
        os.close(self.read_fd)
        return True

    def set_alarm_in(self, seconds: float, callback: Any) -> Any:
        self.alarms.append(callback)
        return callback

    def remove_alarm(self, handle: Any) -> bool:
        self.alarms.remove(handle)
        return True

    def wake(self) -> None:
        assert os.read(self.read_fd, 1) == b"!"  # blocks until the machine has sent
        assert self.on_wake is not None
        self.on_wake(b"!")


def test_keys_reach_a_screen_only_once_it_has_been_drawn() -> None:
    bridge, loop = Bridge(), HandLoop()
    bridge.attach(loop)
    answers: list[Done] = []
    machine = threading.Thread(target=lambda: answers.append(bridge.call(MAIN)))
    machine.start()
    loop.wake()
    bridge.root.keypress((80, 24), "p")  # before the menu is drawn: dropped
    machine.join(0.1)
    assert machine.is_alive() and not answers
    bridge.drawn()
    bridge.root.keypress((80, 24), "p")
    machine.join(WATCHDOG_SECONDS)
    assert answers == [Done("power-off")]
    bridge.root.keypress((80, 24), "d")  # answered: nothing waits for a key now
    bridge.close()
    late: list[BaseException] = []

    def call_late() -> None:
        try:
            bridge.call(MAIN)
        except UiClosed as err:
            late.append(err)

    thread = threading.Thread(target=call_late)
    thread.start()
    thread.join(WATCHDOG_SECONDS)
    assert len(late) == 1
    bridge.detach(writers_done=True)


def test_a_ui_call_from_the_loop_thread_is_refused() -> None:
    bridge, loop = Bridge(), HandLoop()
    bridge.attach(loop)
    with pytest.raises(RuntimeError, match="own thread"):
        bridge.call(MAIN)
    bridge.detach(writers_done=True)


# --- on a real terminal --------------------------------------------------------------

STEP_TIMEOUT = 10.0
PtyScript = list[tuple[str, bytes]]


class PtyTerminal:
    """A pty whose far end is read into pyte by a thread, which types as the screen
    asks, as the end-to-end tests do over the serial line. A step that times out
    interrupts the main thread (SIGINT), so the test fails instead of hanging."""

    def __init__(self, script: PtyScript) -> None:
        self.master, self.slave = os.openpty()
        prepare_console(self.slave, 80, 24)
        self.display = pyte.Screen(80, 24)
        self.timed_out: str | None = None
        self.snapshots: dict[str, list[tuple[str, bool]]] = {}
        self._stream = pyte.ByteStream(self.display)
        self._script = list(script)
        self._main = threading.main_thread().ident
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def shows(self, text: str) -> bool:
        return any(text in line for line in self.display.display)

    def _drain(self) -> None:
        deadline = time.monotonic() + STEP_TIMEOUT
        while True:
            ready, _, _ = select.select([self.master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(self.master, 4096)
                except OSError:  # EIO once the slave side is closed
                    return
                self._stream.feed(chunk)
            if self._script and self.shows(self._script[0][0]):
                text, keys = self._script.pop(0)
                self.snapshots[text] = [
                    (line.rstrip(), self.display.buffer[row][0].reverse)
                    for row, line in enumerate(self.display.display)
                ]
                os.write(self.master, keys)
                deadline = time.monotonic() + STEP_TIMEOUT
            elif self._script and time.monotonic() > deadline:
                self.timed_out = self._script[0][0]
                self._script.clear()
                assert self._main is not None
                signal.pthread_kill(self._main, signal.SIGINT)

    def close(self) -> None:
        os.close(self.slave)
        self._thread.join(STEP_TIMEOUT)
        os.close(self.master)


def test_run_ui_on_a_pty(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERM", "linux")
    term = PtyTerminal(
        [
            ("Up/Down and Enter", b"\x1b[B"),  # Down
            ("> o  Options -->", b"\r"),
            ("Passphrase:", b"pw"),
            ("Passphrase: **", b"\r"),
        ]
    )

    def machine(ui: Ui) -> tuple[str, str | bytearray | None]:
        return ui.choose(MAIN), ui.ask(Prompt("Owner passphrase", (), "Passphrase", secret=True))

    before = termios.tcgetattr(term.slave)
    try:
        with open(term.slave, "w", encoding="utf-8", closefd=False) as tty:
            result = run_ui(machine, screen=urwid.raw_display.Screen(input=tty, output=tty))
    except KeyboardInterrupt:
        result = None
    after = termios.tcgetattr(term.slave)
    term.close()
    assert term.timed_out is None, f"never shown: {term.timed_out!r}"
    assert result == ("options", bytearray(b"pw"))
    assert after == before  # cooked mode and echo are back
    rows = term.snapshots["> o  Options -->"]
    assert rows[0][0] == MAIN.title
    focused = [reverse for line, reverse in rows if line.startswith("> o")]
    assert focused == [True]
    assert not any(reverse for line, reverse in rows if line.startswith("  d"))
    assert not any("pw" in line for line, _ in term.snapshots["Passphrase: **"])


def test_a_progress_screen_with_live_lines_ticks_until_the_next_screen(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(bridge_module, "TICK_SECONDS", 0.05)
    calls = iter(range(1000))
    screen = FakeScreen([("Default boot", ["p"])])

    def machine(ui: Ui) -> str:
        ui.progress(Progress("Measuring", "Loading drivers...", live=lambda: (f"n {next(calls)}",)))
        time.sleep(0.5)  # the step runs; the UI thread keeps the line fresh
        return ui.choose(MAIN)

    assert run_ui(machine, screen=screen) == "power-off"
    assert screen.shown("n 0") and screen.shown("n 3")
