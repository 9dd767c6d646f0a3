"""ScriptedUi: a Ui for unit tests of the state machine, written in keys.

    ui = ScriptedUi([
        ("choose", "Main menu", "o"),           # the choice whose hot key is 'o'
        ("choose", "Options", "esc"),           # the menu's back event
        ("ask", "Owner passphrase", b"secret"), # a secret prompt gets a bytearray
        ("show", "Integrity report", None),     # the page is left
        ("choose", "Automatic boot", "timeout"),# nobody pressed a key
    ])
    machine(ui)
    ui.assert_finished()
    assert ui.shown[0].tone is Tone.ERROR and "TOTP" in ui.texts()[0]

Each step is (method, part of the title, answer). Progress screens take no
step: they are only recorded. A step that does not match what the machine
shows, or an answer the real UI could not give (a key no choice has, Esc on a
menu without a back event, a passphrase shorter than min_length), fails the
test with an AssertionError that says what was on the screen.

Special keys for choose: "enter" (the focused choice: the automatic one when
there is a countdown, else the first), "esc" (back_event), "timeout".
Answers for ask: str, bytes/bytearray (converted to what the prompt returns),
or None (Esc).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import NoReturn

from runtime.state.keys import BACK
from runtime.state.view import Menu, Page, Progress, Prompt, Tone

Description = Menu | Prompt | Page | Progress
Step = tuple[str, str, object]
UNAVAILABLE = "(unavailable)"


@dataclass(frozen=True)
class Shown:
    """One screen the machine showed, with the live lines it had then."""

    description: Description
    live: tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        return {Menu: "choose", Prompt: "ask", Page: "show", Progress: "progress"}[
            type(self.description)
        ]

    @property
    def title(self) -> str:
        return self.description.title

    @property
    def tone(self) -> Tone:
        return getattr(self.description, "tone", Tone.NORMAL)  # type: ignore[no-any-return]

    @property
    def text(self) -> str:
        """Everything the user could read on it, one line each."""
        d = self.description
        lines = [d.title]
        if isinstance(d, Menu):
            lines += [*d.body, *self.live, *(f"{c.key}  {c.label}" for c in d.choices)]
        elif isinstance(d, Prompt):
            lines += [*d.body, d.label]
        elif isinstance(d, Page):
            lines += d.lines
        else:
            lines += [d.text, *d.lines, *self.live]
        return "\n".join(lines)


def power_off(title: str) -> list[Step]:
    """Power off from the screen titled ``title``, and say yes when asked."""
    return [("choose", title, "p"), ("choose", "Power off now?", "y")]


def reboot(title: str) -> list[Step]:
    return [("choose", title, "R"), ("choose", "Reboot now?", "y")]


class ScriptedUi:
    def __init__(self, script: Iterable[Step], *, unicode: bool = True) -> None:
        self.unicode = unicode
        self.script: list[Step] = list(script)
        self.shown: list[Shown] = []

    # --- the Ui protocol ----------------------------------------------------------

    def choose(self, menu: Menu) -> str:
        live = _live(menu)
        self._record(Shown(menu, live))
        key = self._answer("choose", menu)
        if key == "timeout":
            self._check(menu.timeout is not None, menu, "'timeout' on a menu with no countdown")
            return menu.timeout_event
        if key == "esc" or (key == BACK and all(c.key != BACK for c in menu.choices)):
            self._check(menu.back_event is not None, menu, "Esc does nothing on this menu")
            assert menu.back_event is not None
            return menu.back_event
        if key == "enter":
            self._check(bool(menu.choices), menu, "Enter on a menu with no choices")
            return _focused(menu)
        for choice in menu.choices:
            if choice.key == key:
                return choice.event
        self._fail(menu, f"no choice has the key {key!r}")

    def ask(self, prompt: Prompt) -> str | bytearray | None:
        self._record(Shown(prompt))
        answer = self._answer("ask", prompt)
        if answer is None:
            return None
        if isinstance(answer, bytes | bytearray):
            text = bytes(answer).decode("utf-8")
        elif isinstance(answer, str):
            text = answer
        else:
            self._fail(prompt, f"an answer must be str, bytes or None, not {answer!r}")
        self._check(
            len(text) >= prompt.min_length,
            prompt,
            f"{answer!r} is shorter than min_length={prompt.min_length}: the real UI asks again",
        )
        self._check(
            len(text) <= prompt.max_length,
            prompt,
            f"{answer!r} is longer than max_length={prompt.max_length}",
        )
        return bytearray(text.encode("utf-8")) if prompt.secret else text

    def show(self, page: Page) -> None:
        self._record(Shown(page))
        self._answer("show", page)

    def progress(self, progress: Progress) -> None:
        self._record(Shown(progress, _live(progress)))

    # --- for assertions -----------------------------------------------------------

    def titles(self, kind: str | None = None) -> list[str]:
        return [s.title for s in self.shown if kind is None or s.kind == kind]

    def texts(self) -> list[str]:
        return [s.text for s in self.shown]

    def assert_finished(self) -> None:
        assert not self.script, f"the machine stopped before these steps: {self.script}"

    # --- the script ---------------------------------------------------------------

    def _record(self, shown: Shown) -> None:
        self.shown.append(shown)

    def _answer(self, method: str, description: Menu | Prompt | Page) -> object:
        if not self.script:
            self._fail(description, "the script has no more steps")
        want_method, want_title, answer = self.script[0]
        if want_method != method or want_title not in description.title:
            self._fail(description, f"the script expected {want_method} {want_title!r}")
        self.script.pop(0)
        return answer

    def _check(self, ok: bool, description: Description, problem: str) -> None:
        if not ok:
            self._fail(description, problem)

    def _fail(self, description: Description, problem: str) -> NoReturn:
        last = self.shown[-1] if self.shown else None
        shown = last if last is not None and last.description is description else Shown(description)
        history = "\n".join(f"  {s.kind} {s.title!r}" for s in self.shown[:-1]) or "  (none)"
        raise AssertionError(
            f"{problem}\nthe machine called {shown.kind} with:\n"
            + "\n".join("  | " + line for line in shown.text.splitlines())
            + f"\nshown before it:\n{history}"
        )


def _live(shown: Menu | Progress) -> tuple[str, ...]:
    if shown.live is None:
        return ()
    try:
        return tuple(shown.live())
    except Exception:  # as the real UI does
        return (UNAVAILABLE,)


def _focused(menu: Menu) -> str:
    if menu.timeout is not None:
        for choice in menu.choices:
            if choice.event == menu.timeout_event:
                return choice.event
    return menu.choices[0].event
