"""Proving the owner is present before the recovery shell opens: the owner
signs a fresh random challenge with the OpenPGP key whose public half the
firmware carries (/etc/runtime/owner.asc), and the signature is checked with
gpg against that key alone.

Whether a signature is the owner's is decided in runtime/integrity/openpgp.py
(pinned fingerprints, gpg under a deadline). A signature must cover this
challenge's text, so a recorded answer to an older challenge is refused.

The conversation itself (what is shown, how answers are read) is
runtime/recovery/prompt.py; here are the rules: which answers pass, how many
tries, and the plain words for each refusal.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from runtime.integrity.gpg_limits import CHECK_TIMEOUT_S as GPG_TIMEOUT_S
from runtime.integrity.openpgp import (
    Failure,
    OwnerGpg,
    check_detached,
    checked_by_owner,
    judge,
    judged,
    statuses,
)
from runtime.integrity.openpgp import SignatureResult as AuthResult

__all__ = ["AuthResult", "Failure", "judge", "statuses"]  # re-exported for callers

CHALLENGE_PREFIX = "heads-runtime recovery"
# 128 bits: a nonce only has to be one nobody has seen before, so that no
# recorded signature fits it; 2^-128 is far beyond reach, and the line to sign
# stays short enough to type and to fit a 60-column console.
NONCE_SIZE = 16
GROUP = 8  # hex digits per group in the line: four groups, easy to read out
TRIES_PER_CHALLENGE = 3
CHALLENGES = 3  # new challenges the owner may ask for, the first included
MAX_RESPONSE_CHARS = 64 * 1024  # a signature is a few hundred characters

BEGIN_SIGNED = "-----BEGIN PGP SIGNED MESSAGE-----"
BEGIN_SIGNATURE = "-----BEGIN PGP SIGNATURE-----"
END_SIGNATURE = "-----END PGP SIGNATURE-----"

NOTHING_PASTED = "nothing was pasted."
#: what the owner is told for each refusal: plain words, never gpg's own output
#: (that goes to the runtime log)
PLAIN_REASONS = {
    Failure.NOT_SIGNATURE: (
        "that is not a signature block. Paste everything from its "
        "'-----BEGIN PGP' line to its '-----END PGP SIGNATURE-----' line."
    ),
    Failure.BAD_SIGNATURE: (
        "the signature does not fit this challenge's line: another text was "
        "signed (an older challenge, or the line typed differently?), or the "
        "block changed while it was copied."
    ),
    Failure.NOT_OWNER: "it was signed by a key that is not the owner's.",
    Failure.OTHER_CHALLENGE: (
        "it signs another text, not this challenge's line (an older challenge?)."
    ),
    Failure.KEY_INVALID: (
        "the owner's key has expired or was revoked (or the signing computer's clock is wrong)."
    ),
    Failure.NO_OWNER_KEY: "the owner's public key in the firmware cannot be read.",
    Failure.GPG_FAILED: "the signature could not be checked: gpg failed or took too long.",
    Failure.CANCELLED: "you left without a signature.",
}


@dataclass(frozen=True)
class Challenge:
    nonce: bytes

    @property
    def code(self) -> str:
        """The nonce in hex, in groups: '1a2b3c4d 5e6f7a8b ...'."""
        digits = self.nonce.hex()
        return " ".join(digits[i : i + GROUP] for i in range(0, len(digits), GROUP))

    @property
    def text(self) -> str:
        """The exact line the owner signs (58 characters)."""
        return f"{CHALLENGE_PREFIX} {self.code}"


def new_challenge(random_bytes: Callable[[int], bytes]) -> Challenge:
    """A challenge with a fresh nonce from ``random_bytes``."""
    nonce = bytes(random_bytes(NONCE_SIZE))
    if len(nonce) != NONCE_SIZE:
        raise ValueError(f"the random source gave {len(nonce)} bytes, not {NONCE_SIZE}")
    return Challenge(nonce)


def plain_reason(result: AuthResult) -> str:
    """What the owner is told about a refused answer."""
    if result.failure is None:
        return result.reason
    return PLAIN_REASONS.get(result.failure, str(result.failure) + ".")


def armored_block(text: str) -> tuple[str, bool] | None:
    """The one armored signature in ``text`` (clearsigned or detached) with
    the text around it dropped, and whether it is clearsigned; None if there
    is not exactly one."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    markers = [i for i, line in enumerate(lines) if line.strip().startswith("-----BEGIN PGP")]
    ends = [i for i, line in enumerate(lines) if line.strip() == END_SIGNATURE]
    if len(ends) != 1 or not markers:
        return None
    first = lines[markers[0]].strip()
    if first == BEGIN_SIGNED and len(markers) == 2 and lines[markers[1]].strip() == BEGIN_SIGNATURE:
        clearsigned = True
    elif first == BEGIN_SIGNATURE and len(markers) == 1:
        clearsigned = False
    else:
        return None
    if ends[0] < markers[-1]:
        return None
    block = lines[markers[0] : ends[0] + 1]
    block[0], block[-1] = block[0].strip(), block[-1].strip()
    return "\n".join(block) + "\n", clearsigned


def _loose(text: str) -> str:
    # A typed line may differ in spacing, line ends or the case of the hex
    # digits; none of that changes which nonce was signed.
    return "".join(text.split()).lower()


def verify_response(
    challenge: Challenge,
    signature_text: str,
    owner_key_file: str,
    pinned_fingerprints: Sequence[str] | None = None,
    *,
    work_dir: str | None = None,
    gpg_binary: str = "gpg",
    timeout: float = GPG_TIMEOUT_S,
) -> AuthResult:
    """Check a pasted clearsigned message or detached signature over
    ``challenge.text`` against the owner key file, imported into a fresh
    temporary GnuPG home. ``pinned_fingerprints`` None: every primary key in
    the file is the owner's."""
    if len(signature_text) > MAX_RESPONSE_CHARS:
        return AuthResult.refused(Failure.NOT_SIGNATURE, "the text is far too long.")
    found = armored_block(signature_text)
    if found is None:
        return AuthResult.refused(
            Failure.NOT_SIGNATURE,
            f"no one block from '{BEGIN_SIGNED}' or '{BEGIN_SIGNATURE}' to '{END_SIGNATURE}'.",
        )
    block, clearsigned = found
    check = _check_clearsigned if clearsigned else _check_detached
    return checked_by_owner(
        lambda owner: check(owner, block, challenge),
        owner_key_file,
        pinned_fingerprints,
        work_dir=work_dir,
        gpg_binary=gpg_binary,
        timeout=timeout,
    )


def _check_clearsigned(owner: OwnerGpg, block: str, challenge: Challenge) -> AuthResult:
    try:
        result = owner.gpg.decrypt(block)  # for a clearsigned message: verify and output its text
        verdict = judged(result, owner.pinned, owner.timeout)
    except (OSError, ValueError):
        return AuthResult.refused(
            Failure.GPG_FAILED, f"gpg did not answer within {owner.timeout:g} s."
        )
    if not verdict.ok:
        return verdict
    signed = bytes(result.data or b"").decode("utf-8", errors="replace")
    if _loose(signed) != _loose(challenge.text):
        return AuthResult.refused(
            Failure.OTHER_CHALLENGE, "the signed text is not the challenge shown now."
        )
    return verdict


def _check_detached(owner: OwnerGpg, block: str, challenge: Challenge) -> AuthResult:
    first: AuthResult | None = None
    # A detached signature covers exact bytes: the line as shown, with or
    # without the newline that echo or an editor adds.
    for data in (challenge.text, challenge.text + "\n"):
        verdict = check_detached(owner, block.encode(), data.encode())
        if verdict.ok or verdict.failure is not Failure.BAD_SIGNATURE:
            return verdict
        first = first or verdict
    assert first is not None
    return first


class Choice(enum.Enum):
    """What the owner wants after a refused answer."""

    AGAIN = "again"  # another answer to the same challenge
    NEW = "new"  # a new challenge
    LEAVE = "leave"  # no shell


@dataclass(frozen=True)
class Progress:
    challenge: int  # 1-based
    attempt: int  # 1-based, for this challenge
    tries: int


class Console(Protocol):
    """The owner's side of the conversation (prompt.ConsolePrompter on the
    console; fakes in the tests).

    TODO: a card signer (the owner's OpenPGP card in this machine signing
    ``challenge.text`` through runtime/integrity/gpg_signer.py, its PIN a
    wiped bytearray on a pipe) could give ``answer`` its signature; a wrong
    PIN would then be its own refusal, before any signature is checked.
    """

    def answer(self, challenge: Challenge, progress: Progress) -> str | None:
        """The pasted text ("" when nothing was pasted), or None: the owner leaves."""
        ...

    def refused(self, reason: str, tries_left: int, new_allowed: bool) -> Choice:
        """Say why the answer was refused; ask what next among the choices left."""
        ...


def _no_log(_line: str) -> None:
    pass


def authenticate(
    console: Console,
    owner_key_file: str,
    pinned_fingerprints: Sequence[str] | None = None,
    *,
    tries: int = TRIES_PER_CHALLENGE,
    challenges: int = CHALLENGES,
    random_bytes: Callable[[int], bytes] = os.urandom,
    work_dir: str | None = None,
    verify: Callable[..., AuthResult] = verify_response,
    log: Callable[[str], None] = _no_log,
) -> AuthResult:
    """Ask for a signed answer: up to ``tries`` per challenge, up to
    ``challenges`` challenges; stop at the first good answer, when the owner
    leaves or when every try is used. ``log`` gets one line per answer
    (gpg's findings, never the pasted text)."""
    if tries < 1 or challenges < 1:
        raise ValueError("at least one try and one challenge are needed")
    refused = 0
    number = 0
    while True:
        number += 1
        challenge = new_challenge(random_bytes)
        log(f"challenge={number} issued")
        # After a refused answer the owner may answer the same challenge again.
        # A nonce only has to be unseen before this boot so that no recorded
        # signature fits it; a refused answer teaches nothing about signing it
        # (only the owner's secret key can), so asking again over it is no
        # weaker, and it spares re-typing a line already signed (a mangled
        # paste, the wrong key picked). A new challenge is offered as well and
        # is the only way on after its tries run out: that bounds how long one
        # challenge stays answerable.
        for attempt in range(1, tries + 1):
            text = console.answer(challenge, Progress(number, attempt, tries))
            if text is None:
                log(f"challenge={number} try={attempt} left")
                return _left(None)
            if text.strip():
                last = verify(
                    challenge, text, owner_key_file, pinned_fingerprints, work_dir=work_dir
                )
                reason = plain_reason(last)
            else:
                last = AuthResult.refused(Failure.NOT_SIGNATURE, NOTHING_PASTED)
                reason = NOTHING_PASTED
            outcome = "accepted" if last.ok else f"refused failure={last.failure}"
            log(f"challenge={number} try={attempt} {outcome} detail={last.reason}")
            if last.ok:
                return last
            refused += 1
            if last.failure is Failure.NO_OWNER_KEY:
                # a key file that cannot be read does not get better by asking again
                return AuthResult(False, reason, last.failure)
            tries_left, new_allowed = tries - attempt, number < challenges
            choice = console.refused(reason, tries_left, new_allowed)
            if choice is Choice.AGAIN and tries_left:
                continue
            if choice is Choice.NEW and new_allowed:
                break
            if not tries_left and not new_allowed:
                return AuthResult(
                    False, f"{refused} answers were refused; the last: {reason}", last.failure
                )
            log(f"challenge={number} try={attempt} left")
            return _left(reason)


def _left(last_reason: str | None) -> AuthResult:
    detail = PLAIN_REASONS[Failure.CANCELLED]
    if last_reason is not None:
        detail += f" The last answer was refused: {last_reason}"
    return AuthResult.refused(Failure.CANCELLED, detail)
