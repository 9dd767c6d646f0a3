"""What the user's phone needs to enrol the TOTP secret: the otpauth URI
(Google Authenticator's key-URI format, with issuer and account so phones
label it), the base32 text for manual entry, and the QR code as text for the
terminal UI (half blocks where the terminal has UTF-8, '#' pairs where not).

Pure: no TPM, no terminal. The URI is made by pyotp, the QR matrix by segno.
"""

from __future__ import annotations

import pyotp
import segno

from runtime.secrets.totp import secret_base32

__all__ = ["ISSUER", "grouped", "otpauth_uri", "qr_matrix", "qr_text", "secret_base32"]

ISSUER = "heads-runtime"

# Two matrix rows per text line; the key is (top dark, bottom dark).
_HALF_BLOCKS = {
    (False, False): " ",
    (True, False): "\u2580",
    (False, True): "\u2584",
    (True, True): "\u2588",
}


def grouped(text: str, size: int = 4) -> str:
    """'ABCD EFGH ...': easier to type from the screen; phones ignore the spaces."""
    return " ".join(text[i : i + size] for i in range(0, len(text), size))


def otpauth_uri(secret: bytes | bytearray, account: str, issuer: str = ISSUER) -> str:
    """otpauth://totp/<issuer>:<account>?secret=...&issuer=... (RFC 6238 defaults)."""
    return str(pyotp.TOTP(secret_base32(secret)).provisioning_uri(name=account, issuer_name=issuer))


def qr_matrix(data: str, border: int = 1) -> list[list[bool]]:
    """The QR code's modules (True = dark), with a quiet zone of ``border``."""
    qr = segno.make(data, error="l")  # the smallest code: a screen is not a worn sticker
    return [[bool(cell) for cell in row] for row in qr.matrix_iter(scale=1, border=border)]


def qr_text(data: str, unicode: bool = True, border: int = 1) -> list[str]:
    """The QR code as lines of text with the dark modules drawn; the UI shows
    them inverted where needed so the quiet zone is light (phones read both)."""
    matrix = qr_matrix(data, border)
    if not unicode:
        return ["".join("##" if cell else "  " for cell in row) for row in matrix]
    if len(matrix) % 2:
        matrix.append([False] * len(matrix[0]))
    return [
        "".join(
            _HALF_BLOCKS[(top, bottom)]
            for top, bottom in zip(matrix[i], matrix[i + 1], strict=True)
        )
        for i in range(0, len(matrix), 2)
    ]
