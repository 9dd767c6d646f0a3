"""What every step gets: the UI, the platform and the session."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from runtime.state.keys import BACK, DETAILS, back
from runtime.state.machine import Event
from runtime.state.platform import Platform
from runtime.state.session import Session
from runtime.state.view import Choice, Menu, Page, Prompt, Tone, Ui

#: Events that end the session, and the question asked before each.
_ENDINGS: Mapping[str, tuple[str, str, str]] = {
    Event.POWER_OFF: (
        "Power off now?",
        "The machine turns off. Nothing on it is changed.",
        "Yes: power off",
    ),
    Event.REBOOT: (
        "Reboot now?",
        "The machine restarts and measures everything again from the firmware on.",
        "Yes: reboot",
    ),
}


@dataclass
class Context:
    ui: Ui
    platform: Platform
    session: Session = field(default_factory=Session)

    def page(
        self, title: str, lines: list[str] | tuple[str, ...], tone: Tone = Tone.NORMAL
    ) -> None:
        if tone is Tone.ERROR and self.platform.details():
            # a failure with technical lines behind it: offered, never shown unasked
            self.choose(
                Menu(title, tuple(lines), (back("Back"), DETAILS), tone, back_event=Event.BACK)
            )
            return
        self.ui.show(Page(title, tuple(lines), tone))

    def choose(self, menu: Menu) -> str:
        """The user's choice on ``menu``; power off and reboot are asked again
        first (a key pressed by mistake must not end the machine), and the
        details are shown in place."""
        while True:
            event = self.ui.choose(menu)
            if event == "details":
                self.ui.show(
                    Page(
                        "Details",
                        (
                            "The technical lines behind the latest failures, oldest first. They "
                            "are also in the runtime's log.",
                            "",
                            *self.platform.details(),
                        ),
                    )
                )
                continue
            self.platform.forget_details()  # what failed before this answer is shown
            ending = _ENDINGS.get(event)
            if ending is None:
                return event
            title, what, yes = ending
            if self.confirm(title, (what,), yes, "No: stay here"):
                return event

    def ask_secret(self, prompt: Prompt) -> bytearray | None:
        """The answer to a secret prompt, as a bytearray the caller wipes (None:
        cancelled)."""
        answer = self.ui.ask(prompt)
        if answer is None:
            return None
        if isinstance(answer, str):  # a UI that ignored `secret`: still never keep a str
            return bytearray(answer.encode())
        return answer

    def confirm(
        self, title: str, body: tuple[str, ...], yes: str, no: str, tone: Tone = Tone.WARNING
    ) -> bool:
        """A yes/no question with No first and selected: Enter, Esc and Back all
        answer No."""
        answer = self.ui.choose(
            Menu(
                title,
                body,
                (Choice("n", no, "no"), Choice("y", yes, "yes")),
                tone=tone,
                back_event="no",
            )
        )
        return answer == "yes"

    def problem_menu(
        self,
        title: str,
        what: str,
        why: str,
        todo: str,
        choices: tuple[Choice, ...],
        tone: Tone = Tone.ERROR,
    ) -> str:
        """The shape of every failure screen: what happened, why it matters,
        what the user can do (the choices)."""
        body = (what, "", "Why it matters: " + why, "", "What you can do: " + todo)
        back_event = next((c.event for c in choices if c.key == BACK), None)
        if self.platform.details():
            choices = (*choices, DETAILS)
        return self.choose(Menu(title, body, choices, tone, back_event=back_event))


Step = Callable[[Context], Event]
