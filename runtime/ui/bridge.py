"""run_ui(): one urwid loop in the main thread for the whole session, the boot
state machine in a worker thread, and the Ui between them.

urwid is not thread-safe, so every widget is made and changed in the loop's
thread. A Ui call from the machine puts its description on a queue, wakes the
loop through a pipe (MainLoop.watch_pipe) and waits on a second queue for the
answer. The loop shows the description as a view and sends back what the user
did. Keys reach a view only once it has been drawn and while it waits for an
answer: one typed during a long step (or before the screen was up) never acts
on the next screen.
"""

from __future__ import annotations

import contextlib
import os
import queue
import sys
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar, cast

import urwid
import urwid.raw_display

from runtime.state.view import Menu, Page, Progress, Prompt, Ui
from runtime.ui.console import detect_unicode, ensure_term_env, prepare_console
from runtime.ui.menu_view import MenuView
from runtime.ui.prompt_view import PromptView
from runtime.ui.views import Done, PageView, ProgressView, View
from runtime.ui.widgets import PALETTE

T = TypeVar("T")
Description = Menu | Prompt | Page | Progress

#: The size given to a console that reports none (a serial line).
DEFAULT_COLUMNS = 80
DEFAULT_ROWS = 24
#: How often live lines and countdowns are updated (tests make it shorter).
TICK_SECONDS = 1.0
#: How long run_ui waits for the machine's thread once the loop has ended.
JOIN_SECONDS = 2.0


class UiClosed(RuntimeError):
    """The UI's loop has ended (it failed, or was interrupted): no screen can
    be shown any more."""


class _Finished:
    """Put on the queue when the machine returns: the loop then ends."""


def make_view(description: Description) -> View:
    if isinstance(description, Menu):
        return MenuView(description)
    if isinstance(description, Prompt):
        return PromptView(description)
    if isinstance(description, Page):
        return PageView(description)
    return ProgressView(description)


class _Root(urwid.WidgetPlaceholder):  # type: ignore[misc]
    """The loop's top widget: draws the current view, gives every key to the bridge."""

    def __init__(self, on_key: Callable[[str], None]) -> None:
        super().__init__(urwid.SolidFill(" "))
        self._on_key = on_key

    def selectable(self) -> bool:
        return True  # MainLoop passes keys only to a selectable top widget

    def keypress(self, size: tuple[int, int], key: str) -> None:
        self._on_key(key)


class _Loop(urwid.MainLoop):  # type: ignore[misc]
    """A MainLoop that says when it has drawn the screen."""

    def __init__(self, *args: Any, on_drawn: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._on_drawn = on_drawn

    def draw_screen(self) -> None:
        super().draw_screen()
        self._on_drawn()


class Bridge:
    """The two sides of a session: ``call``/``post``/``finish`` from the machine's
    thread; everything else runs in the loop's thread."""

    def __init__(self) -> None:
        self.root = _Root(self._on_key)
        self._requests: queue.SimpleQueue[Description | _Finished] = queue.SimpleQueue()
        self._answers: queue.SimpleQueue[Done | None] = queue.SimpleQueue()  # None: closed
        self._call_lock = threading.Lock()  # one screen at a time, whoever asks
        self._closed = threading.Event()
        self._loop: Any = None
        self._loop_thread: int | None = None
        self._wake_fd = -1
        self._view: View | None = None
        self._waiting = False  # the view shown waits for an answer
        self._drawn = False  # ...and has been drawn since it was put up
        self._tick_alarm: Any = None
        #: the view shown changes by itself: a menu until answered, a progress
        #: screen with live lines until the next screen
        self._ticking = False

    # --- the machine's thread ------------------------------------------------

    def call(self, description: Description) -> Done:
        """Show ``description``; wait for and return the user's answer."""
        if not isinstance(description, Menu | Prompt | Page):
            raise TypeError(f"not a screen that waits for an answer: {description!r}")
        if threading.get_ident() == self._loop_thread:
            raise RuntimeError("a Ui call from the UI's own thread would wait forever")
        with self._call_lock:
            self._send(description)
            answer = self._answers.get()
        if answer is None:
            raise UiClosed("the UI has stopped")
        return answer

    def post(self, description: Progress) -> None:
        """Show ``description`` and return at once."""
        if not isinstance(description, Progress):
            raise TypeError(f"not a Progress: {description!r}")
        with self._call_lock:
            self._send(description)

    def finish(self) -> None:
        """The machine has returned: end the loop."""
        with contextlib.suppress(UiClosed):
            self._send(_Finished())

    def _send(self, item: Description | _Finished) -> None:
        if self._closed.is_set():
            raise UiClosed("the UI has stopped")
        self._requests.put(item)
        try:
            os.write(self._wake_fd, b"!")
        except OSError as err:  # the loop is gone and its pipe with it
            raise UiClosed("the UI has stopped") from err

    # --- the loop's thread -----------------------------------------------------

    def attach(self, loop: Any) -> None:
        self._loop = loop
        self._loop_thread = threading.get_ident()
        self._wake_fd = loop.watch_pipe(self._on_wake)

    def detach(self, writers_done: bool) -> None:
        """Close the pipe; its write end only once no thread can write to it
        (a closed descriptor's number may be reused by the next file opened)."""
        self._loop.remove_watch_pipe(self._wake_fd)
        if writers_done:
            os.close(self._wake_fd)

    def close(self) -> None:
        """No more screens: a machine waiting for an answer gets UiClosed."""
        self._closed.set()
        self._answers.put(None)

    def drawn(self) -> None:
        self._drawn = True

    def _on_wake(self, _data: bytes) -> bool:
        while True:
            try:
                item = self._requests.get_nowait()
            except queue.Empty:
                return True  # keep watching the pipe
            if isinstance(item, _Finished):
                raise urwid.ExitMainLoop()
            self._show(item)

    def _show(self, description: Description) -> None:
        self._stop_ticks()
        self._view = make_view(description)
        self._waiting = not isinstance(description, Progress)
        self._drawn = False
        self.root.original_widget = self._view.widget
        # Only screens that change by themselves tick: every redraw costs bytes
        # on a serial line, even when nothing changed.
        if isinstance(description, Menu):
            self._ticking = description.live is not None or description.timeout is not None
        else:
            self._ticking = isinstance(description, Progress) and description.live is not None
        if self._ticking:
            self._tick_alarm = self._loop.set_alarm_in(TICK_SECONDS, self._on_tick)

    def _on_key(self, key: str) -> None:
        if self._view is None or not (self._waiting and self._drawn):
            return  # dropped: see the module's docstring
        done = self._view.keypress(key)
        if done is not None:
            self._answer(done)

    def _on_tick(self, _loop: object, _data: object) -> None:
        self._tick_alarm = None
        if self._view is None or not self._ticking:
            return
        done = self._view.tick()
        if done is not None:
            self._answer(done)
        else:
            self._tick_alarm = self._loop.set_alarm_in(TICK_SECONDS, self._on_tick)

    def _answer(self, done: Done) -> None:
        self._waiting = False
        self._ticking = False
        self._stop_ticks()
        self._answers.put(done)

    def _stop_ticks(self) -> None:
        if self._tick_alarm is not None:
            self._loop.remove_alarm(self._tick_alarm)
            self._tick_alarm = None


class LoopUi:
    """The Ui the machine is given: each call is shown by the loop's thread."""

    def __init__(self, bridge: Bridge, unicode: bool) -> None:
        self.unicode = unicode
        self._bridge = bridge

    def choose(self, menu: Menu) -> str:
        return cast(str, self._bridge.call(menu).value)

    def ask(self, prompt: Prompt) -> str | bytearray | None:
        return self._bridge.call(prompt).value

    def show(self, page: Page) -> None:
        self._bridge.call(page)

    def progress(self, progress: Progress) -> None:
        self._bridge.post(progress)


class _Outcome(Generic[T]):
    """What the machine returned or raised, carried back to the main thread."""

    def __init__(self) -> None:
        self._value: T | None = None
        self._error: BaseException | None = None
        self._done = False

    def run(self, machine: Callable[[Ui], T], ui: Ui, then: Callable[[], None]) -> None:
        try:
            self._value = machine(ui)
            self._done = True
        except BaseException as err:  # re-raised by run_ui in the main thread
            self._error = err
        finally:
            then()

    def result(self) -> T:
        if self._error is not None:
            raise self._error
        if not self._done:
            raise RuntimeError("the UI loop ended before the state machine did")
        return cast(T, self._value)


def run_ui(
    machine: Callable[[Ui], T],
    *,
    columns: int = DEFAULT_COLUMNS,
    rows: int = DEFAULT_ROWS,
    screen: Any = None,
    unicode: bool | None = None,
) -> T:
    """Run ``machine(ui)`` in a worker thread while this (main) thread draws
    what it asks for; return what it returns, or raise what it raised.

    Without ``screen``, one is opened on stdin/stdout after setting TERM and,
    on a console that reports no size (a serial line), ``columns`` x ``rows``.
    ``unicode`` (what ``ui.unicode`` says) is detected from the environment
    unless given. The terminal is restored whatever happens.
    """
    if screen is None:
        ensure_term_env()  # before Screen(): it reads TERM when created
        # OSError/ValueError: stdout replaced by an object without a descriptor.
        with contextlib.suppress(OSError, ValueError):
            prepare_console(sys.stdout.fileno(), columns, rows)
        screen = urwid.raw_display.Screen()
    if unicode is None:
        unicode = detect_unicode()
    if unicode and urwid.get_encoding_mode() != "utf8":
        urwid.set_encoding("utf-8")  # the caller says UTF-8 whatever the locale says
    bridge = Bridge()
    # No mouse: tracking would send escape sequences a serial terminal may print as text.
    loop = _Loop(
        bridge.root, palette=PALETTE, screen=screen, handle_mouse=False, on_drawn=bridge.drawn
    )
    bridge.attach(loop)
    outcome: _Outcome[T] = _Outcome()
    worker = threading.Thread(
        target=outcome.run,
        name="ui-machine",
        daemon=True,
        args=(machine, LoopUi(bridge, unicode), bridge.finish),
    )
    # Started from the loop: if the screen cannot be opened, the machine never runs.
    loop.set_alarm_in(0, lambda *_: worker.start())
    try:
        loop.run()
    finally:
        bridge.close()
        # MainLoop stops the screen itself, except when it fails while starting; stop()
        # does nothing on a stopped screen, so this restores the terminal in every case.
        screen.stop()
        if worker.is_alive():
            worker.join(JOIN_SECONDS)
        bridge.detach(writers_done=not worker.is_alive())
    return outcome.result()
