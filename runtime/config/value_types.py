"""The kinds of value a setting holds: how text becomes a typed value, and
what is wrong when it cannot.

parse() raises ValueError with a message that says what was expected; the
settings loader adds the file, line and the value kept instead.
"""

from __future__ import annotations

import re
from typing import Any, Generic, Protocol, TypeVar, overload

from runtime.config.config_file import has_control

T = TypeVar("T")


class ValueType(Protocol[T]):
    expects: str  # for messages and menus: what a valid value looks like

    def parse(self, text: str) -> T: ...

    def show(self, value: T) -> str: ...


class Bool:
    """Heads' switches: only y turns one on there, so y and n are all we accept.

    "yes", "true" or "1" are refused (not read as on): Heads would read them as
    off, so guessing either way could change what a carried-over file meant."""

    expects = "y or n"

    def parse(self, text: str) -> bool:
        if text in ("y", ""):
            return text == "y"
        if text == "n":
            return False
        hint = ""
        if text.lower() in ("yes", "true", "1", "on", "y"):
            hint = " (Heads reads anything but y as off, so write y for on)"
        elif text.lower() in ("no", "false", "0", "off", "n"):
            hint = " (write n for off)"
        raise ValueError(f"{text!r} is not y or n{hint}")

    def show(self, value: bool) -> str:
        return "y" if value else "n"


class OptionalInt:
    """A whole number in a range, or empty for off."""

    def __init__(self, low: int, high: int, unit: str, empty_means: str) -> None:
        self.low, self.high = low, high
        self.expects = f"a whole number of {unit} from {low} to {high}, or empty for {empty_means}"
        self.empty_means = empty_means

    def parse(self, text: str) -> int | None:
        if text == "":
            return None
        # Strictly digits: int() would also take " 5", "+5" and "1_0".
        if not (text.isascii() and text.isdigit()) or len(text) > 6:
            raise ValueError(f"{text!r} is not a whole number")
        number = int(text)
        if not self.low <= number <= self.high:
            raise ValueError(f"{number} is out of range ({self.low} to {self.high})")
        return number

    def show(self, value: int | None) -> str:
        return self.empty_means if value is None else str(value)


class Choice:
    def __init__(self, *options: str) -> None:
        self.options = options
        self.expects = " or ".join(options)

    def parse(self, text: str) -> str:
        if text not in self.options:
            raise ValueError(f"{text!r} is not one of: {', '.join(self.options)}")
        return text

    def show(self, value: str) -> str:
        return value


class Text:
    """Free text for display; optionally limited to a set of characters."""

    def __init__(
        self, max_len: int = 200, allowed: str | None = None, nonempty: bool = False
    ) -> None:
        self.max_len, self.nonempty = max_len, nonempty
        self.allowed = frozenset(allowed) if allowed is not None else None
        self.expects = f"{'text' if nonempty else 'text, or empty'} (at most {max_len} characters)"

    def parse(self, text: str) -> str:
        if has_control(text):
            raise ValueError("tabs, line breaks and other control characters are not allowed")
        if len(text) > self.max_len:
            raise ValueError(f"longer than {self.max_len} characters")
        if self.nonempty and not text:
            raise ValueError("it cannot be empty")
        if self.allowed is not None:
            bad = sorted({c for c in text if c not in self.allowed})
            if bad:
                raise ValueError(f"the characters {''.join(bad)!r} are not allowed here")
        return text

    def show(self, value: str) -> str:
        return value if value else "(empty)"


def _check_path(text: str, under: str) -> None:
    if not text.startswith(under):
        raise ValueError(f"{text!r} is not a path under {under}")
    if has_control(text) or " " in text or len(text) > 255:
        raise ValueError(f"{text!r} is not a usable path (spaces, control characters or too long)")
    if "/../" in text + "/" or "/./" in text + "/":
        raise ValueError(f"{text!r} contains . or .. : write the path directly")


class OptionalPath:
    """An absolute path, or empty for not set."""

    def __init__(self, empty_means: str, under: str = "/") -> None:
        self.empty_means, self.under = empty_means, under
        self.expects = f"a path under {under}, or empty: {empty_means}"

    def parse(self, text: str) -> str | None:
        if text == "":
            return None
        _check_path(text, self.under)
        return text

    def show(self, value: str | None) -> str:
        return self.empty_means if value is None else value


class Words:
    """Words separated by spaces (kernel arguments, directory names)."""

    def __init__(self, relative_paths: bool = False) -> None:
        self.relative_paths = relative_paths
        self.expects = (
            "directory names relative to the root file system, separated by spaces"
            if relative_paths
            else "words separated by spaces, or empty"
        )

    def parse(self, text: str) -> tuple[str, ...]:
        if has_control(text):
            raise ValueError("tabs, line breaks and other control characters are not allowed")
        words = tuple(w for w in text.split(" ") if w)
        if self.relative_paths:
            for word in words:
                if word.startswith("/") or ".." in word.split("/"):
                    raise ValueError(f"{word!r} must be relative to / without '..'")
        return words

    def show(self, value: tuple[str, ...]) -> str:
        return " ".join(value) if value else "(none)"


class HotpToken:
    """Where the HOTP token is: a USB dongle found by itself, none, or the
    software token on a serial line."""

    expects = "auto, none, or serial:/dev/<tty> (the software token on a serial line)"

    def parse(self, text: str) -> str:
        if text in ("auto", "none"):
            return text
        if text.startswith("serial:"):
            _check_path(text[len("serial:") :], "/dev/tty")
            return text
        raise ValueError(f"{text!r} is not auto, none or serial:/dev/<tty>")

    def show(self, value: str) -> str:
        return value


class Key:
    """One printable character typed on the console."""

    expects = "one letter, digit or punctuation character"

    def parse(self, text: str) -> str:
        if len(text) != 1 or not text.isascii() or not text.isprintable() or text == " ":
            raise ValueError(f"{text!r} is not a single printable character")
        return text

    def show(self, value: str) -> str:
        return value


class TpmName:
    """A TPM object's Name as `tpm2 readpublic` prints it: 000b (its SHA-256
    name algorithm) and the 32-byte digest, 68 hex digits; empty for none."""

    _HEX = frozenset("0123456789abcdefABCDEF")  # not str.isdigit: no other scripts' digits
    _SHA256 = "000b"

    def __init__(self, empty_means: str) -> None:
        self.empty_means = empty_means
        self.expects = (
            "68 hex digits starting with 000b (the key's name as "
            f"`tpm2 readpublic` prints it), or empty: {empty_means}"
        )

    def parse(self, text: str) -> bytes | None:
        if text == "":
            return None
        if len(text) != 68 or not set(text) <= self._HEX:
            raise ValueError(
                f"not 68 hex digits ({len(text)} characters"
                + ("" if set(text) <= self._HEX else ", not all hex digits")
                + ")"
            )
        if not text.lower().startswith(self._SHA256):
            raise ValueError(f"starts with {text[:4]!r}, not 000b (a SHA-256 name)")
        return bytes.fromhex(text)

    def show(self, value: bytes | None) -> str:
        return self.empty_means if value is None else value.hex()


_TZ_NAME = r"(?:[A-Za-z]{3,}|<[A-Za-z0-9+-]{3,}>)"
_TZ_OFFSET = r"[+-]?(\d{1,2})(?::([0-5]\d)){0,2}"
# The C library keeps a half-read rule (a month 13, a day 400) instead of
# refusing it: the ranges are checked here. Julian days J1-J365, 0-365.
_TZ_DAY = r"(?:J(?:36[0-5]|3[0-5]\d|[12]\d\d|[1-9]\d?)|36[0-5]|3[0-5]\d|[12]?\d?\d)"
_TZ_RULE = (
    rf"(?:{_TZ_DAY}|M(?:1[0-2]|[1-9])\.[1-5]\.[0-6])"
    r"(?:/[+-]?\d{1,3}(?::[0-5]\d){0,2})?"
)
TZ_MAX = 64
_TZ = re.compile(rf"{_TZ_NAME}{_TZ_OFFSET}(?:{_TZ_NAME}(?:{_TZ_OFFSET})?,{_TZ_RULE},{_TZ_RULE})?")


class TimeZone:
    """UTC, or a POSIX TZ rule (the C library reads one without a zone
    database, which the image does not carry: a name such as Europe/Berlin
    would silently mean UTC)."""

    expects = (
        "UTC, or a POSIX TZ rule: CET-1CEST,M3.5.0,M10.5.0/3 for Central "
        "Europe, EST5EDT,M3.2.0,M11.1.0 for US Eastern, <+0530>-5:30 for India "
        "(the hours are west of Greenwich, hence the minus for the east)"
    )

    def parse(self, text: str) -> str:
        if text == "UTC":
            return text
        if len(text) > TZ_MAX:
            raise ValueError(f"longer than {TZ_MAX} characters")
        found = _TZ.fullmatch(text)
        if found is None:
            raise ValueError(
                f"{text!r} is not a POSIX TZ rule (the image has no zone "
                "database, so names such as Europe/Berlin cannot be used)"
            )
        hours = [int(h) for h in found.groups()[::2] if h is not None]
        if any(h > 24 for h in hours):
            raise ValueError(f"{text!r}: an offset is more than 24 hours")
        return text

    def show(self, value: str) -> str:
        return value


class HasValues(Protocol):
    def value_of(self, key: str) -> object: ...


class Setting(Generic[T]):
    """One row of the settings table, and a typed attribute of Settings."""

    def __init__(self, key: str, kind: ValueType[T], default: str, meaning: str) -> None:
        kind.parse(default)  # a bad default is a programming error: fail at import
        self.key, self.kind, self.default, self.meaning = key, kind, default, meaning

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> Setting[T]: ...
    @overload
    def __get__(self, obj: HasValues, owner: type[Any]) -> T: ...

    def __get__(self, obj: HasValues | None, owner: type[Any]) -> Setting[T] | T:
        if obj is None:
            return self
        value: T = obj.value_of(self.key)  # type: ignore[assignment]  # parsed by self.kind
        return value
