"""A new TPM owner passphrase (issue 27, finding 10): the TPM does not
rate-limit guesses of hierarchy passphrases, so "Reset the TPM" generates a
strong one by default (shown once on a page, typed back) and refuses a weak
typed one with a plain reason. Every buffer that held a passphrase is zero
afterwards, on every path."""

from __future__ import annotations

import math
import re

import pytest

from runtime.secrets import passphrase
from runtime.state.machine import State
from runtime.state.platform import ResetFacts
from runtime.state.steps.tpm_reset import TPM_PASSPHRASE_MAX, TPM_PASSPHRASE_MIN
from runtime.state.view import Menu, Page, Prompt, Tone
from runtime.tpm.ownership import AUTH_MAX_BYTES
from tests.fakes_platform import GOOD_TOTP, FakePlatform, failed_totp, run_machine
from tests.fakes_ui import ScriptedUi, Step, power_off

MAIN = "boot menu"
CHOICE = "New TPM owner passphrase"
PAGE = "Write down the new TPM owner passphrase"
TYPE_BACK = "Type the new passphrase back"
MISMATCH = "That is not the passphrase shown"
OWN = "Your own TPM owner passphrase"
KNOWN = b"kdrvs nbxpe fuhtc gjkse rtnvb"
#: the owner passphrases the QEMU tests type (tests/e2e): they must pass the rule
E2E_PASSPHRASES = (
    "owner passphrase 1",
    "owner passphrase 2",
    "verdict owner 1",
    "ram-scan owner passphrase 7Qx",
    "ram-scan second passphrase 4Kw",
)
GROUPS = re.compile(r"^[bcdefghjknprstuvx]{5}( [bcdefghjknprstuvx]{5}){4}$")


# --- the generator -----------------------------------------------------------------


def test_a_generated_passphrase_is_five_groups_of_five_letters_in_29_bytes() -> None:
    for _ in range(200):
        made = passphrase.generate()
        assert isinstance(made, bytearray)
        assert len(made) == passphrase.GENERATED_BYTES == 29
        assert GROUPS.match(made.decode("ascii")), made


def test_a_generated_passphrase_fits_the_tpm_and_has_at_least_100_bits() -> None:
    assert passphrase.GENERATED_BYTES <= TPM_PASSPHRASE_MAX
    assert passphrase.GENERATED_BYTES <= AUTH_MAX_BYTES
    bits = passphrase.GENERATED_LETTERS * math.log2(len(passphrase.ALPHABET))
    assert bits == passphrase.GENERATED_BITS >= 100


def test_the_alphabet_has_no_look_alike_and_no_letter_a_layout_moves() -> None:
    alphabet = passphrase.ALPHABET.decode()
    assert len(set(alphabet)) == len(alphabet) == 17
    assert alphabet.islower() and alphabet.isalpha() and alphabet.isascii()
    assert not set(alphabet) & set("0o1li")  # hand-written look-alikes
    assert not set(alphabet) & set("aqwzym")  # move between QWERTY, QWERTZ and AZERTY
    assert not set(alphabet) & set("0123456789")  # AZERTY types digits with Shift


def test_generated_passphrases_come_from_the_rng_and_use_every_letter() -> None:
    made = [bytes(passphrase.generate()) for _ in range(300)]
    assert len(set(made)) == len(made)
    used = set(b"".join(made).replace(b" ", b""))
    assert used == set(passphrase.ALPHABET)


def test_the_generator_draws_every_letter_from_the_secrets_module(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    draws: list[int] = []

    def randbelow(n: int) -> int:
        draws.append(n)
        return len(draws) % n

    monkeypatch.setattr("runtime.secrets.passphrase.secrets.randbelow", randbelow)
    passphrase.generate()
    assert draws == [len(passphrase.ALPHABET)] * passphrase.GENERATED_LETTERS


def test_a_generated_passphrase_passes_the_typed_rule_too() -> None:
    assert passphrase.weakness(passphrase.generate()) == ""


def test_the_mismatch_names_the_group_never_the_letters() -> None:
    expected = bytearray(KNOWN)
    assert passphrase.mismatch(expected, bytearray(KNOWN)) == ""
    typo = bytearray(KNOWN)
    typo[13] = ord("x")  # the third group
    said = passphrase.mismatch(expected, typo)
    assert "group 3" in said and "fuhtc" not in said and "x" not in said.split()
    no_space = bytearray(KNOWN.replace(b" ", b"", 1))
    assert "group 1" in passphrase.mismatch(expected, no_space)
    assert "shorter" in passphrase.mismatch(expected, bytearray(KNOWN[:-2]))
    assert "longer" in passphrase.mismatch(expected, bytearray(KNOWN + b"x"))
    assert "group 1" in passphrase.mismatch(expected, bytearray(KNOWN.upper()))


# --- the strength rule -------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        *E2E_PASSPHRASES,
        "correct horse battery",
        "correct horse",
        "new passphrase",
        "Tr0ub4dor&3x",
        "mypassphrases",
        "1974-05-17 !!",
        "héllo wörld 12",
    ],
)
def test_strong_enough_passphrases_are_taken(text: str) -> None:
    assert passphrase.weakness(bytearray(text.encode())) == "", text


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("short one 1", "It has 11 characters: at least 12 are needed."),
        (
            "mypassphrase",
            "it has only lower-case letters. Make it 1 character longer, or mix "
            "in capitals, digits or signs.",
        ),
        ("MYPASSPHRASE", "it has only capitals"),
        ("194705172026418", "it has only digits"),
        ("password1234", "2 of its characters continue a repeat or a run"),
        ("aaaaaaaaaaaaaaaa", "14 of its characters continue a repeat or a run"),
        ("abcdefghijklmnop", "continue a repeat or a run"),
        ("ZYXWVUTSRQPONM", "continue a repeat or a run"),
        ("qwertyuiop12", "continue a repeat or a run"),
        ("azertyuiop12", "continue a repeat or a run"),
        ("98765432100000", "it has only digits and"),
    ],
)
def test_weak_passphrases_are_refused_with_a_plain_reason(text: str, words: str) -> None:
    said = passphrase.weakness(bytearray(text.encode()))
    assert words in said, said
    assert said.endswith(".") and "bits" not in said


def test_characters_are_counted_not_bytes() -> None:
    found = passphrase.estimate(bytearray("ééééééééééé".encode()))  # 11 characters, 22 bytes
    assert found.characters == 11
    assert "11 characters" in passphrase.weakness(bytearray("ééééééééééé".encode()))


def test_the_rule_as_stated_is_the_rule_applied() -> None:
    """The prompt says: 12 characters, lower-case alone 13, digits alone 19,
    a mix of kinds 12; so a refusal at 12 characters or more always has a
    reason to give (one kind only, or runs)."""
    assert TPM_PASSPHRASE_MIN == passphrase.MIN_LENGTH == 12
    size = {"lower": 26, "upper": 26, "digit": 10, "other": 33}

    def needs(pool: int) -> int:
        return max(passphrase.MIN_LENGTH, math.ceil(passphrase.MIN_BITS / math.log2(pool)))

    assert needs(size["lower"]) == needs(size["upper"]) == 13
    assert needs(size["digit"]) == 19
    assert needs(size["other"]) == 12
    assert all(needs(size[a] + size[b]) == 12 for a in size for b in size if a < b)
    assert "13" in passphrase.RULE and "19" in passphrase.RULE and "12" in passphrase.RULE
    for text, ok in (
        ("mypassphrase", False),
        ("mypassphrases", True),
        ("194705172026418", False),
        ("1947051720264183972", True),
        ("my9assphrase", True),
    ):
        assert (passphrase.weakness(bytearray(text.encode())) == "") is ok, text


# --- the reset flow ------------------------------------------------------------------


class RecordingUi(ScriptedUi):
    """Keeps every secret answer it handed out, to check that each is wiped."""

    def __init__(self, script: list[Step]) -> None:
        super().__init__(script)
        self.secrets: list[bytearray] = []

    def ask(self, prompt: Prompt) -> str | bytearray | None:
        answer = super().ask(prompt)
        if isinstance(answer, bytearray):
            self.secrets.append(answer)
        return answer


class Generated:
    """Stands in for the generator: known buffers, kept to check the wipe."""

    def __init__(self, *values: bytes) -> None:
        self.values = list(values)
        self.made: list[bytearray] = []

    def __call__(self) -> bytearray:
        self.made.append(bytearray(self.values.pop(0)))
        return self.made[-1]


@pytest.fixture
def generated(monkeypatch: pytest.MonkeyPatch) -> Generated:
    fake = Generated(KNOWN, b"bcdef ghjkn prstu vxbcd efghj")
    monkeypatch.setattr(passphrase, "generate", fake)
    return fake


def reset(
    platform: FakePlatform, steps: list[Step], then: list[Step] | None = None
) -> tuple[State, RecordingUi]:
    """From the start's "TOTP code cannot be shown": T, yes, ``steps``, then
    ``then`` (default: No to sealing) and power off."""
    from runtime.state import driver
    from runtime.state.steps import Context

    after = (
        [("show", "The TPM was reset", None), ("choose", "Seal a new", "n")]
        if then is None
        else then
    )
    ui = RecordingUi(
        [
            ("choose", "TOTP code cannot be shown", "p"),
            ("choose", "Reset the TPM?", "y"),
            *steps,
            *after,
            *power_off(MAIN),
        ]
    )
    final = driver.run(Context(ui, platform))
    ui.assert_finished()
    return final, ui


def zero(buffer: bytearray) -> bool:
    return len(buffer) > 0 and not any(buffer)


def test_the_choice_comes_first_with_generate_selected_and_back_cancels() -> None:
    platform = FakePlatform(totp_results=[failed_totp()])
    final, ui = reset(platform, [("choose", CHOICE, "esc")], then=[])
    assert final is State.POWER_OFF and "reset_tpm" not in platform.calls
    menu = ui.shown[ui.titles().index(CHOICE)].description
    assert isinstance(menu, Menu)
    assert [(c.key, c.label) for c in menu.choices[:2]] == [
        ("g", "Generate a strong passphrase (recommended)"),
        ("t", "Type my own passphrase"),
    ]
    assert menu.choices[2].key == "b" and menu.choices[2].event == menu.back_event
    assert "does not slow down guesses" in ui.texts()[ui.titles().index(CHOICE)]


def test_enter_generates_shows_it_once_and_the_typed_back_one_resets_the_tpm(
    generated: Generated,
) -> None:
    platform = FakePlatform(totp_results=[failed_totp()])
    final, ui = reset(
        platform, [("choose", CHOICE, "enter"), ("show", PAGE, None), ("ask", TYPE_BACK, KNOWN)]
    )
    assert final is State.POWER_OFF
    assert platform.passphrases == [KNOWN]
    page = ui.shown[ui.titles().index(PAGE)]
    assert isinstance(page.description, Page) and page.tone is Tone.WARNING
    assert "    " + KNOWN.decode() in page.description.lines
    assert (
        "Write this down now: it is asked whenever a secret is sealed and to reset the TPM again."
    ) in page.text
    prompt = ui.shown[ui.titles().index(TYPE_BACK)].description
    assert isinstance(prompt, Prompt) and prompt.secret and not prompt.confirm
    assert prompt.max_bytes == TPM_PASSPHRASE_MAX
    # the generated buffer went to the session and was wiped at the "No" to sealing
    assert len(generated.made) == 1 and zero(generated.made[0])
    assert all(zero(b) for b in ui.secrets)


def test_the_generated_passphrase_seals_the_secret_and_is_wiped_after(generated: Generated) -> None:
    platform = FakePlatform(totp_results=[failed_totp(), GOOD_TOTP])
    final, _ = reset(
        platform,
        [("choose", CHOICE, "g"), ("show", PAGE, None), ("ask", TYPE_BACK, KNOWN)],
        then=[
            ("show", "The TPM was reset", None),
            ("choose", "Seal a new", "y"),
            ("show", "Scan this", None),
            ("show", "TOTP secret", None),
        ],
    )
    assert final is State.POWER_OFF
    assert platform.passphrases == [KNOWN, KNOWN]  # reset, then sealing: not asked again
    assert zero(generated.made[0])


def test_a_mismatch_says_where_and_the_same_passphrase_can_be_typed_again(
    generated: Generated,
) -> None:
    platform = FakePlatform(totp_results=[failed_totp()])
    final, ui = reset(
        platform,
        [
            ("choose", CHOICE, "g"),
            ("show", PAGE, None),
            ("ask", TYPE_BACK, KNOWN.replace(b"gjkse", b"gjkes")),
            ("choose", MISMATCH, "r"),
            ("ask", TYPE_BACK, KNOWN),
        ],
    )
    assert final is State.POWER_OFF
    assert platform.passphrases == [KNOWN] and len(generated.made) == 1
    mismatch = ui.texts()[ui.titles().index(MISMATCH)]
    assert "group 4" in mismatch and "gjkse" not in mismatch
    assert ui.titles(kind="show").count(PAGE) == 1  # "type it again" does not show it
    retyped = ui.shown[[i for i, t in enumerate(ui.titles()) if t == TYPE_BACK][1]]
    assert "group 4" in retyped.text and retyped.tone is Tone.WARNING
    assert zero(generated.made[0]) and all(zero(b) for b in ui.secrets)


def test_after_a_mismatch_the_same_passphrase_can_be_shown_again(generated: Generated) -> None:
    platform = FakePlatform(totp_results=[failed_totp()])
    final, ui = reset(
        platform,
        [
            ("choose", CHOICE, "g"),
            ("show", PAGE, None),
            ("ask", TYPE_BACK, KNOWN[:-6]),
            ("choose", MISMATCH, "s"),
            ("show", PAGE, None),
            ("ask", TYPE_BACK, KNOWN),
        ],
    )
    assert final is State.POWER_OFF
    pages = [s for s in ui.shown if s.title == PAGE]
    assert len(pages) == 2 and pages[0].description == pages[1].description
    assert "shorter" in ui.texts()[ui.titles().index(MISMATCH)]
    assert platform.passphrases == [KNOWN] and len(generated.made) == 1


def test_back_after_a_mismatch_drops_the_passphrase_and_a_new_one_is_generated(
    generated: Generated,
) -> None:
    platform = FakePlatform(totp_results=[failed_totp()])
    second = b"bcdef ghjkn prstu vxbcd efghj"
    final, ui = reset(
        platform,
        [
            ("choose", CHOICE, "g"),
            ("show", PAGE, None),
            ("ask", TYPE_BACK, b"nonsense"),
            ("choose", MISMATCH, "esc"),
            ("choose", CHOICE, "g"),
            ("show", PAGE, None),
            ("ask", TYPE_BACK, second),
        ],
    )
    assert final is State.POWER_OFF
    assert platform.passphrases == [second]
    assert zero(generated.made[0]) and zero(generated.made[1])
    assert "    " + second.decode() in ui.texts()[len(ui.shown) - 1 - ui.titles()[::-1].index(PAGE)]


@pytest.mark.parametrize(
    "steps",
    [
        # Esc at the typed-back prompt, then Esc at the choice
        [
            ("choose", CHOICE, "g"),
            ("show", PAGE, None),
            ("ask", TYPE_BACK, None),
            ("choose", CHOICE, "esc"),
        ],
        # a mismatch, Back, then Back at the choice
        [
            ("choose", CHOICE, "g"),
            ("show", PAGE, None),
            ("ask", TYPE_BACK, b"wrong"),
            ("choose", MISMATCH, "b"),
            ("choose", CHOICE, "b"),
        ],
    ],
    ids=["esc-at-type-back", "back-after-mismatch"],
)
def test_a_cancelled_generated_passphrase_is_wiped_and_nothing_is_reset(
    generated: Generated, steps: list[Step]
) -> None:
    platform = FakePlatform(totp_results=[failed_totp()])
    final, ui = reset(platform, steps, then=[])
    assert final is State.POWER_OFF and "reset_tpm" not in platform.calls
    assert len(generated.made) == 1 and zero(generated.made[0])
    assert all(zero(b) for b in ui.secrets)


def test_a_failed_reset_wipes_the_generated_passphrase(generated: Generated) -> None:
    platform = FakePlatform(
        totp_results=[failed_totp()], reset_results=[ResetFacts(problem="The TPM is locked out.")]
    )
    final, _ = reset(
        platform,
        [("choose", CHOICE, "g"), ("show", PAGE, None), ("ask", TYPE_BACK, KNOWN)],
        then=[("show", "was not reset", None)],
    )
    assert final is State.POWER_OFF and platform.passphrases == [KNOWN]
    assert zero(generated.made[0])


def test_the_current_passphrase_is_asked_first_then_the_generated_one_is_set(
    generated: Generated,
) -> None:
    platform = FakePlatform(totp_results=[failed_totp()], reset_needs_current=True)
    final, ui = reset(
        platform,
        [
            ("ask", "Current TPM passphrase", b"old passphrase"),
            ("choose", CHOICE, "g"),
            ("show", PAGE, None),
            ("ask", TYPE_BACK, KNOWN),
        ],
    )
    assert final is State.POWER_OFF
    # the fake records the new owner passphrase, then the current one
    assert platform.passphrases == [KNOWN, b"old passphrase"]
    assert zero(generated.made[0]) and all(zero(b) for b in ui.secrets)


def test_the_real_generator_through_the_flow() -> None:
    """Typed back from what the page shows, as a person does."""

    class CopyingUi(RecordingUi):
        def ask(self, prompt: Prompt) -> str | bytearray | None:
            if prompt.title == TYPE_BACK:
                page = next(s for s in reversed(self.shown) if s.title == PAGE)
                assert isinstance(page.description, Page)
                copy = next(
                    line.strip() for line in page.description.lines if GROUPS.match(line.strip())
                )
                self.script[0] = (*self.script[0][:2], copy.encode())
            return super().ask(prompt)

    from runtime.state import driver
    from runtime.state.steps import Context

    platform = FakePlatform(totp_results=[failed_totp()])
    ui = CopyingUi(
        [
            ("choose", "TOTP code cannot be shown", "p"),
            ("choose", "Reset the TPM?", "y"),
            ("choose", CHOICE, "enter"),
            ("show", PAGE, None),
            ("ask", TYPE_BACK, b"(copied)"),
            ("show", "The TPM was reset", None),
            ("choose", "Seal a new", "n"),
            *power_off(MAIN),
        ]
    )
    assert driver.run(Context(ui, platform)) is State.POWER_OFF
    ui.assert_finished()
    assert len(platform.passphrases) == 1
    assert GROUPS.match(platform.passphrases[0].decode())
    assert all(zero(b) for b in ui.secrets)


def test_a_weak_typed_passphrase_is_refused_with_its_reason_then_a_strong_one_is_set() -> None:
    platform = FakePlatform(totp_results=[failed_totp()])
    final, ui = reset(
        platform,
        [
            ("choose", CHOICE, "t"),
            ("ask", OWN, b"password1234"),
            ("ask", OWN, b"mypassphrase"),
            ("ask", OWN, b"owner passphrase 1"),
        ],
    )
    assert final is State.POWER_OFF
    assert platform.passphrases == [b"owner passphrase 1"]
    prompts = [s for s in ui.shown if s.title == OWN]
    first = prompts[0].description
    assert isinstance(first, Prompt)
    assert first.secret and first.confirm and first.min_length == 12
    assert first.max_bytes == TPM_PASSPHRASE_MAX and passphrase.RULE in first.body
    assert prompts[0].tone is Tone.NORMAL
    assert (
        "Not taken. It is too easy to guess: 2 of its characters continue a repeat or a run"
        in prompts[1].text
        and prompts[1].tone is Tone.WARNING
    )
    assert "it has only lower-case letters. Make it 1 character longer" in prompts[2].text
    assert all(zero(b) for b in ui.secrets)  # refused ones at once, the set one after


def test_a_strong_typed_passphrase_is_taken_at_once_and_esc_goes_back_to_the_choice(
    generated: Generated,
) -> None:
    platform = FakePlatform(totp_results=[failed_totp()])
    final, ui = reset(
        platform,
        [
            ("choose", CHOICE, "t"),
            ("ask", OWN, None),
            ("choose", CHOICE, "t"),
            ("ask", OWN, b"correct horse battery"),
        ],
    )
    assert final is State.POWER_OFF
    assert platform.passphrases == [b"correct horse battery"]
    assert generated.made == [] and all(zero(b) for b in ui.secrets)


def test_existing_passphrases_are_never_checked_for_strength() -> None:
    """Only a NEW passphrase is checked: the current one for a reset and the
    owner passphrase for sealing are taken as typed, however weak."""
    platform = FakePlatform(totp_results=[failed_totp(), GOOD_TOTP], reset_needs_current=True)
    final, _ = run_machine(
        platform,
        [
            ("choose", "TOTP code cannot be shown", "p"),
            ("choose", "Reset the TPM?", "y"),
            ("ask", "Current TPM passphrase", b"old"),
            ("choose", CHOICE, "t"),
            ("ask", OWN, b"owner passphrase 1"),
            ("show", "The TPM was reset", None),
            ("choose", "Seal a new", "n"),
            ("choose", MAIN, "o"),
            ("choose", "Options", "t"),
            ("choose", "TPM/TOTP/HOTP options", "g"),
            ("choose", "Seal a new", "y"),
            ("ask", "TPM owner passphrase", b"owner"),
            ("show", "Scan this", None),
            ("show", "TOTP secret", None),
            *power_off(MAIN),
        ],
    )
    assert final is State.POWER_OFF
    assert platform.passphrases == [b"owner passphrase 1", b"old", b"owner"]


def test_a_reset_that_failed_after_the_clear_is_titled_so() -> None:
    from runtime.state.platform import ResetFacts
    from tests.fakes_platform import FakePlatform, failed_totp, run_machine
    from tests.fakes_ui import power_off

    platform = FakePlatform(
        owned=False,
        totp_results=[failed_totp()],
        reset_results=[
            ResetFacts(
                problem="The TPM was cleared (its old secrets are gone), but ...", cleared=True
            )
        ],
    )
    _, ui = run_machine(
        platform,
        [
            ("choose", "TOTP code cannot be shown", "p"),
            ("choose", "Reset the TPM?", "y"),
            ("choose", "New TPM owner passphrase", "t"),
            ("ask", "Your own TPM owner passphrase", b"correct horse battery"),
            ("show", "The TPM was cleared, but not owned again", None),
            *power_off("boot menu"),
        ],
    )
    assert "The TPM was not reset" not in ui.titles()
