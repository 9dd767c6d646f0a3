"""Proving the owner is present before the recovery shell opens: the owner
signs a fresh random challenge with the OpenPGP key whose public half the
firmware carries (/etc/runtime/owner.asc), and the signature is checked with
gpg against that key alone.

Whether a signature is the owner's is decided in runtime/integrity/openpgp.py
(pinned fingerprints, gpg under a deadline). A signature must cover this
challenge's text, so a recorded answer to an older challenge is refused.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from runtime.integrity.openpgp import (
    GPG_TIMEOUT_S,
    Failure,
    OwnerGpg,
    check_detached,
    judge,
    judged,
    owner_gpg,
    statuses,
)
from runtime.integrity.openpgp import SignatureResult as AuthResult

__all__ = ["AuthResult", "Failure", "judge", "statuses"]  # re-exported for callers

CHALLENGE_PREFIX = "heads-runtime recovery"
NONCE_SIZE = 32
ATTEMPTS = 3
MAX_RESPONSE_CHARS = 64 * 1024  # a signature is a few hundred characters

BEGIN_SIGNED = "-----BEGIN PGP SIGNED MESSAGE-----"
BEGIN_SIGNATURE = "-----BEGIN PGP SIGNATURE-----"
END_SIGNATURE = "-----END PGP SIGNATURE-----"

@dataclass(frozen=True)
class Challenge:
    nonce: bytes
    issued: datetime  # UTC

    @property
    def text(self) -> str:
        """The exact line the owner signs."""
        return f"{CHALLENGE_PREFIX} {self.nonce.hex()} {self.issued:%Y-%m-%dT%H:%M:%SZ}"


def _utc_now() -> datetime:
    return datetime.now(UTC)


def new_challenge(random_bytes: Callable[[int], bytes],
                  now: Callable[[], datetime] = _utc_now) -> Challenge:
    """A challenge with a fresh 32-byte nonce from ``random_bytes``."""
    nonce = bytes(random_bytes(NONCE_SIZE))
    if len(nonce) != NONCE_SIZE:
        raise ValueError(f"the random source gave {len(nonce)} bytes, not {NONCE_SIZE}")
    return Challenge(nonce, now().astimezone(UTC))


class ResponseSource(Protocol):
    """Where a signed answer to a challenge comes from.

    TODO: a card signer (the owner's OpenPGP card in this machine signing
    ``challenge.text`` through gpg, its PIN a wiped bytearray passed on a
    pipe, never on an argument list) can implement this beside PastedSignature.
    """

    def response(self, challenge: Challenge, note: str) -> str | None:
        """The armored signature text, or None when the user gives up."""
        ...


@dataclass(frozen=True)
class PastedSignature:
    """The owner signs on another computer and pastes the armored result."""

    ask: Callable[[str], str | None]

    def response(self, challenge: Challenge, note: str) -> str | None:
        return self.ask(signing_instructions(challenge, note))


def signing_instructions(challenge: Challenge, note: str) -> str:
    return "\n".join([
        note,
        "Sign the line below with the owner's key, for example on another computer:",
        f"  echo -n '{challenge.text}' | gpg --clearsign",
        "(gpg --armor --detach-sign works too). Paste the whole signature block here;",
        "an empty line gives up.",
        "",
        challenge.text,
    ])


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
    if first == BEGIN_SIGNED and len(markers) == 2 \
            and lines[markers[1]].strip() == BEGIN_SIGNATURE:
        clearsigned = True
    elif first == BEGIN_SIGNATURE and len(markers) == 1:
        clearsigned = False
    else:
        return None
    if ends[0] < markers[-1]:
        return None
    block = lines[markers[0]:ends[0] + 1]
    block[0], block[-1] = block[0].strip(), block[-1].strip()
    return "\n".join(block) + "\n", clearsigned


def _canonical(text: str) -> str:
    # Trailing whitespace and line endings are not covered by a text signature.
    return "\n".join(line.rstrip() for line in text.replace("\r\n", "\n").split("\n")).rstrip("\n")


def verify_response(challenge: Challenge, signature_text: str, owner_key_file: str,
                    pinned_fingerprints: Sequence[str] | None = None, *,
                    work_dir: str | None = None, gpg_binary: str = "gpg",
                    timeout: float = GPG_TIMEOUT_S) -> AuthResult:
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
            "paste one block from '-----BEGIN PGP SIGNED MESSAGE-----' or "
            f"'{BEGIN_SIGNATURE}' to '{END_SIGNATURE}'.")
    block, clearsigned = found
    with owner_gpg(owner_key_file, pinned_fingerprints, work_dir=work_dir,
                   gpg_binary=gpg_binary, timeout=timeout) as owner:
        if isinstance(owner, AuthResult):
            return owner
        try:
            if clearsigned:
                return _check_clearsigned(owner, block, challenge)
        except (OSError, ValueError):
            return AuthResult.refused(Failure.GPG_FAILED,
                                      f"gpg did not answer within {timeout:g} s.")
        return _check_detached(owner, block, challenge)


def _check_clearsigned(owner: OwnerGpg, block: str, challenge: Challenge) -> AuthResult:
    result = owner.gpg.decrypt(block)  # for a clearsigned message: verify and output its text
    verdict = judged(result, owner.pinned, owner.timeout)
    if not verdict.ok:
        return verdict
    signed = bytes(result.data or b"").decode("utf-8", errors="replace")
    if _canonical(signed) != challenge.text:
        return AuthResult.refused(Failure.OTHER_CHALLENGE,
                                  "the signed text is not the challenge shown now.")
    return verdict


def _check_detached(owner: OwnerGpg, block: str, challenge: Challenge) -> AuthResult:
    first: AuthResult | None = None
    # echo without -n adds a newline: accept the line with or without it.
    for data in (challenge.text, challenge.text + "\n"):
        verdict = check_detached(owner, block.encode(), data.encode())
        if verdict.ok or verdict.failure is not Failure.BAD_SIGNATURE:
            return verdict
        first = first or verdict
    assert first is not None
    return first


def authenticate(ui_ask: Callable[[str], str | None], owner_key_file: str,
                 pinned_fingerprints: Sequence[str] | None = None, *,
                 attempts: int = ATTEMPTS,
                 random_bytes: Callable[[int], bytes] = os.urandom,
                 source: ResponseSource | None = None,
                 work_dir: str | None = None,
                 verify: Callable[..., AuthResult] = verify_response) -> AuthResult:
    """Ask for a signed answer up to ``attempts`` times, each over a new
    challenge; stop at the first good one or when the user gives up."""
    if attempts < 1:
        raise ValueError("at least one attempt is needed")
    responses = source if source is not None else PastedSignature(ui_ask)
    last: AuthResult | None = None
    for attempt in range(1, attempts + 1):
        challenge = new_challenge(random_bytes)
        note = f"Owner authentication, attempt {attempt} of {attempts}."
        if last is not None:
            note += f" The last answer was refused: {last.reason}"
        text = responses.response(challenge, note)
        if text is None:
            return AuthResult.refused(Failure.CANCELLED, "no signature was given.")
        last = verify(challenge, text, owner_key_file, pinned_fingerprints, work_dir=work_dir)
        if last.ok or last.failure is Failure.NO_OWNER_KEY:
            return last  # a missing key file does not get better by asking again
    failure = last.failure if last is not None else None
    reason = last.reason if last is not None else ""
    return AuthResult(False, f"{attempts} answers were refused; the last: {reason}", failure)
