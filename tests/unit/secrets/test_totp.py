"""TOTP codes (runtime/secrets/totp.py) against RFC 6238 and an HMAC reference."""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runtime.secrets.totp import totp_code

RFC_SECRET = b"12345678901234567890"

# RFC 6238 appendix B, SHA-1 column (8 digits there), truncated to the last 6.
RFC_VECTORS = [
    (59, "287082"),
    (1111111109, "081804"),
    (1111111111, "050471"),
    (1234567890, "005924"),
    (2000000000, "279037"),
    (20000000000, "353130"),
]


def reference(secret: bytes, at: int) -> str:
    """RFC 4226 HOTP over the 30-second counter, written out with hmac."""
    mac = hmac.new(secret, struct.pack(">Q", at // 30), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    value = struct.unpack(">I", mac[offset : offset + 4])[0] & 0x7FFFFFFF
    return f"{value % 1_000_000:06d}"


@contextmanager
def timezone(name: str) -> Iterator[None]:
    old = os.environ.get("TZ")
    os.environ["TZ"] = name
    time.tzset()
    try:
        yield
    finally:
        if old is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = old
        time.tzset()


@pytest.mark.parametrize(("at", "code"), RFC_VECTORS)
def test_rfc6238_sha1_vectors(at: int, code: str) -> None:
    assert totp_code(RFC_SECRET, at) == code


@pytest.mark.parametrize(("at", "code"), RFC_VECTORS)
def test_bytearray_secret(at: int, code: str) -> None:
    assert totp_code(bytearray(RFC_SECRET), at) == code


def test_code_is_constant_within_a_30_second_step() -> None:
    assert totp_code(RFC_SECRET, 30) == totp_code(RFC_SECRET, 59.9) != totp_code(RFC_SECRET, 60)


def test_without_a_time_it_uses_now() -> None:
    code = totp_code(RFC_SECRET)
    assert len(code) == 6 and code.isdigit()


@given(secret=st.binary(min_size=1, max_size=64), at=st.integers(0, 2**34))
def test_any_secret_length_matches_the_reference(secret: bytes, at: int) -> None:
    # In UTC: see the DST test below for what happens elsewhere.
    with timezone("UTC"):
        assert totp_code(secret, at) == reference(secret, at)


def test_codes_do_not_depend_on_the_local_timezone() -> None:
    if not Path("/usr/share/zoneinfo/Europe/Berlin").exists():
        pytest.skip("no tzdata for Europe/Berlin")
    # 2023-10-29 00:30-02:00 UTC: Berlin's 02:00-03:00 passes twice (CEST, then CET).
    times = range(1698539400, 1698541200 + 3600, 30)
    with timezone("Europe/Berlin"):
        codes = [totp_code(RFC_SECRET, t) for t in times]
    assert codes == [reference(RFC_SECRET, t) for t in times]
