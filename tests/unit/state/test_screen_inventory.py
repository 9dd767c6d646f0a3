"""Every screen the state machine can show, found by walking it, rendered by
the real UI at 80x25 and 60x20, and checked: no option clipped, the key
scheme (runtime.state.keys) holds, destructive actions ask first with No
selected, advice names only what the screen offers, and no internal text
(tracebacks, command lines, NV indexes, Heads' entry lines) is shown.

The walk: each run drives the machine from power-on on a fresh fake platform,
answers menus from a path of keys, and stops at the first menu past the path;
every menu not seen before adds one path per key it offers.
"""

from __future__ import annotations

import contextlib
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from runtime.state import driver
from runtime.state.keys import BACK, DESTRUCTIVE, HEADS_KEYS, RECOVERY_KEY, RESERVED
from runtime.state.machine import State
from runtime.state.platform import (
    BootCheck,
    BootFacts,
    DefaultFacts,
    EnrolFacts,
    HotpCheck,
    HotpFacts,
    KeyringFacts,
    LockoutFacts,
    MeasureFacts,
    OptionsFacts,
    ResetFacts,
    RootFacts,
    SignFacts,
    StartFacts,
    TotpFailure,
)
from runtime.state.steps import Context
from runtime.state.view import Menu, Page, Progress, Prompt
from runtime.ui.bridge import make_view
from tests.conftest import REPO_ROOT
from tests.fakes_platform import GOOD_CHECK, FakePlatform, failed_totp, refused_check

SIZES = ((80, 25), (60, 20))
MAX_DEPTH = 9
Description = Menu | Prompt | Page | Progress


def _started(**fields: object) -> StartFacts:
    return StartFacts("Test board", "Brand", **fields)  # type: ignore[arg-type]


CHANGED = refused_check("kexec_hashes.txt: grub.cfg changed")
UNSIGNED = BootCheck(
    False, ("No signature on /boot yet.",), frozenset({"signature missing"}), unsigned=True
)
STRANGER = BootCheck(
    False,
    ("Signed by a key that is not the owner's.",),
    frozenset({"signed by a key that is not the owner's"}),
)

#: The machines walked: each a fresh fake platform per run.
VARIANTS: dict[str, Callable[[], FakePlatform]] = {
    "verified": lambda: FakePlatform(checks=[GOOD_CHECK]),
    "changed": lambda: FakePlatform(checks=[CHANGED]),
    "unsigned": lambda: FakePlatform(checks=[UNSIGNED]),
    "stranger": lambda: FakePlatform(checks=[STRANGER]),
    "restricted": lambda: FakePlatform(start_facts=_started(restricted=True), checks=[CHANGED]),
    "fatal": lambda: FakePlatform(start_facts=_started(fatal="The board file is missing.")),
    "no-tpm": lambda: FakePlatform(start_facts=_started(tpm_problem="No TPM was found.")),
    "no-disk": lambda: FakePlatform(boot_facts=[BootFacts(problem="No disk was found.")]),
    "no-partition": lambda: FakePlatform(
        boot_facts=[BootFacts(problem="No partition holds a boot configuration.", disk_seen=True)]
    ),
    "rolled-back": lambda: FakePlatform(
        checks=[
            BootCheck(
                False,
                ("An older signed /boot was put back.",),
                frozenset({"an older signed /boot (rollback)"}),
            )
        ]
    ),
    "inconsistent": lambda: FakePlatform(preflight=["The rollback counter is missing."]),
    "no-key": lambda: FakePlatform(keyring_facts=KeyringFacts(problem="No owner key file.")),
    "totp-missing": lambda: FakePlatform(totp_results=[failed_totp()], owned=False),
    "totp-changed": lambda: FakePlatform(
        totp_results=[failed_totp(TotpFailure.PCRS_CHANGED, "The TPM refused the secret.")]
    ),
    "totp-recovery": lambda: FakePlatform(
        totp_results=[failed_totp(TotpFailure.RECOVERY_USED, "A recovery shell was opened.")]
    ),
    "totp-error": lambda: FakePlatform(
        totp_results=[failed_totp(TotpFailure.TPM_ERROR, "The TPM did not answer.")]
    ),
    "locked-out": lambda: FakePlatform(
        totp_results=[
            failed_totp(TotpFailure.TPM_ERROR, "The TPM is refusing passphrases for now.")
        ],
        lockout=LockoutFacts(locked_out=True, failures=10, recovery_seconds=3600),
    ),
    "hotp-locked-out": lambda: FakePlatform(
        start_facts=_started(hotp_configured=True),
        hotp_results=[HotpFacts(HotpCheck.ERROR, "The HOTP counter cannot be read.")],
        lockout=LockoutFacts(locked_out=True, failures=10, recovery_seconds=3600),
    ),
    "hotp-invalid": lambda: FakePlatform(
        start_facts=_started(hotp_configured=True),
        hotp_results=[HotpFacts(HotpCheck.INVALID, "The token refused the code.")],
    ),
    "hotp-absent": lambda: FakePlatform(
        start_facts=_started(hotp_configured=True),
        hotp_results=[HotpFacts(HotpCheck.ABSENT, "No token is plugged in.")],
    ),
    "reset-current": lambda: FakePlatform(
        totp_results=[failed_totp()], owned=False, reset_needs_current=True
    ),
    "token-refused": lambda: FakePlatform(
        start_facts=_started(hotp_configured=True),
        totp_results=[failed_totp()],
        enrol_results=[
            EnrolFacts(None, "The token refused the admin PIN.", token_refused=True, wrong_pin=True)
        ],
    ),
    "autoboot": lambda: FakePlatform(
        start_facts=_started(auto_boot_timeout=5, hotp_configured=True), checks=[GOOD_CHECK]
    ),
    # the countdown withheld for want of a token, then allowed on TOTP alone
    "autoboot-no-token": lambda: FakePlatform(
        start_facts=_started(auto_boot_timeout=5), checks=[GOOD_CHECK]
    ),
    "autoboot-totp-only": lambda: FakePlatform(
        start_facts=_started(auto_boot_timeout=5, auto_boot_totp_only=True), checks=[GOOD_CHECK]
    ),
    "rollback-off": lambda: FakePlatform(
        start_facts=_started(auto_boot_timeout=5, hotp_configured=True, rollback_check_off=True),
        checks=[GOOD_CHECK],
    ),
    "no-default": lambda: FakePlatform(
        checks=[GOOD_CHECK], default_facts=DefaultFacts(none_saved=True)
    ),
    "no-entries": lambda: FakePlatform(
        checks=[GOOD_CHECK],
        options_facts=OptionsFacts(problem="No boot configuration was found on /boot."),
    ),
    "failures": lambda: FakePlatform(
        checks=[CHANGED],
        measure_facts=MeasureFacts(
            problems=("One module did not load.",), measurements_match=False
        ),
        reset_results=[
            ResetFacts(needs_lockout_passphrase=True),
            ResetFacts(problem="The passphrase was wrong."),
        ],
        enrol_results=[EnrolFacts(None, "The owner passphrase was wrong.", wrong_passphrase=True)],
        sign_results=[SignFacts(problem="The card refused the PIN.")],
        detail_lines=("sign: gpg exited with status 2: card error",),
    ),
    "details": lambda: FakePlatform(
        preflight=["The rollback counter is missing."], detail_lines=("preflight: NV read failed",)
    ),
    "basic": lambda: FakePlatform(
        start_facts=_started(basic=True, auto_boot_timeout=5), checks=[CHANGED]
    ),
    "root-hashes": lambda: FakePlatform(
        start_facts=_started(root_hashing=True, root_check_at_boot=True),
        checks=[GOOD_CHECK],
        root_check_results=[
            RootFacts(checked=9, changed=("usr/bin/ls",), missing=("usr/lib/libc.so.6",))
        ],
    ),
}


@dataclass
class Seen:
    description: Description
    variant: str
    path: tuple[str, ...]
    #: the state whose step showed it
    state: State
    #: (the answer given here, the next screen that waited for one), in every run
    after: list[tuple[str, Description]] = field(default_factory=list)


class _Stop(Exception):
    """The path is used up: this run has found its new menu."""


class _WalkingUi:
    unicode = True

    def __init__(self, path: tuple[str, ...]) -> None:
        self._path = list(path)
        self.screens: list[tuple[Description, str | None]] = []  # (screen, answer)
        self.state = State.EARLY_INIT  # the state whose step runs
        self.states: list[State] = []  # each screen's

    def entered(self, state: State) -> None:
        self.state = state

    def _record(self, screen: Description, answer: str | None) -> None:
        self.screens.append((screen, answer))
        self.states.append(self.state)

    def choose(self, menu: Menu) -> str:
        if menu.live is not None:
            menu.live()
        if not self._path:
            self._record(menu, None)
            raise _Stop
        key = self._path.pop(0)
        self._record(menu, key)
        if key == "timeout":
            return menu.timeout_event
        if key in ("esc", BACK) and all(c.key != key for c in menu.choices):
            assert menu.back_event is not None, f"{key!r} on {menu.title!r}"
            return menu.back_event
        return next(c.event for c in menu.choices if c.key == key)

    def ask(self, prompt: Prompt) -> str | bytearray | None:
        self._record(prompt, "answer")
        if prompt.secret:
            return bytearray(b"correct horse battery")
        return "2026-11-25 12:00:00"

    def show(self, page: Page) -> None:
        self._record(page, "enter")

    def progress(self, progress: Progress) -> None:
        self._record(progress, None)


def _signature(menu: Menu) -> tuple[str, tuple[tuple[str, str], ...]]:
    return menu.title, tuple((c.key, c.event) for c in menu.choices)


def _answers(menu: Menu) -> list[str]:
    keys = [c.key for c in menu.choices]
    if menu.back_event is not None:
        keys.append("esc")  # and the Back letter, when no choice carries it
        if BACK not in keys:
            keys.append(BACK)
    if menu.timeout is not None:
        keys.append("timeout")
    return keys


def walk() -> list[Seen]:
    seen: dict[object, Seen] = {}
    queue: deque[tuple[str, tuple[str, ...]]] = deque((name, ()) for name in VARIANTS)
    expanded: set[tuple[str, object]] = set()
    while queue:
        name, path = queue.popleft()
        ui = _WalkingUi(path)
        with contextlib.suppress(_Stop):
            driver.run(Context(ui, VARIANTS[name]()), on_state=ui.entered)
        for index, (screen, answer) in enumerate(ui.screens):
            key = (
                type(screen).__name__,
                screen.title,
                (_signature(screen), screen.body, screen.tone)
                if isinstance(screen, Menu)
                else repr(screen)[:2000],
            )
            entry = seen.setdefault(key, Seen(screen, name, path, ui.states[index]))
            following = [s for s, _ in ui.screens[index + 1 :] if not isinstance(s, Progress)]
            if answer is not None and following:
                entry.after.append((answer, following[0]))
            if isinstance(screen, Menu) and answer is None and len(path) < MAX_DEPTH:
                sig = (name, _signature(screen))
                if sig in expanded:
                    continue
                expanded.add(sig)
                queue.extend((name, (*path, k)) for k in _answers(screen))
    return list(seen.values())


#: What the walk's generator gives: the generated passphrase's page is then
#: the same screen in every run (the kernel RNG would make each run's new).
FIXED_PASSPHRASE = b"bcdef ghjkn prstu vxbcd efghj"


@pytest.fixture(scope="module")
def screens() -> list[Seen]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("runtime.secrets.passphrase.generate", lambda: bytearray(FIXED_PASSPHRASE))
        return walk()


def _menus(screens: list[Seen]) -> list[Seen]:
    return [s for s in screens if isinstance(s.description, Menu)]


def _rendered(description: Description, columns: int, rows: int) -> str:
    canvas = make_view(description).widget.render((columns, rows), focus=True)
    return "\n".join(line.decode("utf-8").rstrip() for line in canvas.text)


def _words(text: str) -> str:
    return " ".join(text.split())


def _readable(description: Description) -> str:
    d = description
    parts = [d.title]
    if isinstance(d, Menu):
        parts += [*d.body, *(c.label for c in d.choices)]
    elif isinstance(d, Prompt):
        parts += [*d.body, d.label]
    elif isinstance(d, Page):
        parts += list(d.lines)
    else:
        parts += [d.text, *d.lines]
    return "\n".join(parts)


def test_the_walk_reaches_every_state_that_shows_a_screen(screens: list[Seen]) -> None:
    titles = {s.description.title for s in screens}
    for title in (
        "boot menu",
        "Options",
        "Boot options",
        "TPM/TOTP/HOTP options",
        "GPG options",
        "Integrity report",
        "Reset the TPM?",
        "Power off now?",
        "Reboot now?",
        "Open the recovery shell?",
        "Seal a new TOTP/HOTP secret?",
        "Update checksums and sign /boot",
        "Boot refused",
        "OS boot menu",
        "Automatic boot",
        "no TPM",
        "cannot start",
        "no /boot partition",
        "TPM state inconsistent",
        "no owner key",
        "TOTP code cannot be shown",
        "HOTP",
        "No default boot entry",
        "Boot without verifying /boot?",
        "/boot is not signed yet",
        "signed by another key",
        "no /boot partition",
        "older signed /boot was put back",
        "The boot did not start",
        "The HOTP token was not programmed",
        "Details",
        "Current TPM passphrase",
        "TPM is locked out, no TOTP code",
        "TPM is locked out, HOTP not verified",
        "TPM lockout passphrase",
        "The TPM lockout is cleared",
        "The TPM is not locked out",
        "New TPM owner passphrase",
        "Write down the new TPM owner passphrase",
        "Type the new passphrase back",
        "That is not the passphrase shown",
        "Your own TPM owner passphrase",
    ):
        assert any(title in t for t in titles), f"no screen titled {title!r} was reached"
    assert len(screens) > 60


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_no_option_is_clipped(screens: list[Seen], size: tuple[int, int]) -> None:
    columns, rows = size
    for seen in _menus(screens):
        menu = seen.description
        assert isinstance(menu, Menu)
        shown = _words(_rendered(menu, columns, rows))
        for choice in menu.choices:
            assert _words(f"{choice.key}  {choice.label}") in shown, (
                f"{menu.title!r} at {columns}x{rows} hides {choice.label!r}:\n"
                + _rendered(menu, columns, rows)
            )


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_every_screen_renders_with_its_title_and_footer(
    screens: list[Seen], size: tuple[int, int]
) -> None:
    columns, rows = size
    for seen in screens:
        text = _rendered(seen.description, columns, rows)
        assert len(text.split("\n")) == rows
        assert _words(seen.description.title)[: columns // 2] in _words(text)


def _problem(menu: Menu) -> bool:
    return any(line.startswith("What you can do:") for line in menu.body)


def test_the_key_scheme_holds_on_every_menu(screens: list[Seen]) -> None:
    heads_seen: set[tuple[State, str, str]] = set()
    for seen in _menus(screens):
        menu = seen.description
        assert isinstance(menu, Menu)
        where = f"{menu.title!r} (variant {seen.variant}, path {seen.path})"
        keys = [c.key for c in menu.choices]
        assert len(keys) == len(set(keys)), f"two choices share a key on {where}"
        # a failure screen Heads has too: Heads' letters first (the sub-screens keep the scheme)
        heads = HEADS_KEYS.get(seen.state, {}) if _problem(menu) else {}
        for choice in menu.choices:
            if choice.key in heads:
                assert choice.event == heads[choice.key], (
                    f"{choice.key!r} means {choice.event!r} on {where}, not Heads' "
                    f"{heads[choice.key]!r}"
                )
                heads_seen.add((seen.state, choice.key, choice.event))
                continue
            if choice.key == BACK:
                assert choice.event == menu.back_event, f"{BACK!r} is not Back on {where}"
            if choice.key in RESERVED:
                assert choice.event == RESERVED[choice.key], (
                    f"{choice.key!r} means {choice.event!r} on {where}"
                )
            for key, event in RESERVED.items():
                if choice.event == event and key not in heads:  # else Heads took its letter
                    assert choice.key == key, f"{event!r} has the key {choice.key!r} on {where}"
            if choice.event == menu.back_event:
                assert choice.key in (BACK, "n"), f"Back is {choice.key!r} on {where}"
        if menu.back_event is None:
            # only the main menu and the forks of the start have nowhere to go back to
            assert _problem(menu) or menu.title.endswith("boot menu"), f"no Back on {where}"
    # every letter of every Heads screen was met on the walk
    assert heads_seen == {
        (state, key, event)
        for state, letters in HEADS_KEYS.items()
        for key, event in letters.items()
    }


def test_destructive_actions_ask_first_with_no_selected(screens: list[Seen]) -> None:
    checked = set()
    for seen in _menus(screens):
        menu = seen.description
        assert isinstance(menu, Menu)
        for key, shown in seen.after:
            if key not in DESTRUCTIVE or key == "F":  # the OEM reset is a page for now
                continue
            # a page (nothing done, e.g. "No TPM") or the question, No first
            if isinstance(shown, Menu):
                assert shown.choices[0].event == shown.back_event == "no", (
                    f"{key!r} on {menu.title!r} led to {shown.title!r} "
                    "without a question whose first answer is No"
                )
                checked.add(key)
            else:
                assert isinstance(shown, Page), (key, menu.title, shown.title)
    assert {"p", "R", "T", "u"} <= checked


def test_recovery_letter_means_only_the_recovery_shell(screens: list[Seen]) -> None:
    for seen in _menus(screens):
        menu = seen.description
        assert isinstance(menu, Menu)
        for choice in menu.choices:
            assert (choice.key == RECOVERY_KEY) == (choice.event == "recovery"), menu.title


#: What no screen may show: internals of the runtime or the disk's raw text.
_INTERNAL = re.compile(r"Traceback|Command '\[|0x0|\w\|(elf|xen|multiboot)\||Errno|TSS2_")


def test_no_screen_shows_internal_text(screens: list[Seen]) -> None:
    for seen in screens:
        if seen.description.title == "Details":
            continue  # asked for: the technical lines are its point
        text = _readable(seen.description)
        assert not _INTERNAL.search(text), f"{seen.description.title!r} shows:\n{text}"


#: Advice words and the event a screen must offer when its advice says them.
_ADVICE = {
    r"\breboot\b|\brestart\b": "reboot",
    r"\bgenerate\b": "generate",
    r"\breset the tpm\b": "reset-tpm",
    r"\bretry\b|\btry again\b|\bcheck again\b": "retry",
    r"\bintegrity report\b": "report",
    r"\bpower off\b": "power-off",
    r"\bcontinu": "continue",
    r"\bsign (/boot|it)\b": "update-checksums",
    r"\brecovery shell\b": "recovery",
    r"\boem factory reset\b": "oem-reset",
}
_SAME = {"report": {"report", "investigate"}}


def test_advice_names_only_what_the_screen_offers(screens: list[Seen]) -> None:
    for seen in _menus(screens):
        menu = seen.description
        assert isinstance(menu, Menu)
        advice = [
            line.removeprefix("What you can do:")
            for line in menu.body
            if line.startswith("What you can do:")
        ]
        # a sentence that gives a path through the menus ("Options > ...") is a route
        sentences = [
            s for text in advice for s in re.split(r"(?<=[.:;])\s+", text) if "Options >" not in s
        ]
        events = {c.event for c in menu.choices}
        for sentence in sentences:
            for pattern, event in _ADVICE.items():
                if re.search(pattern, sentence, re.IGNORECASE):
                    assert events & _SAME.get(event, {event}), (
                        f"{menu.title!r} advises {sentence!r} but offers no {event!r}"
                    )


def test_the_scheme_table_for_people_matches_the_code() -> None:
    table = (REPO_ROOT / "runtime" / "ui" / "KEYS.md").read_text()
    rows = dict(re.findall(r"^\| `([^`]+)` \| `([^`]+)` \|", table, re.MULTILINE))
    assert rows.pop(BACK) == "back"
    assert rows == RESERVED


def test_the_verdict_screens_agree_with_their_colour(screens: list[Seen]) -> None:
    """The main menu, the integrity report and the countdown lead with one
    verdict line, whose tone is the verdict's: green only for VERIFIED. The
    countdown runs for nothing less, but for the rollback check the owner
    turned off (as Heads), which is yellow and says so."""
    from runtime.state.view import Tone

    shown = 0
    for seen in _menus(screens):
        menu = seen.description
        assert isinstance(menu, Menu)
        if not (
            (menu.title.endswith(" boot menu") and "|" in menu.title)
            or menu.title in ("Integrity report", "Automatic boot")
        ):
            continue
        word = menu.body[0].split(":", 1)[0]
        expected = {"VERIFIED": Tone.GOOD, "TAMPERED?": Tone.ERROR, "NO TPM": Tone.ERROR}.get(
            word, Tone.WARNING
        )
        assert menu.tone is expected, (menu.title, menu.body[0], menu.tone)
        if menu.title == "Automatic boot":
            assert word in ("VERIFIED", "ROLLBACK CHECK OFF"), menu.body
        shown += 1
    assert shown > 10
