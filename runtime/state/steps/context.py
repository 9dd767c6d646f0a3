"""What every step gets: the UI, the platform and the session."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from runtime.state.platform import Platform
from runtime.state.session import Session
from runtime.state.view import Choice, Menu, Page, Tone, Ui


@dataclass
class Context:
    ui: Ui
    platform: Platform
    session: Session = field(default_factory=Session)

    def page(self, title: str, lines: list[str] | tuple[str, ...],
             tone: Tone = Tone.NORMAL) -> None:
        self.ui.show(Page(title, tuple(lines), tone))

    def problem_menu(self, title: str, what: str, why: str, todo: str,
                     choices: tuple[Choice, ...], tone: Tone = Tone.ERROR) -> str:
        """The shape of every failure screen: what happened, why it matters,
        what the user can do (the choices)."""
        body = (what, "", "Why it matters: " + why, "", "What you can do: " + todo)
        return self.ui.choose(Menu(title, body, choices, tone))


Step = Callable[[Context], str]
