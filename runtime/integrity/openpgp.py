"""Checking OpenPGP signatures against the owner's key, with python-gnupg over
the real gpg, in a throw-away GnuPG home: the one place that decides whether a
signature is the owner's (the recovery gate's challenge, /boot's kexec.sig).

The signer's fingerprint (primary or subkey) is compared with the pinned
ones: gpg, and python-gnupg's ``valid``, accept a good signature from any key
in the keyring. Every gpg process runs under a deadline in its own process
group.
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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from runtime.error_detail import plain
from runtime.integrity.gpg_limits import CHECK_TIMEOUT_S as GPG_TIMEOUT_S

MAX_KEY_FILE_BYTES = 1024 * 1024
MAX_SIGNATURE_BYTES = 64 * 1024  # an armored signature is a few hundred bytes

# Freshness comes from nonces and counters, not from clocks: an initramfs
# clock is often wrong, and a key "created in the future" must not lock the
# owner out.
CLOCK_OPTIONS = ["--ignore-time-conflict", "--ignore-valid-from"]
#: checking needs no gpg-agent: never start one
GPG_OPTIONS = ["--no-autostart", *CLOCK_OPTIONS]


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
class SignatureResult:
    ok: bool
    reason: str  # plain words for the console
    failure: Failure | None = None
    signer: str = ""  # the primary key's fingerprint when ok

    @classmethod
    def refused(cls, failure: Failure, detail: str) -> SignatureResult:
        return cls(False, f"{failure}: {detail}", failure)


def fingerprint(text: str) -> str:
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


#: Status keywords by which gpg says the input was not one clean signed
#: message (gnupg doc/DETAILS): a generic error or failure, no or unexpected
#: OpenPGP data, a corrupt armor. A clearsigned text followed by a second
#: plaintext, or a signature followed by stray packets, still gets GOODSIG and
#: VALIDSIG for its first part; only these lines (and gpg's exit) tell.
MALFORMED_KEYWORDS = {
    "ERROR": "gpg reported an error",
    "FAILURE": "gpg reported a failure",
    "NODATA": "gpg found data that is not OpenPGP",
    "UNEXPECTED": "gpg found unexpected data",
    "BADARMOR": "its ASCII armor is corrupt",
}


def _malformed(found: list[tuple[str, list[str]]]) -> str:
    """Plain words for the first status line saying the input is malformed, or ""."""
    for keyword, args in found:
        if keyword in MALFORMED_KEYWORDS:
            # gpg's own words, but kept short and printable for the console
            shown = "".join(
                c if c.isprintable() and c.isascii() else "?"
                for c in " ".join([keyword, *args])[:80]
            )
            return f"{MALFORMED_KEYWORDS[keyword]} ({shown})"
    return ""


def judge(found: list[tuple[str, list[str]]], pinned: frozenset[str]) -> SignatureResult:
    """Decide from gpg's status lines alone; pure, so every branch is unit-tested.
    A malformed input is refused here, whatever gpg's exit status says."""
    keywords = [keyword for keyword, _ in found]
    if keywords.count("NEWSIG") == 0:
        return SignatureResult.refused(Failure.NOT_SIGNATURE, "gpg found no signature in it.")
    if keywords.count("NEWSIG") > 1:
        return SignatureResult.refused(
            Failure.BAD_SIGNATURE, "it holds more than one signature; paste exactly one."
        )
    if {"EXPKEYSIG", "REVKEYSIG", "EXPSIG"} & set(keywords):
        return SignatureResult.refused(
            Failure.KEY_INVALID, "the key has expired or was revoked (or the clock is wrong)."
        )
    if "BADSIG" in keywords:
        return SignatureResult.refused(
            Failure.BAD_SIGNATURE,
            "it does not match the text (was another challenge signed, or did the text change?).",
        )
    if "NO_PUBKEY" in keywords:
        return SignatureResult.refused(
            Failure.NOT_OWNER, "the signing key is not in the firmware's owner key file."
        )
    malformed = _malformed(found)
    if malformed:
        return SignatureResult.refused(
            Failure.BAD_SIGNATURE,
            f"{malformed}: it is not exactly one signed text and its signature "
            "(was something added to it?).",
        )
    valid = [args for keyword, args in found if keyword == "VALIDSIG"]
    if "GOODSIG" not in keywords or len(valid) != 1 or not valid[0]:
        return SignatureResult.refused(Failure.BAD_SIGNATURE, "gpg could not confirm it.")
    subkey, primary = valid[0][0], valid[0][-1]
    if primary not in pinned and subkey not in pinned:
        return SignatureResult.refused(
            Failure.NOT_OWNER, f"it was made by key {primary}, which is not pinned as the owner's."
        )
    return SignatureResult(True, f"signed by the owner's key {primary}.", None, primary)


def bounded_gpg(
    home: str, gpg_binary: str, timeout: float, options: Sequence[str] = GPG_OPTIONS
) -> Any:
    """python-gnupg's GPG, with every gpg process killed after ``timeout``."""
    import gnupg

    deadlines: dict[int, threading.Timer] = {}

    class BoundedGPG(gnupg.GPG):  # type: ignore[misc]
        def _open_subprocess(self, args: Any, passphrase: bool = False) -> Any:
            # As python-gnupg 0.4.9 does it, but in its own process group, so
            # the deadline also kills anything gpg started that holds the pipes.
            process = subprocess.Popen(
                self.make_args(args, passphrase),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
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

    return BoundedGPG(gpgbinary=gpg_binary, gnupghome=home, options=list(options))


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def read_owner_keys(owner_key_file: str) -> bytes | SignatureResult:
    try:
        with open(owner_key_file, "rb") as f:
            data = f.read(MAX_KEY_FILE_BYTES + 1)
    except OSError as err:
        return SignatureResult.refused(
            Failure.NO_OWNER_KEY, f"{owner_key_file} cannot be read ({err.strerror})."
        )
    if len(data) > MAX_KEY_FILE_BYTES:
        return SignatureResult.refused(Failure.NO_OWNER_KEY, f"{owner_key_file} is too large.")
    return data


def judged(result: Any, pinned: frozenset[str], timeout: float) -> SignatureResult:
    """The verdict on a python-gnupg result: its status lines, and its exit."""
    code = result.returncode
    if code is not None and code < 0:
        return SignatureResult.refused(
            Failure.GPG_FAILED, f"gpg did not finish within {timeout:g} s."
        )
    verdict = judge(statuses(result.stderr or ""), pinned)
    if verdict.ok and code != 0:
        return SignatureResult.refused(Failure.GPG_FAILED, f"gpg failed (status {code}).")
    return verdict


@dataclass
class OwnerGpg:
    """A GnuPG home holding only the owner's public keys."""

    gpg: Any
    home: str
    pinned: frozenset[str]
    timeout: float


@contextlib.contextmanager
def owner_gpg(
    owner_key_file: str,
    pinned_fingerprints: Sequence[str] | None = None,
    *,
    work_dir: str | None = None,
    gpg_binary: str = "gpg",
    timeout: float = GPG_TIMEOUT_S,
) -> Iterator[OwnerGpg | SignatureResult]:
    """A fresh home with the owner key file imported (removed afterwards), or
    the refusal when the keys cannot be read. ``pinned_fingerprints`` None:
    every primary key in the file is the owner's."""
    keys = read_owner_keys(owner_key_file)
    if isinstance(keys, SignatureResult):
        yield keys
        return
    home = tempfile.mkdtemp(prefix="owner-gpg-", dir=work_dir)
    try:
        try:
            gpg = bounded_gpg(home, gpg_binary, timeout)
            imported = gpg.import_keys(keys)
        except (OSError, ValueError) as err:
            # python-gnupg raises ValueError when even 'gpg --version' fails or hangs.
            yield SignatureResult.refused(
                Failure.GPG_FAILED,
                plain("gpg", err, f"gpg did not run or did not answer within {timeout:g} s."),
            )
            return
        if imported.returncode not in (0, 2) or not imported.fingerprints:
            yield SignatureResult.refused(
                Failure.NO_OWNER_KEY, f"{owner_key_file} holds no OpenPGP public key."
            )
            return
        try:
            pinned = frozenset(
                fingerprint(f)
                for f in (
                    imported.fingerprints if pinned_fingerprints is None else pinned_fingerprints
                )
            )
        except ValueError as err:
            yield SignatureResult.refused(Failure.NO_OWNER_KEY, f"the pinned owner key: {err}.")
            return
        yield OwnerGpg(gpg, home, pinned, timeout)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def check_detached(owner: OwnerGpg, signature: bytes, data: bytes) -> SignatureResult:
    """Whether ``signature`` (armored or binary, detached) is the owner's over ``data``."""
    if len(signature) > MAX_SIGNATURE_BYTES:
        return SignatureResult.refused(Failure.NOT_SIGNATURE, "the file is far too large.")
    path = os.path.join(owner.home, "detached.sig")
    with open(path, "wb") as f:
        f.write(signature)
    try:
        return judged(owner.gpg.verify_data(path, data), owner.pinned, owner.timeout)
    except (OSError, ValueError):
        return SignatureResult.refused(
            Failure.GPG_FAILED, f"gpg did not answer within {owner.timeout:g} s."
        )


def verify_detached(
    signature: bytes,
    data: bytes,
    owner_key_file: str,
    pinned_fingerprints: Sequence[str] | None = None,
    *,
    work_dir: str | None = None,
    gpg_binary: str = "gpg",
    timeout: float = GPG_TIMEOUT_S,
) -> SignatureResult:
    """One detached signature checked against the owner key file."""
    return checked_by_owner(
        lambda owner: check_detached(owner, signature, data),
        owner_key_file,
        pinned_fingerprints,
        work_dir=work_dir,
        gpg_binary=gpg_binary,
        timeout=timeout,
    )


def checked_by_owner(
    check: Callable[[OwnerGpg], SignatureResult],
    owner_key_file: str,
    pinned_fingerprints: Sequence[str] | None,
    *,
    work_dir: str | None,
    gpg_binary: str,
    timeout: float,
) -> SignatureResult:
    """``check``'s verdict in a fresh home holding the owner key file, or the
    refusal when the owner's keys cannot be read (a /boot listing's signature,
    a recovery answer)."""
    with owner_gpg(
        owner_key_file,
        pinned_fingerprints,
        work_dir=work_dir,
        gpg_binary=gpg_binary,
        timeout=timeout,
    ) as owner:
        if isinstance(owner, SignatureResult):
            return owner
        return check(owner)
