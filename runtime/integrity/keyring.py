"""The ROM keyring: the owner's public key(s) carried in the firmware image
(/etc/runtime/owner.asc). Read with python-gnupg over the real gpg, in a
throw-away home so nothing is written outside RAM."""

from __future__ import annotations

import os
import shutil
import tempfile

from runtime.error_detail import plain
from runtime.state.platform import KeyringFacts

GPG_TIMEOUT = 30


def read_keyring(path: str) -> KeyringFacts:
    """The primary fingerprints of the keys in ``path``, or why there are none."""
    if not os.path.exists(path):
        return KeyringFacts(problem="No owner key file is in the image.")
    try:
        if os.path.getsize(path) == 0:
            return KeyringFacts(problem="The owner key file is empty.")
    except OSError as err:
        return KeyringFacts(problem=f"The owner key file cannot be read: {err.strerror}.")
    import gnupg

    home = tempfile.mkdtemp(prefix="gpg-scan-")
    try:
        gpg = gnupg.GPG(gnupghome=home)
        keys = gpg.scan_keys(path)
    except (OSError, ValueError) as err:
        return KeyringFacts(
            problem=plain(
                "keyring",
                err,
                (
                    "gpg could not read the owner key file, so the owner's key cannot be shown. "
                    "The firmware image may be damaged: build it again and flash it."
                ),
            )
        )
    finally:
        shutil.rmtree(home, ignore_errors=True)
    fingerprints = tuple(k["fingerprint"] for k in keys if k.get("type") == "pub")
    if not fingerprints:
        return KeyringFacts(problem="The owner key file holds no OpenPGP public key.")
    return KeyringFacts(fingerprints)
