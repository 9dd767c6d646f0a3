"""The runtime's terminal UI (urwid), made for a serial console.

Importing this package imports urwid: import it only when the UI starts.

  console  prepare_console(): give a serial tty (0x0) a size; ensure_term_env()
  screens  the widgets, pure (rendered to text in tests): SystemInfo, MenuChoice
  app      run_main_menu(): the loop, until Reboot or Power off is chosen;
           BackgroundWork: slow work beside the menu, its result applied in the loop
"""

from runtime.ui.app import BackgroundWork, MenuController, run_main_menu
from runtime.ui.console import ensure_term_env, prepare_console
from runtime.ui.screens import MenuChoice, SystemInfo

__all__ = [
    "BackgroundWork",
    "MenuChoice",
    "MenuController",
    "SystemInfo",
    "ensure_term_env",
    "prepare_console",
    "run_main_menu",
]
