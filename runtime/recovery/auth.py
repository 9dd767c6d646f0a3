"""Proving the owner is present before the recovery shell opens: the owner
signs a fresh random challenge with the OpenPGP key whose public half the
firmware carries (/etc/runtime/owner.asc), and the signature is checked with
gpg against that key alone.

The signer's fingerprint is compared with the pinned ones here: gpg (and
python-gnupg's ``valid``) accept a good signature by any key in the keyring.
A signature must cover this challenge's text, so a recorded answer to an
older challenge is refused.
"""

from __future__ import annotations

import contextlib
import enum
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

CHALLENGE_PREFIX = "heads-runtime recovery"
NONCE_SIZE = 32
ATTEMPTS = 3
GPG_TIMEOUT_S = 30.0
MAX_RESPONSE_CHARS = 64 * 1024  # a signature is a few hundred characters
MAX_KEY_FILE_BYTES = 1024 * 1024

BEGIN_SIGNED = "-----BEGIN PGP SIGNED MESSAGE-----"
BEGIN_SIGNATURE = "-----BEGIN PGP SIGNATURE-----"
END_SIGNATURE = "-----END PGP SIGNATURE-----"

# Freshness comes from the nonce, not from clocks: an initramfs clock is often
# wrong, and a key "created in the future" must not lock the owner out.
_GPG_OPTIONS = ["--no-autostart", "--ignore-time-conflict", "--ignore-valid-from"]


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


class Failure(enum.StrEnum):
    NOT_SIGNATURE = "not a signature"
    BAD_SIGNATURE = "bad signature"
    NOT_OWNER = "signature by a key that is not the owner's"
    OTHER_CHALLENGE = "signature over another challenge (an old one?)"
    KEY_INVALID = "signature by an expired or revoked key"
    NO_OWNER_KEY = "the owner's public key cannot be read"
    GPG_FAILED = "gpg could not check the signature"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class AuthResult:
    ok: bool
    reason: str  # plain words for the console
    failure: Failure | None = None
    signer: str = ""  # the primary key's fingerprint when ok

    @classmethod
    def refused(cls, failure: Failure, detail: str) -> AuthResult:
        return cls(False, f"{failure}: {detail}", failure)


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


def _fingerprint(text: str) -> str:
    fpr = re.sub(r"[\s:]", "", text).upper().removeprefix("0X")
    if not re.fullmatch(r"[0-9A-F]{40}|[0-9A-F]{64}", fpr):
        raise ValueError(f"{text!r} is not an OpenPGP key fingerprint (40 or 64 hex digits)")
    return fpr


def statuses(stderr: str) -> list[tuple[str, list[str]]]:
    """gpg's machine-readable ``[GNUPG:] KEYWORD args`` lines, in order."""
    found = []
    for line in stderr.splitlines():
        if line.startswith("[GNUPG:] "):
            keyword, *args = line[9:].split()
            found.append((keyword, args))
    return found


def judge(found: list[tuple[str, list[str]]], pinned: frozenset[str]) -> AuthResult:
    """Decide from gpg's status lines alone; pure, so every branch is unit-tested."""
    keywords = [keyword for keyword, _ in found]
    if keywords.count("NEWSIG") == 0:
        return AuthResult.refused(Failure.NOT_SIGNATURE, "gpg found no signature in it.")
    if keywords.count("NEWSIG") > 1:
        return AuthResult.refused(Failure.BAD_SIGNATURE,
                                  "it holds more than one signature; paste exactly one.")
    if {"EXPKEYSIG", "REVKEYSIG", "EXPSIG"} & set(keywords):
        return AuthResult.refused(Failure.KEY_INVALID,
                                  "the key has expired or was revoked (or the clock is wrong).")
    if "BADSIG" in keywords:
        return AuthResult.refused(Failure.BAD_SIGNATURE,
                                  "it does not match the text (was another challenge signed, "
                                  "or did the text change?).")
    if "NO_PUBKEY" in keywords:
        return AuthResult.refused(Failure.NOT_OWNER,
                                  "the signing key is not in the firmware's owner key file.")
    valid = [args for keyword, args in found if keyword == "VALIDSIG"]
    if "GOODSIG" not in keywords or len(valid) != 1 or not valid[0]:
        return AuthResult.refused(Failure.BAD_SIGNATURE, "gpg could not confirm it.")
    subkey, primary = valid[0][0], valid[0][-1]
    if primary not in pinned and subkey not in pinned:
        return AuthResult.refused(Failure.NOT_OWNER,
                                  f"it was made by key {primary}, which is not pinned as the "
                                  "owner's.")
    return AuthResult(True, f"signed by the owner's key {primary}.", None, primary)


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


def _bounded_gpg(home: str, gpg_binary: str, timeout: float) -> Any:
    """python-gnupg's GPG, with every gpg process killed after ``timeout``."""
    import gnupg

    deadlines: dict[int, threading.Timer] = {}

    class BoundedGPG(gnupg.GPG):  # type: ignore[misc]
        def _open_subprocess(self, args: Any, passphrase: bool = False) -> Any:
            # As python-gnupg 0.4.9 does it, but in its own process group, so
            # the deadline also kills anything gpg started that holds the pipes.
            process = subprocess.Popen(self.make_args(args, passphrase), stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       start_new_session=True)
            timer = threading.Timer(timeout, _kill_group, (process.pid,))
            timer.daemon = True
            deadlines[process.pid] = timer
            timer.start()
            return process

        def _collect_output(self, process: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return super()._collect_output(process, *args, **kwargs)
            finally:
                timer = deadlines.pop(process.pid, None)
                if timer is not None:
                    timer.cancel()

    return BoundedGPG(gpgbinary=gpg_binary, gnupghome=home, options=list(_GPG_OPTIONS))


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def _read_owner_keys(owner_key_file: str) -> bytes | AuthResult:
    try:
        with open(owner_key_file, "rb") as f:
            data = f.read(MAX_KEY_FILE_BYTES + 1)
    except OSError as err:
        return AuthResult.refused(Failure.NO_OWNER_KEY,
                                  f"{owner_key_file} cannot be read ({err.strerror}).")
    if len(data) > MAX_KEY_FILE_BYTES:
        return AuthResult.refused(Failure.NO_OWNER_KEY, f"{owner_key_file} is too large.")
    return data


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
    keys = _read_owner_keys(owner_key_file)
    if isinstance(keys, AuthResult):
        return keys
    home = tempfile.mkdtemp(prefix="recovery-gpg-", dir=work_dir)
    try:
        gpg = _bounded_gpg(home, gpg_binary, timeout)
        imported = gpg.import_keys(keys)
        if imported.returncode not in (0, 2) or not imported.fingerprints:
            return AuthResult.refused(Failure.NO_OWNER_KEY,
                                      f"{owner_key_file} holds no OpenPGP public key.")
        try:
            pinned = frozenset(_fingerprint(f) for f in (
                imported.fingerprints if pinned_fingerprints is None else pinned_fingerprints))
        except ValueError as err:
            return AuthResult.refused(Failure.NO_OWNER_KEY, f"the pinned owner key: {err}.")
        if clearsigned:
            return _check_clearsigned(gpg, block, challenge, pinned, timeout)
        return _check_detached(gpg, home, block, challenge, pinned, timeout)
    except (OSError, ValueError):
        # python-gnupg raises ValueError when even 'gpg --version' fails or hangs.
        return AuthResult.refused(Failure.GPG_FAILED,
                                  f"gpg ({gpg_binary}) did not run or did not answer within "
                                  f"{timeout:g} s.")
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _judged(result: Any, pinned: frozenset[str], timeout: float) -> AuthResult:
    if result.returncode is not None and result.returncode < 0:
        return AuthResult.refused(Failure.GPG_FAILED, f"gpg did not finish within {timeout:g} s.")
    verdict = judge(statuses(result.stderr or ""), pinned)
    if verdict.ok and result.returncode != 0:
        return AuthResult.refused(Failure.GPG_FAILED, f"gpg failed (status {result.returncode}).")
    return verdict


def _check_clearsigned(gpg: Any, block: str, challenge: Challenge, pinned: frozenset[str],
                       timeout: float) -> AuthResult:
    result = gpg.decrypt(block)  # for a clearsigned message: verify and output its text
    verdict = _judged(result, pinned, timeout)
    if not verdict.ok:
        return verdict
    signed = bytes(result.data or b"").decode("utf-8", errors="replace")
    if _canonical(signed) != challenge.text:
        return AuthResult.refused(Failure.OTHER_CHALLENGE,
                                  "the signed text is not the challenge shown now.")
    return verdict


def _check_detached(gpg: Any, home: str, block: str, challenge: Challenge,
                    pinned: frozenset[str], timeout: float) -> AuthResult:
    signature = os.path.join(home, "response.asc")
    with open(signature, "w", encoding="utf-8") as f:
        f.write(block)
    first: AuthResult | None = None
    # echo without -n adds a newline: accept the line with or without it.
    for data in (challenge.text, challenge.text + "\n"):
        verdict = _judged(gpg.verify_data(signature, data.encode()), pinned, timeout)
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
