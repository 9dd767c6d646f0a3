"""Owner authentication for the recovery shell, checked with real gpg in
temporary homes: only a good signature by a pinned owner key over the
challenge shown now opens the gate. Each refused answer is said in plain
words and may be tried again, a bounded number of times; Ctrl-D leaves."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gnupg
import pytest

from runtime.integrity.gpg_signer import stop_gpg_daemons
from runtime.recovery.auth import (
    CHALLENGE_PREFIX,
    NONCE_SIZE,
    PLAIN_REASONS,
    AuthResult,
    Challenge,
    Choice,
    Failure,
    Progress,
    armored_block,
    authenticate,
    judge,
    new_challenge,
    plain_reason,
    statuses,
    verify_response,
)
from runtime.recovery.prompt import ConsolePrompter


def counting_random() -> Callable[[int], bytes]:
    state = {"n": 0}

    def random_bytes(count: int) -> bytes:
        state["n"] += 1
        return bytes([state["n"]]) * count

    return random_bytes


@dataclass
class Keys:
    gpg: Any  # python-gnupg's GPG on the signing home
    owner: str  # fingerprints
    other: str
    stranger: str  # never in the owner key file
    owner_file: str  # the owner's public key only
    both_file: str  # owner and other public keys

    def sign(self, text: str, key: str, *, clearsign: bool = False) -> str:
        signed = self.gpg.sign(text, keyid=key, detach=not clearsign, clearsign=clearsign)
        assert signed.data, signed.stderr
        return str(signed)


def _new_key(gpg: Any, name: str, *, subkey: bool = False) -> str:
    params: dict[str, str] = {
        "key_type": "EDDSA",
        "key_curve": "ed25519",
        "name_real": name,
        "name_email": f"{name}@example.org",
        "no_protection": "1",
    }
    if subkey:  # a certify-only primary with a signing subkey, as cards are set up
        params.update(
            key_usage="cert", subkey_type="EDDSA", subkey_curve="ed25519", subkey_usage="sign"
        )
    else:
        params["key_usage"] = "sign"
    text = gpg.gen_key_input(**params).replace("No-Protection: 1", "%no-protection")
    key = gpg.gen_key(text)
    assert key.fingerprint, key.stderr
    return str(key.fingerprint)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keys]:
    base = tmp_path_factory.mktemp("gpg")
    home = base / "home"
    home.mkdir(mode=0o700)
    gpg = gnupg.GPG(gnupghome=str(home))
    owner = _new_key(gpg, "owner", subkey=True)
    other = _new_key(gpg, "other")
    stranger = _new_key(gpg, "stranger")
    owner_file = base / "owner.asc"
    owner_file.write_text(gpg.export_keys(owner))
    both_file = base / "both.asc"
    both_file.write_text(gpg.export_keys([owner, other]))
    try:
        yield Keys(gpg, owner, other, stranger, str(owner_file), str(both_file))
    finally:
        # gen_key started an agent for the signing home: stop it.
        stop_gpg_daemons(str(home), check=True)


@pytest.fixture
def challenge() -> Challenge:
    return new_challenge(counting_random())


def check(
    keys: Keys,
    challenge: Challenge,
    response: str,
    tmp_path: Path,
    pinned: list[str] | None = None,
    key_file: str | None = None,
) -> AuthResult:
    return verify_response(
        challenge,
        response,
        key_file or keys.both_file,
        [keys.owner] if pinned is None else pinned,
        work_dir=str(tmp_path),
    )


# -- the challenge ---------------------------------------------------------------


def test_the_challenge_is_one_short_line_with_a_fresh_nonce_in_groups() -> None:
    challenge = new_challenge(lambda n: bytes.fromhex("00112233445566778899aabbccddeeff")[:n])
    assert NONCE_SIZE == 16  # 128 bits
    assert challenge.code == "00112233 44556677 8899aabb ccddeeff"
    assert challenge.text == f"{CHALLENGE_PREFIX} 00112233 44556677 8899aabb ccddeeff"
    assert len(challenge.text) <= 59  # fits a 60-column console with a column spare
    with pytest.raises(ValueError, match="gave 3 bytes"):
        new_challenge(lambda n: b"abc")


# -- pure parts --------------------------------------------------------------------


def test_armored_block_finds_one_block_and_drops_the_rest() -> None:
    detached = "-----BEGIN PGP SIGNATURE-----\n\nAAAA\n-----END PGP SIGNATURE-----"
    assert armored_block(f"$ gpg -a --detach-sign\n{detached}  \r\n$ ") == (detached + "\n", False)
    clear = "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nhello\n" + detached
    assert armored_block(clear) == (clear + "\n", True)
    assert armored_block("hello") is None
    assert armored_block(detached + "\n" + detached) is None
    assert armored_block("-----BEGIN PGP MESSAGE-----\nx\n-----END PGP SIGNATURE-----") is None


OWNER = "A" * 40
SUBKEY = "B" * 40


def status_lines(*lines: str) -> list[tuple[str, list[str]]]:
    return statuses("gpg: noise\n" + "\n".join(f"[GNUPG:] {line}" for line in lines))


@pytest.mark.parametrize(
    ("lines", "failure"),
    [
        ((), Failure.NOT_SIGNATURE),
        (("NEWSIG", "NEWSIG"), Failure.BAD_SIGNATURE),
        (("NEWSIG", f"EXPKEYSIG {OWNER[-16:]} owner"), Failure.KEY_INVALID),
        (("NEWSIG", f"REVKEYSIG {OWNER[-16:]} owner"), Failure.KEY_INVALID),
        (("NEWSIG", f"BADSIG {OWNER[-16:]} owner"), Failure.BAD_SIGNATURE),
        (("NEWSIG", "ERRSIG 1 22 8 00 1 9", "NO_PUBKEY 1"), Failure.NOT_OWNER),
        (("NEWSIG", "ERRSIG 1 99 8 00 1 4"), Failure.BAD_SIGNATURE),
        (("NEWSIG", "GOODSIG 1 x"), Failure.BAD_SIGNATURE),  # no VALIDSIG
        (
            ("NEWSIG", "GOODSIG 1 x", f"VALIDSIG {'C' * 40} d 1 0 4 0 22 8 00 {'C' * 40}"),
            Failure.NOT_OWNER,
        ),
    ],
)
def test_judge_refuses(lines: tuple[str, ...], failure: Failure) -> None:
    result = judge(status_lines(*lines), frozenset({OWNER}))
    assert not result.ok
    assert result.failure is failure
    assert result.reason.startswith(str(failure))


def test_judge_maps_a_subkey_to_its_pinned_primary() -> None:
    result = judge(
        status_lines("NEWSIG", "GOODSIG 1 x", f"VALIDSIG {SUBKEY} d 1 0 4 0 22 8 00 {OWNER}"),
        frozenset({OWNER}),
    )
    assert result.ok and result.signer == OWNER


# -- real gpg ----------------------------------------------------------------------


def test_an_owner_detached_signature_passes(
    keys: Keys, challenge: Challenge, tmp_path: Path
) -> None:
    result = check(keys, challenge, keys.sign(challenge.text, keys.owner), tmp_path)
    assert result.ok, result.reason
    assert result.signer == keys.owner  # made by the subkey, mapped to the primary
    assert list(tmp_path.iterdir()) == []  # the temporary GnuPG home is gone


def test_a_clearsigned_line_typed_with_other_spacing_or_case_passes(
    keys: Keys, challenge: Challenge, tmp_path: Path
) -> None:
    # Typed by hand: groups of 4, capitals, a trailing blank; the nonce is the same.
    digits = challenge.nonce.hex().upper()
    typed = f"heads-runtime  recovery {' '.join(digits[i : i + 4] for i in range(0, 32, 4))} \n"
    assert check(keys, challenge, keys.sign(typed, keys.owner, clearsign=True), tmp_path).ok
    other = new_challenge(lambda n: b"\x77" * n)
    refused = check(keys, challenge, keys.sign(other.text, keys.owner, clearsign=True), tmp_path)
    assert refused.failure is Failure.OTHER_CHALLENGE


def test_a_signature_over_the_line_with_a_newline_passes(
    keys: Keys, challenge: Challenge, tmp_path: Path
) -> None:
    assert check(keys, challenge, keys.sign(challenge.text + "\n", keys.owner), tmp_path).ok


def test_a_clearsigned_answer_with_surrounding_text_passes(
    keys: Keys, challenge: Challenge, tmp_path: Path
) -> None:
    signed = keys.sign(challenge.text, keys.owner, clearsign=True)
    result = check(keys, challenge, f"$ gpg --clearsign\n{signed}\n$ ", tmp_path)
    assert result.ok, result.reason


def test_the_owner_file_alone_pins_its_keys(
    keys: Keys, challenge: Challenge, tmp_path: Path
) -> None:
    signed = keys.sign(challenge.text, keys.owner)
    result = verify_response(challenge, signed, keys.owner_file, None, work_dir=str(tmp_path))
    assert result.ok, result.reason


def test_a_signature_over_an_old_challenge_fails(keys: Keys, tmp_path: Path) -> None:
    random_bytes = counting_random()
    old = new_challenge(random_bytes)
    now = new_challenge(random_bytes)
    clear = check(keys, now, keys.sign(old.text, keys.owner, clearsign=True), tmp_path)
    assert clear.failure is Failure.OTHER_CHALLENGE
    assert clear.reason.startswith("signature over another challenge (an old one?)")
    detached = check(keys, now, keys.sign(old.text, keys.owner), tmp_path)
    assert detached.failure is Failure.BAD_SIGNATURE
    assert "another challenge" in detached.reason


def test_another_key_in_the_keyring_is_not_the_owner(
    keys: Keys, challenge: Challenge, tmp_path: Path
) -> None:
    # python-gnupg calls this signature valid: only the pinned fingerprint refuses it.
    for clearsign in (False, True):
        signed = keys.sign(challenge.text, keys.other, clearsign=clearsign)
        result = check(keys, challenge, signed, tmp_path)
        assert not result.ok
        assert result.failure is Failure.NOT_OWNER
        assert keys.other in result.reason


def test_a_key_missing_from_the_keyring_is_not_the_owner(
    keys: Keys, challenge: Challenge, tmp_path: Path
) -> None:
    result = check(keys, challenge, keys.sign(challenge.text, keys.stranger), tmp_path)
    assert result.failure is Failure.NOT_OWNER


def test_a_changed_clearsigned_text_is_a_bad_signature(
    keys: Keys, challenge: Challenge, tmp_path: Path
) -> None:
    signed = keys.sign(challenge.text, keys.owner, clearsign=True)
    forged = signed.replace(challenge.code, "00000000 00000000 00000000 00000000")
    assert forged != signed
    assert check(keys, challenge, forged, tmp_path).failure is Failure.BAD_SIGNATURE


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "hello",
        "y" * 100_000,
        "-----BEGIN PGP SIGNATURE-----\n\nbm90IGEgc2lnbmF0dXJl\n-----END PGP SIGNATURE-----\n",
    ],
)
def test_garbage_is_not_a_signature(
    keys: Keys, challenge: Challenge, tmp_path: Path, garbage: str
) -> None:
    result = check(keys, challenge, garbage, tmp_path)
    assert not result.ok
    assert result.failure is Failure.NOT_SIGNATURE


def test_an_unreadable_owner_key_file_is_reported(
    keys: Keys, challenge: Challenge, tmp_path: Path
) -> None:
    signed = keys.sign(challenge.text, keys.owner)
    missing = check(keys, challenge, signed, tmp_path, key_file=str(tmp_path / "none.asc"))
    assert missing.failure is Failure.NO_OWNER_KEY
    junk = tmp_path / "junk.asc"
    junk.write_text("not a key")
    work = tmp_path / "work"
    work.mkdir()
    result = check(keys, challenge, signed, work, key_file=str(junk))
    assert result.failure is Failure.NO_OWNER_KEY
    assert "holds no OpenPGP public key" in result.reason


def test_a_hanging_gpg_is_killed(keys: Keys, challenge: Challenge, tmp_path: Path) -> None:
    fake = tmp_path / "gpg"
    fake.write_text("#!/bin/sh\nsleep 30\n")
    fake.chmod(0o755)
    work = tmp_path / "work"
    work.mkdir()
    result = verify_response(
        challenge,
        keys.sign(challenge.text, keys.owner),
        keys.owner_file,
        None,
        work_dir=str(work),
        gpg_binary=str(fake),
        timeout=0.5,
    )
    assert result.failure is Failure.GPG_FAILED
    assert "did not answer within 0.5 s" in result.reason


# -- the bounded conversation ------------------------------------------------------


Answer = Callable[[Challenge], str | None]


class Owner:
    """A fake console: each answer is the next function's text for the
    challenge shown, each refusal is answered with the next choice."""

    def __init__(self, answers: list[Answer], choices: list[Choice]) -> None:
        self.answers = answers
        self.choices = choices
        self.shown: list[tuple[Challenge, Progress]] = []
        self.refusals: list[tuple[str, int, bool]] = []
        self.given: list[str] = []

    def answer(self, challenge: Challenge, progress: Progress) -> str | None:
        self.shown.append((challenge, progress))
        text = self.answers[len(self.shown) - 1](challenge)
        self.given.append(text or "")
        return text

    def refused(self, reason: str, tries_left: int, new_allowed: bool) -> Choice:
        self.refusals.append((reason, tries_left, new_allowed))
        if not tries_left and not new_allowed:
            return Choice.LEAVE  # what the console does: nothing left to offer
        return self.choices[len(self.refusals) - 1]


def run(keys: Keys, owner: Owner, tmp_path: Path, log: list[str] | None = None) -> AuthResult:
    return authenticate(
        owner,
        keys.both_file,
        [keys.owner],
        work_dir=str(tmp_path),
        random_bytes=counting_random(),
        log=(log if log is not None else []).append,
    )


def test_every_refusal_is_said_plainly_and_can_be_tried_again(keys: Keys, tmp_path: Path) -> None:
    first: list[Challenge] = []

    def remember(challenge: Challenge) -> str:
        first.append(challenge)
        return ""  # Enter before anything was pasted

    owner = Owner(
        [
            remember,
            lambda _c: "hello",
            lambda c: keys.sign(c.text, keys.stranger),
            lambda _c: keys.sign(first[0].text, keys.owner, clearsign=True),  # an old challenge
            lambda _c: keys.sign(first[0].text, keys.owner),  # the same, detached
            lambda c: keys.sign(c.text, keys.owner, clearsign=True),
        ],
        [Choice.AGAIN, Choice.AGAIN, Choice.NEW, Choice.AGAIN, Choice.AGAIN],
    )
    log: list[str] = []
    result = run(keys, owner, tmp_path, log)
    assert result.ok, result.reason
    assert [reason for reason, _, _ in owner.refusals] == [
        "nothing was pasted.",
        PLAIN_REASONS[Failure.NOT_SIGNATURE],
        PLAIN_REASONS[Failure.NOT_OWNER],
        PLAIN_REASONS[Failure.OTHER_CHALLENGE],
        PLAIN_REASONS[Failure.BAD_SIGNATURE],
    ]
    assert [(left, new) for _, left, new in owner.refusals] == [
        (2, True),
        (1, True),
        (0, True),
        (2, True),
        (1, True),
    ]
    # Three tries over the first challenge, then a new one for the rest.
    challenges = [c for c, _ in owner.shown]
    assert challenges[0] == challenges[1] == challenges[2] != challenges[3]
    assert challenges[3] == challenges[4] == challenges[5]
    assert [(p.challenge, p.attempt) for _, p in owner.shown] == [
        (1, 1),
        (1, 2),
        (1, 3),
        (2, 1),
        (2, 2),
        (2, 3),
    ]
    # The details (gpg's findings) went to the log, never to the owner.
    for reason, _, _ in owner.refusals:
        assert "gpg" not in reason.lower() and "GNUPG" not in reason
    assert any("failure=signature by a key that is not the owner's" in line for line in log)
    assert "accepted" in log[-1]
    logged = "\n".join(log)
    for text in owner.given:  # no line of what was pasted is logged (its markers aside)
        assert not any(
            len(line) > 20 and line in logged
            for line in text.splitlines()
            if not line.startswith("-----")
        )


def test_the_retry_limit_ends_in_the_leave_path(keys: Keys, tmp_path: Path) -> None:
    owner = Owner([lambda _c: "garbage"] * 9, [Choice.AGAIN, Choice.AGAIN, Choice.NEW] * 3)
    result = run(keys, owner, tmp_path)
    assert not result.ok
    assert len(owner.shown) == 9
    assert len({c for c, _ in owner.shown}) == 3
    assert owner.refusals[-1][1:] == (0, False)  # nothing was left to offer
    assert result.failure is Failure.NOT_SIGNATURE
    last = PLAIN_REASONS[Failure.NOT_SIGNATURE]
    assert result.reason == f"9 answers were refused; the last: {last}"


def test_ctrl_d_leaves_at_once(keys: Keys, tmp_path: Path) -> None:
    owner = Owner([lambda _c: None], [])
    result = run(keys, owner, tmp_path)
    assert result.failure is Failure.CANCELLED
    assert result.reason == "cancelled: you left without a signature."
    assert owner.refusals == []


def test_leaving_after_a_refusal_says_what_was_refused(keys: Keys, tmp_path: Path) -> None:
    owner = Owner([lambda _c: ""], [Choice.LEAVE])
    result = run(keys, owner, tmp_path)
    assert result.failure is Failure.CANCELLED
    assert result.reason.endswith("The last answer was refused: nothing was pasted.")
    assert len(owner.shown) == 1


def test_a_missing_owner_key_is_not_asked_again(tmp_path: Path) -> None:
    owner = Owner([lambda _c: "x", lambda _c: "y"], [Choice.AGAIN])
    calls: list[str] = []

    def verify(*_args: object, **_kw: object) -> AuthResult:
        calls.append("verify")
        return AuthResult.refused(Failure.NO_OWNER_KEY, "gone")

    result = authenticate(owner, str(tmp_path / "none.asc"), verify=verify)
    assert result.failure is Failure.NO_OWNER_KEY
    assert result.reason == PLAIN_REASONS[Failure.NO_OWNER_KEY]
    assert calls == ["verify"]
    assert owner.refusals == []


def test_plain_reasons_cover_every_failure() -> None:
    for failure in Failure:
        assert plain_reason(AuthResult.refused(failure, "detail")) == PLAIN_REASONS[failure]


# -- the same, through the console ---------------------------------------------------


class Typist:
    """The owner at the console: a script of lines, or of functions that read
    the screen so far and give the text to type."""

    def __init__(self, *script: str | Callable[[str], str]) -> None:
        self.script = list(script)
        self.pending: list[str] = []
        self.screen = ""

    def write(self, text: str) -> None:
        self.screen += text

    def read_line(self) -> str:
        if not self.pending:
            if not self.script:
                return ""  # Ctrl-D
            item = self.script.pop(0)
            text = str(item(self.screen)) if callable(item) else item
            self.pending = text.splitlines(keepends=True) or [""]
        return self.pending.pop(0)


def shown_line(screen: str, index: int = -1) -> str:
    lines: list[str] = re.findall(r"^heads-runtime recovery(?: [0-9a-f]{8}){4}$", screen, re.M)
    return lines[index]


def test_the_console_conversation(keys: Keys, tmp_path: Path) -> None:
    typist = Typist(
        "\n",  # Enter: nothing was pasted
        "t\n",
        "1234\n\n",  # a PIN typed by mistake, then Enter
        "t\n",
        lambda screen: keys.sign(shown_line(screen), keys.stranger),
        "\n",  # Enter: leave
    )
    prompter = ConsolePrompter(typist.read_line, typist.write, width=60)
    result = authenticate(prompter, keys.both_file, [keys.owner], work_dir=str(tmp_path))
    assert result.failure is Failure.CANCELLED
    screen = typist.screen
    said = " ".join(screen.split())  # the words, however the lines were wrapped
    assert said.count("Not accepted: nothing was pasted.") == 1
    assert "Not accepted: that is not a signature block." in said
    assert "Not accepted: it was signed by a key that is not the owner's." in said
    assert "t and Enter: try again with this challenge (2 tries left)" in said
    assert "n and Enter: a new challenge to sign" in said
    assert "No tries are left for this challenge." in said
    assert len(set(re.findall(r"^heads-runtime recovery.*$", screen, re.M))) == 1
    assert all(len(line) <= 60 for line in screen.splitlines())
    for raw in ("gpg:", "[GNUPG:]", "Traceback", "--batch", "--status-fd"):
        assert raw not in screen


def test_the_console_conversation_can_end_with_the_owner(keys: Keys, tmp_path: Path) -> None:
    typist = Typist(
        lambda screen: keys.sign(shown_line(screen), keys.other, clearsign=True),
        "n\n",
        lambda screen: keys.sign(shown_line(screen, 0), keys.owner, clearsign=True),
        "t\n",
        lambda screen: keys.sign(shown_line(screen), keys.owner, clearsign=True),
    )
    prompter = ConsolePrompter(typist.read_line, typist.write, width=80)
    result = authenticate(prompter, keys.both_file, [keys.owner], work_dir=str(tmp_path))
    assert result.ok, result.reason
    said = " ".join(typist.screen.split())
    assert "Not accepted: it signs another text, not this challenge's line" in said
    assert "challenge 2, try 2 of 3" in typist.screen
