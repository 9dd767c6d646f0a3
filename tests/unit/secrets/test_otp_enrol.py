"""Enrolment material and codes: the published known answers, a URI phones
parse back, and a QR code whose text rendering keeps every module."""

from __future__ import annotations

import pyotp
import pytest

from runtime.secrets.otp_enrol import grouped, otpauth_uri, qr_matrix, qr_text, secret_base32
from runtime.secrets.totp import hotp_code, totp_code
from tests.conftest import known_answers

SECRET = bytes(range(1, 21))  # 20 bytes, as the runtime generates


def _kat() -> dict[str, dict[str, object]]:
    data: dict[str, dict[str, object]] = known_answers()
    return data


def test_hotp_matches_rfc4226() -> None:
    table = _kat()["rfc4226_hotp"]
    secret = str(table["secret_ascii"]).encode()
    rows = table["rows"]
    assert isinstance(rows, list) and len(rows) == 10
    for row in rows:
        assert hotp_code(secret, row["counter"]) == row["hotp6"]


def test_totp_matches_rfc6238_sha1_truncated_to_six_digits() -> None:
    table = _kat()["rfc6238_totp"]
    seeds = table["seeds_ascii"]
    assert isinstance(seeds, dict)
    secret = str(seeds["sha1"]).encode()
    rows = table["rows"]
    assert isinstance(rows, list)
    for row in rows:
        # Dynamic truncation is taken modulo 10^digits: 6 digits are the last 6 of 8.
        assert totp_code(secret, row["unix_time"]) == row["sha1"][-6:]


def test_hotp_refuses_a_negative_counter() -> None:
    with pytest.raises(ValueError):
        hotp_code(SECRET, -1)


def test_the_uri_parses_back_with_issuer_account_and_secret() -> None:
    uri = otpauth_uri(SECRET, "qemu-swtpm")
    assert uri.startswith("otpauth://totp/heads-runtime:qemu-swtpm?")
    parsed = pyotp.parse_uri(uri)
    assert isinstance(parsed, pyotp.TOTP)
    assert parsed.secret == secret_base32(SECRET)
    assert parsed.issuer == "heads-runtime" and parsed.name == "qemu-swtpm"
    assert parsed.now() == totp_code(SECRET)


def test_base32_for_manual_entry() -> None:
    text = secret_base32(SECRET)
    assert len(text) == 32 and "=" not in text
    assert grouped(text).replace(" ", "") == text
    assert all(len(group) == 4 for group in grouped(text).split())


def _decode_half_blocks(lines: list[str]) -> list[list[bool]]:
    top = {" ": False, "\u2580": True, "\u2584": False, "\u2588": True}
    bottom = {" ": False, "\u2580": False, "\u2584": True, "\u2588": True}
    matrix = []
    for line in lines:
        matrix.append([top[c] for c in line])
        matrix.append([bottom[c] for c in line])
    return matrix


def test_the_qr_text_keeps_every_module() -> None:
    uri = otpauth_uri(SECRET, "qemu-swtpm")
    matrix = qr_matrix(uri)
    lines = qr_text(uri)
    decoded = _decode_half_blocks(lines)
    assert decoded[: len(matrix)] == matrix
    assert not any(any(row) for row in decoded[len(matrix) :])  # an odd row is padded light
    # Fits an 80x24 terminal with room for the base32 text and a prompt.
    assert len(lines) <= 21 and all(len(line) <= 80 for line in lines)


def test_the_ascii_fallback_draws_two_characters_per_module() -> None:
    uri = otpauth_uri(SECRET, "qemu-swtpm")
    matrix = qr_matrix(uri)
    lines = qr_text(uri, unicode=False)
    assert len(lines) == len(matrix)
    assert [
        [line[2 * i] == "#" for i in range(len(row))]
        for line, row in zip(lines, matrix, strict=True)
    ] == matrix
    assert all(set(line) <= {"#", " "} for line in lines)
