"""What the boot state machine asks the terminal UI to show, as plain data.

The state machine and its steps never touch urwid: they describe a screen
(a `Menu`, a `Prompt`, a `Page`, a `Progress` line) and the UI draws it and
returns what the user did. Tests drive the machine with a scripted `Ui`; the
real one (runtime.ui) renders the same descriptions with urwid.

Wording rule for every screen that reports a problem: say what happened, why
it matters, and what the user can do (the menu's choices are that last part).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol


class Tone(enum.StrEnum):
    """How a screen is coloured, and the word shown with the colour (for
    monochrome terminals, screen dumps and colour-blind users)."""

    NORMAL = "normal"  # no word
    GOOD = "good"  # "VERIFIED"-style confirmation, green
    WARNING = "warning"  # yellow
    ERROR = "error"  # red: tampering or a refusal


@dataclass(frozen=True)
class Choice:
    """One menu line: its hot key (one character, case-sensitive as in Heads:
    'f' and 'F' differ), its label, and the event name returned when chosen."""

    key: str
    label: str
    event: str


@dataclass(frozen=True)
class Menu:
    """A titled menu: body text above the choices, chosen by arrows + Enter or
    by hot key. ``live`` is called once a second and its lines replace the
    body's live part (clock, TOTP countdown); it runs in the UI's thread while
    the caller waits for the choice. With ``timeout`` seconds set, the
    ``timeout_event`` is returned when no key is pressed before it runs out
    (the UI shows the seconds left); any key stops the countdown."""

    title: str
    body: tuple[str, ...]
    choices: tuple[Choice, ...]
    tone: Tone = Tone.NORMAL
    live: Callable[[], tuple[str, ...]] | None = None
    timeout: int | None = None
    timeout_event: str = "timeout"
    #: The event returned by Esc (None: Esc does nothing, e.g. the main menu).
    back_event: str | None = None


@dataclass(frozen=True)
class Prompt:
    """A one-line question. A ``secret`` answer is never echoed (the UI draws one
    '*' per character) and is returned as a bytearray the caller wipes. ``confirm`` asks a
    second time and repeats until both entries match. ``min_length`` is
    enforced with a message, not by refusing silently. Esc cancels (None)."""

    title: str
    body: tuple[str, ...]
    label: str
    secret: bool = False
    confirm: bool = False
    min_length: int = 0
    max_length: int = 256
    tone: Tone = Tone.NORMAL
    #: a limit in UTF-8 bytes as well (a TPM passphrase: an accented letter takes two)
    max_bytes: int | None = None


@dataclass(frozen=True)
class Page:
    """Scrollable text (reports, QR codes, system information); returns when the
    user leaves it (Enter, Esc or q). ``preformatted`` lines are shown as they
    are, not wrapped (QR codes, tables)."""

    title: str
    lines: tuple[str, ...]
    tone: Tone = Tone.NORMAL
    preformatted: bool = False
    footer: str = "Enter or Esc: continue"


@dataclass(frozen=True)
class Progress:
    """Shown while a long step runs; replaced by the next screen. ``live``, when
    given, is called once a second in the UI's thread and its lines follow the
    text (a TOTP code and its countdown): it must read only what no other
    thread changes."""

    title: str
    text: str
    lines: tuple[str, ...] = field(default_factory=tuple)
    live: Callable[[], tuple[str, ...]] | None = None


class Ui(Protocol):
    """What the state machine needs from a user interface. Each call blocks the
    caller (the machine's thread) until the user has answered."""

    #: True when the terminal shows UTF-8 (QR codes in half blocks); False: ASCII only.
    unicode: bool

    def choose(self, menu: Menu) -> str:
        """Show the menu; return the chosen choice's event (or timeout/back event)."""
        ...

    def ask(self, prompt: Prompt) -> str | bytearray | None:
        """Ask; a str for plain prompts, a bytearray for secret ones, None if cancelled."""
        ...

    def show(self, page: Page) -> None:
        """Show the page until the user leaves it."""
        ...

    def progress(self, progress: Progress) -> None:
        """Show what is being done; returns at once."""
        ...
