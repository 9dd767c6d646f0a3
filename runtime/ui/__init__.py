"""The runtime's terminal UI (urwid), made for a serial console or a local VT.

Importing this package imports urwid: import it only when the UI starts.

It renders runtime.state.view's descriptions (the Ui protocol):
  bridge       run_ui(): the urwid loop in the main thread, the state machine in a
               worker thread, the Ui between them
  views        a view = a widget + what keys and seconds do; PageView, ProgressView
  menu_view    MenuView: choices, hot keys, live lines, countdown
  prompt_view  PromptView: one-line answers, secrets, confirmation
  fields       the answer fields; secrets kept in a bytearray, never a str
  widgets      palette, header/footer, scrolling text, menu lines, QR rows
  render       render_text(): a widget as plain text (tests, screen dumps)
  console      prepare_console(), ensure_term_env(), detect_unicode()
"""

from runtime.ui.bridge import UiClosed, run_ui
from runtime.ui.console import detect_unicode, ensure_term_env, prepare_console
from runtime.ui.render import render_text

__all__ = [
    "UiClosed",
    "detect_unicode",
    "ensure_term_env",
    "prepare_console",
    "render_text",
    "run_ui",
]
