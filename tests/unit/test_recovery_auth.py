"""Owner authentication for the recovery shell, checked with real gpg in
temporary homes: only a good signature by a pinned owner key over the
challenge shown now opens the gate."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import gnupg
import pytest

from runtime.recovery.auth import (
    CHALLENGE_PREFIX,
    NONCE_SIZE,
    AuthResult,
    Challenge,
    Failure,
    armored_block,
    authenticate,
    judge,
    new_challenge,
    statuses,
    verify_response,
)

FIXED = datetime(2026, 7, 20, 12, 0, 5, tzinfo=UTC)


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
    params: dict[str, str] = {"key_type": "EDDSA", "key_curve": "ed25519",
                              "name_real": name, "name_email": f"{name}@example.org",
                              "no_protection": "1"}
    if subkey:  # a certify-only primary with a signing subkey, as cards are set up
        params.update(key_usage="cert", subkey_type="EDDSA", subkey_curve="ed25519",
                      subkey_usage="sign")
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
        gpgconf = shutil.which("gpgconf") or "/usr/bin/gpgconf"
        subprocess.run([gpgconf, "--homedir", str(home), "--kill", "all"],
                       timeout=30, check=True, capture_output=True)


@pytest.fixture
def challenge() -> Challenge:
    return new_challenge(counting_random(), now=lambda: FIXED)


def check(keys: Keys, challenge: Challenge, response: str, tmp_path: Path,
          pinned: list[str] | None = None, key_file: str | None = None) -> AuthResult:
    return verify_response(challenge, response, key_file or keys.both_file,
                           [keys.owner] if pinned is None else pinned, work_dir=str(tmp_path))


# -- the challenge ---------------------------------------------------------------


def test_the_challenge_is_one_line_with_a_fresh_nonce() -> None:
    challenge = new_challenge(lambda n: b"\xab" * n, now=lambda: FIXED)
    assert challenge.text == f"{CHALLENGE_PREFIX} {'ab' * NONCE_SIZE} 2026-07-20T12:00:05Z"
    with pytest.raises(ValueError, match="gave 3 bytes"):
        new_challenge(lambda n: b"abc")


# -- pure parts --------------------------------------------------------------------


def test_armored_block_finds_one_block_and_drops_the_rest() -> None:
    detached = "-----BEGIN PGP SIGNATURE-----\n\nAAAA\n-----END PGP SIGNATURE-----"
    assert armored_block(f"$ gpg -a --detach-sign\n{detached}  \r\n$ ") == (detached + "\n",
                                                                            False)
    clear = ("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nhello\n" + detached)
    assert armored_block(clear) == (clear + "\n", True)
    assert armored_block("hello") is None
    assert armored_block(detached + "\n" + detached) is None
    assert armored_block("-----BEGIN PGP MESSAGE-----\nx\n-----END PGP SIGNATURE-----") is None


OWNER = "A" * 40
SUBKEY = "B" * 40


def status_lines(*lines: str) -> list[tuple[str, list[str]]]:
    return statuses("gpg: noise\n" + "\n".join(f"[GNUPG:] {line}" for line in lines))


@pytest.mark.parametrize(("lines", "failure"), [
    ((), Failure.NOT_SIGNATURE),
    (("NEWSIG", "NEWSIG"), Failure.BAD_SIGNATURE),
    (("NEWSIG", f"EXPKEYSIG {OWNER[-16:]} owner"), Failure.KEY_INVALID),
    (("NEWSIG", f"REVKEYSIG {OWNER[-16:]} owner"), Failure.KEY_INVALID),
    (("NEWSIG", f"BADSIG {OWNER[-16:]} owner"), Failure.BAD_SIGNATURE),
    (("NEWSIG", "ERRSIG 1 22 8 00 1 9", "NO_PUBKEY 1"), Failure.NOT_OWNER),
    (("NEWSIG", "ERRSIG 1 99 8 00 1 4"), Failure.BAD_SIGNATURE),
    (("NEWSIG", "GOODSIG 1 x"), Failure.BAD_SIGNATURE),  # no VALIDSIG
    (("NEWSIG", "GOODSIG 1 x", f"VALIDSIG {'C' * 40} d 1 0 4 0 22 8 00 {'C' * 40}"),
     Failure.NOT_OWNER),
])
def test_judge_refuses(lines: tuple[str, ...], failure: Failure) -> None:
    result = judge(status_lines(*lines), frozenset({OWNER}))
    assert not result.ok
    assert result.failure is failure
    assert result.reason.startswith(str(failure))


def test_judge_maps_a_subkey_to_its_pinned_primary() -> None:
    result = judge(status_lines("NEWSIG", "GOODSIG 1 x",
                                f"VALIDSIG {SUBKEY} d 1 0 4 0 22 8 00 {OWNER}"),
                   frozenset({OWNER}))
    assert result.ok and result.signer == OWNER


# -- real gpg ----------------------------------------------------------------------


def test_an_owner_detached_signature_passes(keys: Keys, challenge: Challenge,
                                            tmp_path: Path) -> None:
    result = check(keys, challenge, keys.sign(challenge.text, keys.owner), tmp_path)
    assert result.ok, result.reason
    assert result.signer == keys.owner  # made by the subkey, mapped to the primary
    assert list(tmp_path.iterdir()) == []  # the temporary GnuPG home is gone


def test_a_signature_over_the_line_with_a_newline_passes(keys: Keys, challenge: Challenge,
                                                         tmp_path: Path) -> None:
    assert check(keys, challenge, keys.sign(challenge.text + "\n", keys.owner), tmp_path).ok


def test_a_clearsigned_answer_with_surrounding_text_passes(keys: Keys, challenge: Challenge,
                                                           tmp_path: Path) -> None:
    signed = keys.sign(challenge.text, keys.owner, clearsign=True)
    result = check(keys, challenge, f"$ gpg --clearsign\n{signed}\n$ ", tmp_path)
    assert result.ok, result.reason


def test_the_owner_file_alone_pins_its_keys(keys: Keys, challenge: Challenge,
                                            tmp_path: Path) -> None:
    signed = keys.sign(challenge.text, keys.owner)
    result = verify_response(challenge, signed, keys.owner_file, None, work_dir=str(tmp_path))
    assert result.ok, result.reason


def test_a_signature_over_an_old_challenge_fails(keys: Keys, tmp_path: Path) -> None:
    random_bytes = counting_random()
    old = new_challenge(random_bytes, now=lambda: FIXED)
    now = new_challenge(random_bytes, now=lambda: FIXED)
    clear = check(keys, now, keys.sign(old.text, keys.owner, clearsign=True), tmp_path)
    assert clear.failure is Failure.OTHER_CHALLENGE
    assert clear.reason.startswith("signature over another challenge (an old one?)")
    detached = check(keys, now, keys.sign(old.text, keys.owner), tmp_path)
    assert detached.failure is Failure.BAD_SIGNATURE
    assert "another challenge" in detached.reason


def test_another_key_in_the_keyring_is_not_the_owner(keys: Keys, challenge: Challenge,
                                                     tmp_path: Path) -> None:
    # python-gnupg calls this signature valid: only the pinned fingerprint refuses it.
    for clearsign in (False, True):
        signed = keys.sign(challenge.text, keys.other, clearsign=clearsign)
        result = check(keys, challenge, signed, tmp_path)
        assert not result.ok
        assert result.failure is Failure.NOT_OWNER
        assert keys.other in result.reason


def test_a_key_missing_from_the_keyring_is_not_the_owner(keys: Keys, challenge: Challenge,
                                                         tmp_path: Path) -> None:
    result = check(keys, challenge, keys.sign(challenge.text, keys.stranger), tmp_path)
    assert result.failure is Failure.NOT_OWNER


def test_a_changed_clearsigned_text_is_a_bad_signature(keys: Keys, challenge: Challenge,
                                                       tmp_path: Path) -> None:
    signed = keys.sign(challenge.text, keys.owner, clearsign=True)
    forged = signed.replace(challenge.nonce.hex(), "00" * NONCE_SIZE)
    assert check(keys, challenge, forged, tmp_path).failure is Failure.BAD_SIGNATURE


@pytest.mark.parametrize("garbage", [
    "", "hello", "y" * 100_000,
    "-----BEGIN PGP SIGNATURE-----\n\nbm90IGEgc2lnbmF0dXJl\n-----END PGP SIGNATURE-----\n",
])
def test_garbage_is_not_a_signature(keys: Keys, challenge: Challenge, tmp_path: Path,
                                    garbage: str) -> None:
    result = check(keys, challenge, garbage, tmp_path)
    assert not result.ok
    assert result.failure is Failure.NOT_SIGNATURE


def test_an_unreadable_owner_key_file_is_reported(keys: Keys, challenge: Challenge,
                                                  tmp_path: Path) -> None:
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
    result = verify_response(challenge, keys.sign(challenge.text, keys.owner), keys.owner_file,
                             None, work_dir=str(work), gpg_binary=str(fake), timeout=0.5)
    assert result.failure is Failure.GPG_FAILED
    assert "did not answer within 0.5 s" in result.reason


# -- the bounded loop --------------------------------------------------------------


class Answers:
    """A console that answers each prompt with the next function's text."""

    def __init__(self, *answers: Callable[[str], str | None]) -> None:
        self.answers = list(answers)
        self.prompts: list[str] = []

    def __call__(self, prompt: str) -> str | None:
        self.prompts.append(prompt)
        return self.answers[len(self.prompts) - 1](prompt)


def shown_challenge(prompt: str) -> str:
    return prompt.splitlines()[-1]  # the challenge is the prompt's last line


def test_three_bad_answers_then_refused(keys: Keys, tmp_path: Path) -> None:
    ui = Answers(lambda _p: "garbage", lambda _p: "more garbage", lambda _p: "still")
    result = authenticate(ui, keys.both_file, [keys.owner], work_dir=str(tmp_path))
    assert not result.ok
    assert len(ui.prompts) == 3
    assert result.reason.startswith("3 answers were refused; the last: not a signature")
    assert "attempt 3 of 3" in ui.prompts[2] and "refused: not a signature" in ui.prompts[2]


def test_each_attempt_has_a_new_challenge_and_the_third_can_pass(keys: Keys,
                                                                 tmp_path: Path) -> None:
    def sign_current(prompt: str) -> str:
        return keys.sign(shown_challenge(prompt), keys.owner, clearsign=True)

    def replay_first(_prompt: str) -> str:
        return keys.sign(shown_challenge(ui.prompts[0]), keys.owner, clearsign=True)

    ui = Answers(lambda _p: "garbage", replay_first, sign_current)
    result = authenticate(ui, keys.both_file, [keys.owner], work_dir=str(tmp_path))
    assert result.ok, result.reason
    assert len({shown_challenge(p) for p in ui.prompts}) == 3
    assert "another challenge" in ui.prompts[2]  # the replayed answer was refused


def test_giving_up_stops_at_once(keys: Keys, tmp_path: Path) -> None:
    ui = Answers(lambda _p: None)
    result = authenticate(ui, keys.both_file, [keys.owner], work_dir=str(tmp_path))
    assert result.failure is Failure.CANCELLED
    assert len(ui.prompts) == 1


def test_a_missing_owner_key_is_not_asked_three_times(tmp_path: Path) -> None:
    ui = Answers(lambda _p: "x", lambda _p: "y", lambda _p: "z")
    calls: list[str] = []

    def verify(*_args: object, **_kw: object) -> AuthResult:
        calls.append("verify")
        return AuthResult.refused(Failure.NO_OWNER_KEY, "gone")

    result = authenticate(ui, str(tmp_path / "none.asc"), verify=verify)
    assert result.failure is Failure.NO_OWNER_KEY
    assert calls == ["verify"]
