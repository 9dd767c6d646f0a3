"""What every HOTP token backend offers: present, check a code, be programmed.

A token is the user's USB key (Nitrokey, Librem Key) or, in tests and in
QEMU, a software token behind a serial line. The runtime computes an HOTP
code from the sealed secret and asks the token whether it agrees; only a
machine that could unseal the secret can make the token say yes.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol


class HotpCheck(enum.StrEnum):
    """What a token said, or NO_SECRET when no code could be made to ask it about: the
    HOTP step's outcome too."""

    SUCCESS = "success"
    INVALID = "invalid"  # wrong code or bad format (for program: refused input)
    NOT_PROGRAMMED = "not-programmed"  # the token has no HOTP secret in its slot
    ABSENT = "absent"  # no token found (or no way to talk to one)
    ERROR = "error"  # anything else; worth a retry
    NO_SECRET = "no-secret"  # noqa: S105 (the shared secret did not unseal)


@dataclass(frozen=True)
class TokenStatus:
    """A token's answer. ``message`` is for the user: what happened, why it
    matters, what to do. ``detail`` is technical (the tool's own words) for a
    details view or log; neither ever holds a code, secret or PIN."""

    result: HotpCheck
    message: str
    detail: str = ""
    #: program() only: the token refused the admin PIN (or it cannot be a PIN):
    #: a typo is the likely cause, so the PIN is worth asking for again
    wrong_pin: bool = False

    @property
    def ok(self) -> bool:
        return self.result is HotpCheck.SUCCESS


#: HOTP codes the runtime sends are 6 digits (RFC 4226 default, as Heads uses).
CODE_DIGITS = 6


def is_code(text: str) -> bool:
    """True for exactly six ASCII digits."""
    return len(text) == CODE_DIGITS and text.isascii() and text.isdigit()


class HotpToken(Protocol):
    """A token backend.

    ``lookahead`` is how many counter values, starting at its own counter, the
    token tries when it checks a code: it accepts hotp(c) for counter <= c <
    counter + lookahead and then sets its counter to c + 1.

    ``program`` and ``check`` never raise for a device's failure; they return
    a TokenStatus. They do not wipe ``secret`` or ``admin_pin``: the caller
    owns them (it may retry with the same PIN) and wipes them.
    """

    @property
    def name(self) -> str:
        """The brand for messages, e.g. "Nitrokey Pro", "Librem Key", "software token"."""
        ...

    @property
    def lookahead(self) -> int: ...

    def present(self) -> bool:
        """Quick: is a token there to talk to? (No code is sent.)"""
        ...

    def why_absent(self) -> TokenStatus:
        """After present() said False: the reason in plain words (result ABSENT)."""
        ...

    def check(self, code: str) -> TokenStatus: ...

    def program(self, secret: bytearray, counter: int, admin_pin: bytearray) -> TokenStatus: ...
