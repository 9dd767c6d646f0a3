"""The ROM keyring: the owner's public key(s) carried in the firmware image
(runtime.image_files.OWNER_KEY_PATH). Read with python-gnupg over the real
gpg, in a throw-away home so nothing is written outside RAM, and under a
deadline so a gpg that hangs cannot hang the page that shows the keys."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass

from runtime.error_detail import plain
from runtime.integrity.gpg_limits import KEYRING_SCAN_TIMEOUT_S


@dataclass(frozen=True)
class KeyringFacts:
    fingerprints: tuple[str, ...] = ()
    problem: str = ""


def _gpg_failed(timeout: float, err: Exception | None = None) -> KeyringFacts:
    words = (
        f"gpg did not run or did not answer within {timeout:g} s, so the owner's key "
        "cannot be shown. Restart; if it happens again, the firmware image may be "
        "damaged: build it again and flash it."
    )
    return KeyringFacts(problem=plain("keyring", err, words) if err is not None else words)


def read_keyring(
    path: str, *, gpg_binary: str = "gpg", timeout: float = KEYRING_SCAN_TIMEOUT_S
) -> KeyringFacts:
    """The primary fingerprints of the keys in ``path``, or why there are none."""
    if not os.path.exists(path):
        return KeyringFacts(problem="No owner key file is in the image.")
    try:
        if os.path.getsize(path) == 0:
            return KeyringFacts(problem="The owner key file is empty.")
    except OSError as err:
        return KeyringFacts(problem=f"The owner key file cannot be read: {err.strerror}.")
    from runtime.integrity.openpgp import bounded_gpg

    home = tempfile.mkdtemp(prefix="gpg-scan-")
    try:
        # no options: the scan reads the file as gpg's defaults would
        gpg = bounded_gpg(home, gpg_binary, timeout, ())
        keys = gpg.scan_keys(path)
    except (OSError, ValueError) as err:
        # python-gnupg raises ValueError when even 'gpg --version' fails or is killed
        return _gpg_failed(timeout, err)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    if keys.returncode is not None and keys.returncode < 0:
        return _gpg_failed(timeout)  # killed at the deadline
    fingerprints = tuple(k["fingerprint"] for k in keys if k.get("type") == "pub")
    if not fingerprints:
        return KeyringFacts(problem="The owner key file holds no OpenPGP public key.")
    return KeyringFacts(fingerprints)
