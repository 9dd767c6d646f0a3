"""What every step gets: the UI, the platform and the session."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from runtime.state.keys import BACK
from runtime.state.platform import Platform
from runtime.state.session import Session
from runtime.state.view import Choice, Menu, Page, Tone, Ui

#: Events that end the session, and the question asked before each.
_ENDINGS = {
    "power-off": ("Power off now?", "The machine turns off. Nothing on it is changed.",
                  "Yes: power off"),
    "reboot": ("Reboot now?", "The machine restarts and measures everything again from "
               "the firmware on.", "Yes: reboot"),
}


@dataclass
class Context:
    ui: Ui
    platform: Platform
    session: Session = field(default_factory=Session)

    def page(self, title: str, lines: list[str] | tuple[str, ...],
             tone: Tone = Tone.NORMAL) -> None:
        self.ui.show(Page(title, tuple(lines), tone))

    def choose(self, menu: Menu) -> str:
        """The user's choice on ``menu``; power off and reboot are asked again
        first (a key pressed by mistake must not end the machine)."""
        while True:
            event = self.ui.choose(menu)
            ending = _ENDINGS.get(event)
            if ending is None:
                return event
            title, what, yes = ending
            if self.confirm(title, (what,), yes, "No: stay here"):
                return event

    def confirm(self, title: str, body: tuple[str, ...], yes: str, no: str,
                tone: Tone = Tone.WARNING) -> bool:
        """A yes/no question with No first and selected: Enter, Esc and Back all
        answer No."""
        answer = self.ui.choose(Menu(title, body, (
            Choice("n", no, "no"), Choice("y", yes, "yes")), tone=tone, back_event="no"))
        return answer == "yes"

    def problem_menu(self, title: str, what: str, why: str, todo: str,
                     choices: tuple[Choice, ...], tone: Tone = Tone.ERROR) -> str:
        """The shape of every failure screen: what happened, why it matters,
        what the user can do (the choices)."""
        body = (what, "", "Why it matters: " + why, "", "What you can do: " + todo)
        back = next((c.event for c in choices if c.key == BACK), None)
        return self.choose(Menu(title, body, choices, tone, back_event=back))


Step = Callable[[Context], str]
