"""The runtime's terminal UI (urwid), made for a serial console.

Importing this package imports urwid: import it only when the UI starts.

The renderer of runtime.state.view's descriptions (the Ui protocol):
  bridge       run_ui(): the urwid loop in the main thread, the state machine in a
               worker thread, the Ui between them
  views        a view = a widget + what keys and seconds do; PageView, ProgressView
  menu_view    MenuView: choices, hot keys, live lines, countdown
  prompt_view  PromptView: one-line answers, secrets, confirmation
  fields       the answer fields; secrets kept in a bytearray, never a str
  widgets      palette, header/footer, scrolling text, menu lines, QR rows
  render       render_text(): a widget as plain text (tests, screen dumps)
  console      prepare_console(), ensure_term_env(), detect_unicode()

The first UI, used by runtime.state.startup until it moves to run_ui:
  screens      the main menu's widgets: SystemInfo, MenuChoice
  app          run_main_menu(), MenuController, BackgroundWork
"""

from typing import TYPE_CHECKING, Any

from runtime.ui.app import BackgroundWork, MenuController, run_main_menu
from runtime.ui.console import detect_unicode, ensure_term_env, prepare_console
from runtime.ui.screens import MenuChoice, SystemInfo

if TYPE_CHECKING:
    from runtime.ui.bridge import UiClosed, run_ui
    from runtime.ui.render import render_text

# Imported on first use, so the boot that still runs run_main_menu does not
# pay for the new renderer's modules (under TCG each import costs real time).
_LAZY = {"UiClosed": "runtime.ui.bridge", "run_ui": "runtime.ui.bridge",
         "render_text": "runtime.ui.render"}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_LAZY[name]), name)


__all__ = [
    "BackgroundWork",
    "MenuChoice",
    "MenuController",
    "SystemInfo",
    "UiClosed",
    "detect_unicode",
    "ensure_term_env",
    "prepare_console",
    "render_text",
    "run_main_menu",
    "run_ui",
]
