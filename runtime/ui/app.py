"""The main menu's loop: key handling in MenuController, the terminal in run_main_menu."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

import urwid
import urwid.raw_display

from runtime.ui import screens
from runtime.ui.console import ensure_term_env, prepare_console
from runtime.ui.screens import MenuChoice, SystemInfo

#: The size given to a console that reports none (a serial line) when we open it ourselves.
DEFAULT_COLUMNS = 80
DEFAULT_ROWS = 24

# vi keys for terminals whose arrow-key escape sequences get mangled on the way.
_KEY_ALIASES = {"k": "up", "j": "down"}
_BACK_KEYS = frozenset({"esc", "q", "Q", "backspace"})
_DIGITS = frozenset("123456789")


class MenuController:
    """Which screen is shown and what each key does; no terminal, so tests feed keys in."""

    def __init__(
        self, info: SystemInfo, measurements: tuple[str, Sequence[tuple[str, str]]], status: str
    ) -> None:
        self._info = info
        self._summary, rows = measurements
        self._measurement_rows = tuple(rows)
        self._status = status
        self._page: MenuChoice | None = None  # the sub-page open, if any
        self._menu = screens.MainMenu(info.title, status)
        self._root = urwid.WidgetPlaceholder(self._menu)
        #: The size keys are handled at (the ListBoxes need it to scroll); the loop updates it.
        self.size: tuple[int, int] = (DEFAULT_COLUMNS, DEFAULT_ROWS)

    def update(
        self,
        *,
        info: SystemInfo | None = None,
        measurements: tuple[str, Sequence[tuple[str, str]]] | None = None,
        status: str | None = None,
    ) -> None:
        """New facts found after the menu was first shown (the focus stays put)."""
        if info is not None:
            self._info = info
        if measurements is not None:
            self._summary, rows = measurements
            self._measurement_rows = tuple(rows)
        # A page that is open shows the new facts at once.
        if self._page is MenuChoice.SYSTEM_INFO and info is not None:
            self._choose(MenuChoice.SYSTEM_INFO)
        if self._page is MenuChoice.MEASUREMENTS and measurements is not None:
            self._choose(MenuChoice.MEASUREMENTS)
        if status is not None or info is not None:
            on_menu = self.on_main_menu
            focused = [c for c, _ in screens.MENU_ENTRIES].index(self._menu.focused_choice)
            self._status = self._status if status is None else status
            self._menu = screens.MainMenu(self._info.title, self._status)
            self._menu.focus_number(focused + 1)
            if on_menu:
                self._root.original_widget = self._menu

    @property
    def widget(self) -> Any:
        """The box widget to draw; its content changes as screens are opened and closed."""
        return self._root

    @property
    def on_main_menu(self) -> bool:
        return self._root.original_widget is self._menu  # type: ignore[no-any-return]

    def keypress(self, key: str, size: tuple[int, int] | None = None) -> MenuChoice | None:
        """Handle one urwid key name; the final choice (REBOOT, POWER_OFF) or None."""
        if size is not None:
            self.size = size
        key = _KEY_ALIASES.get(key, key)
        if not self.on_main_menu:
            if key in _BACK_KEYS:
                self._root.original_widget = self._menu
                self._page = None
            else:
                self._root.keypress(self.size, key)
            return None
        if key == "enter":
            return self._choose(self._menu.focused_choice)
        if key in _DIGITS:
            choice = self._menu.focus_number(int(key))
            return None if choice is None else self._choose(choice)
        self._root.keypress(self.size, key)
        return None

    def _choose(self, choice: MenuChoice) -> MenuChoice | None:
        # Sub-screens are built afresh on each visit, so they always open scrolled to the top.
        if choice in (MenuChoice.SYSTEM_INFO, MenuChoice.MEASUREMENTS):
            self._page = choice
        if choice is MenuChoice.SYSTEM_INFO:
            self._root.original_widget = screens.info_screen(self._info)
        elif choice is MenuChoice.MEASUREMENTS:
            self._root.original_widget = screens.measurements_screen(
                self._summary, self._measurement_rows
            )
        else:
            return choice
        return None


class BackgroundWork:
    """Slow work that starts once the first screen is drawn and runs beside the
    menu, which stays responsive; its result is applied in the UI's own thread.

    ``work`` runs in a thread and returns a function that updates the controller.
    The caller must not use what ``work`` uses (the TPM) until ``join`` returns.
    """

    def __init__(self, work: Callable[[], Callable[[MenuController], None]]) -> None:
        self._work = work
        self._thread: threading.Thread | None = None
        self._apply: Callable[[MenuController], None] | None = None
        self.error: BaseException | None = None

    def start(self, loop: urwid.MainLoop, controller: MenuController) -> None:
        def on_done(_data: bytes) -> bool:
            if self._apply is not None:
                self._apply(controller)
            return False  # one message only: stop watching the pipe

        done_fd = loop.watch_pipe(on_done)

        def run() -> None:
            try:
                self._apply = self._work()
            except Exception as err:  # reported by the caller after join()
                self.error = err
            finally:
                os.write(done_fd, b"done")

        self._thread = threading.Thread(target=run, name="background", daemon=True)
        self._thread.start()

    def join(self, timeout: float) -> bool:
        """Wait for the work; True if it finished (or never started)."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()


class _LoopRoot(urwid.WidgetPlaceholder):  # type: ignore[misc]
    """Gives every key to the controller and ends the loop once it returns a choice."""

    def __init__(self, controller: MenuController) -> None:
        super().__init__(controller.widget)
        self._controller = controller
        self.choice: MenuChoice | None = None

    def selectable(self) -> bool:
        return True  # MainLoop only passes keys to a selectable top widget

    def keypress(self, size: tuple[int, int], key: str) -> None:
        choice = self._controller.keypress(key, size)
        if choice is not None:
            self.choice = choice
            raise urwid.ExitMainLoop()


def run_main_menu(
    info: SystemInfo,
    measurements: tuple[str, Sequence[tuple[str, str]]],
    status: str,
    *,
    screen: urwid.raw_display.Screen | None = None,
    after_first_draw: Callable[[MenuController], None] | None = None,
    background: BackgroundWork | None = None,
    every_second: Callable[[MenuController], None] | None = None,
) -> MenuChoice:
    """Show the main menu until the user picks Reboot or Power off; return that choice.

    ``measurements`` is (summary line, (label, value) rows). Without ``screen``, one is
    opened on stdin/stdout after setting TERM and, on a console that reports no size,
    80x24 (call prepare_console first to choose another size).
    """
    if screen is None:
        ensure_term_env()  # before Screen(): it reads TERM when created
        # OSError/ValueError: stdout replaced by an object without a descriptor.
        with contextlib.suppress(OSError, ValueError):
            prepare_console(sys.stdout.fileno(), DEFAULT_COLUMNS, DEFAULT_ROWS)
        screen = urwid.raw_display.Screen()
    controller = MenuController(info, measurements, status)
    root = _LoopRoot(controller)
    # No mouse: tracking would send escape sequences a serial terminal may print as text.
    loop = urwid.MainLoop(root, palette=screens.PALETTE, screen=screen, handle_mouse=False)

    def first_drawn(*_: object) -> None:
        if after_first_draw is not None:
            after_first_draw(controller)
        if background is not None:
            background.start(loop, controller)

    # An alarm due now runs once the first screen is drawn: what the first
    # screen does not need starts there, and may update what is shown.
    loop.set_alarm_in(0, first_drawn)

    def tick(*_: object) -> None:
        if every_second is not None:
            every_second(controller)
            loop.set_alarm_in(1, tick)

    if every_second is not None:
        loop.set_alarm_in(1, tick)
    try:
        loop.run()
    finally:
        # MainLoop stops the screen itself, except when it fails while starting; stop()
        # does nothing on a stopped screen, so this restores the terminal in every case.
        screen.stop()
    if root.choice is None:  # the loop only ends on a choice or an exception
        raise RuntimeError("the menu loop ended without a choice")
    return root.choice
