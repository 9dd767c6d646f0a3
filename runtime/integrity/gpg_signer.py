"""Signing with the owner's key through gpg (python-gnupg): in the firmware
the key is on an OpenPGP card, reached by gpg's own scdaemon; in tests and on
a host it is a key in a GnuPG home. The PIN (or passphrase) goes to gpg on
its standard input with loopback pinentry, never on an argument list.
`signing_home` makes the GnuPG home a signing uses, in RAM.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable

from runtime.error_detail import describe, detail
from runtime.integrity.gpg_limits import (
    DAEMON_STOP_TIMEOUT_S,
    SIGN_TIMEOUT_S,
    SIGNING_HOME_TIMEOUT_S,
)
from runtime.integrity.openpgp import CLOCK_OPTIONS, bounded_gpg, statuses
from runtime.integrity.sign_boot import SigningError

ATTEMPTS = 3
#: libgpg-error codes (low 16 bits) that mean "that PIN/passphrase was wrong"
_WRONG_PIN = frozenset({11, 87})  # GPG_ERR_BAD_PASSPHRASE, GPG_ERR_BAD_PIN

#: asks for the PIN for attempt n (1-based) with the last refusal; None: cancelled
AskPin = Callable[[int, str], bytearray | None]


def _error_codes(lines: list[tuple[str, list[str]]]) -> set[int]:
    """The error codes of gpg's FAILURE and ERROR status lines."""
    codes = set()
    for keyword, args in lines:
        if keyword in ("FAILURE", "ERROR") and len(args) >= 2 and args[1].isdigit():
            codes.add(int(args[1]) & 0xFFFF)
    return codes


class GpgSigner:
    def __init__(
        self,
        home: str,
        key: str | None = None,
        ask_pin: AskPin | None = None,
        *,
        attempts: int = ATTEMPTS,
        gpg_binary: str = "gpg",
        timeout: float = SIGN_TIMEOUT_S,
    ) -> None:
        self.home = home
        self.key = key
        self.ask_pin = ask_pin
        self.attempts = attempts
        self.gpg_binary = gpg_binary
        self.timeout = timeout

    def sign(self, data: bytes) -> bytes:
        try:
            # signing needs gpg-agent (it holds the secret key or talks to the card)
            gpg = bounded_gpg(self.home, self.gpg_binary, self.timeout, CLOCK_OPTIONS)
        except (OSError, ValueError) as err:
            # the cause (gpg's path, the system's words) reaches the log with the error
            raise SigningError(
                "gpg did not run, so nothing was signed. Try again; if it "
                "keeps failing, the firmware image is damaged."
            ) from err
        last = ""
        for attempt in range(1, self.attempts + 1):
            pin = self.ask_pin(attempt, last) if self.ask_pin else None
            if self.ask_pin and pin is None:
                raise SigningError("signing was cancelled.")
            try:
                # python-gnupg takes the passphrase as str; it lives only for this
                # call (a str cannot be wiped), the bytearray is wiped below
                result = gpg.sign(
                    data,
                    detach=True,
                    binary=False,
                    keyid=self.key,
                    passphrase=pin.decode("utf-8", "replace") if pin is not None else None,
                    extra_args=["--pinentry-mode", "loopback", "--batch"],
                )
            except (OSError, ValueError) as err:
                raise SigningError(f"gpg did not answer within {self.timeout:g} s.") from err
            finally:
                if pin is not None:
                    pin[:] = bytes(len(pin))
            signature = bytes(result.data or b"")
            if signature.startswith(b"-----BEGIN PGP SIGNATURE-----"):
                return signature
            lines = statuses(result.stderr or "")
            found = [keyword for keyword, _ in lines]
            if "BAD_PASSPHRASE" in found or _error_codes(lines) & _WRONG_PIN:
                last = "the PIN was wrong"
                continue
            if "NO_SECKEY" in found or "INV_SGNR" in found:
                raise SigningError(
                    "the owner's secret key is not here: insert the owner's "
                    "card (or use the key's home) and try again."
                )
            if "CARDCTRL" in found and not signature:
                raise SigningError("the card did not answer: reinsert it and try again.")
            raise SigningError(f"gpg could not sign (status {result.returncode}).")
        raise SigningError(
            f"the PIN was refused {self.attempts} times; nothing was signed. "
            "Check the card's PIN retry counter before trying again."
        )


def signing_home(public_key: str, secret_key: str, work_dir: str | None) -> tuple[str, str]:
    """A new GnuPG home under ``work_dir`` (RAM) with the owner's keys, and the
    gpg to sign with: ``secret_key`` when that file exists (a test image),
    else ``public_key`` and the OpenPGP card's stubs (gpg --card-status).
    SigningError, in plain words, when the keys cannot be loaded."""
    home = tempfile.mkdtemp(prefix="gpg-sign-", dir=work_dir)
    os.chmod(home, 0o700)
    gpg = shutil.which("gpg") or "gpg"
    keys = [secret_key] if os.path.exists(secret_key) else [public_key]
    for key in keys:
        try:
            subprocess.run(
                [gpg, "--homedir", home, "--batch", "--import", key],
                check=True,
                timeout=SIGNING_HOME_TIMEOUT_S,
                capture_output=True,
            )
        except subprocess.CalledProcessError as err:
            shutil.rmtree(home, ignore_errors=True)
            # gpg's words and its command line reach the log through the cause
            raise SigningError(
                "gpg could not load the owner's key from the firmware (the key file in "
                "the image is damaged?). Nothing was changed. Build the firmware image "
                "again with the owner's key, and flash it."
            ) from err
        except (OSError, subprocess.SubprocessError) as err:
            shutil.rmtree(home, ignore_errors=True)
            raise SigningError(
                "gpg did not run or did not answer. Nothing was changed. Try again."
            ) from err
    if keys == [public_key]:
        # the card answers for the secret key; without a card gpg says so at signing
        subprocess.run(
            [gpg, "--homedir", home, "--batch", "--card-status"],
            check=False,
            timeout=SIGNING_HOME_TIMEOUT_S,
            capture_output=True,
        )
    return home, gpg


def stop_gpg_daemons(home: str, *, check: bool = False) -> None:
    """Stop the daemons gpg started for ``home`` (gpg-agent, scdaemon, keyboxd): they outlive
    the run that started them. ``check``: a failure raises CalledProcessError."""
    gpgconf = shutil.which("gpgconf") or "/usr/bin/gpgconf"
    subprocess.run(
        [gpgconf, "--homedir", home, "--kill", "all"],
        check=check,
        timeout=DAEMON_STOP_TIMEOUT_S,
        capture_output=True,
    )


def remove_signing_home(home: str) -> None:
    """Stop the gpg-agent (and scdaemon) the signing started there, then remove it: always,
    since on a test image the home holds the owner's secret key."""
    try:
        stop_gpg_daemons(home)
    except (OSError, subprocess.SubprocessError) as err:
        detail("gpg-home", f"stopping gpg's daemons: {describe(err)}")
    finally:
        shutil.rmtree(home, ignore_errors=True)
