"""Signing with the owner's key through gpg (python-gnupg): in the firmware
the key is on an OpenPGP card, reached by gpg's own scdaemon; in tests and on
a host it is a key in a GnuPG home. The PIN (or passphrase) goes to gpg on
its standard input with loopback pinentry, never on an argument list.
"""

from __future__ import annotations

from collections.abc import Callable

from runtime.integrity.openpgp import CLOCK_OPTIONS, bounded_gpg, statuses
from runtime.integrity.sign_boot import SigningError

ATTEMPTS = 3
#: libgpg-error codes (low 16 bits) that mean "that PIN/passphrase was wrong"
_WRONG_PIN = frozenset({11, 87})  # GPG_ERR_BAD_PASSPHRASE, GPG_ERR_BAD_PIN
#: a card may ask for a touch or be slow to wake: more than a verification needs
SIGN_TIMEOUT_S = 120.0

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
