"""Running Python as the image does with respect to `cryptography`: without it.

The image leaves the package out (runtime/tpm/lazy_crypto.py); the host venv
has it, since tpm2-pytss's pip metadata requires it and some tests use it as
an oracle. Code given to ``run_without_cryptography`` runs in a fresh
interpreter whose first act is to refuse every `cryptography` import.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

#: first thing the child runs: no `cryptography` module can be imported after it
REFUSE_CRYPTOGRAPHY = """\
import sys

class RefuseCryptography:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name.partition(".")[0] == "cryptography":
            raise ModuleNotFoundError(f"No module named {name!r} (refused)", name=name)
        return None

sys.meta_path.insert(0, RefuseCryptography)
"""


def run_without_cryptography(code: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``code`` in a new interpreter (in the repository) that cannot import `cryptography`."""
    return subprocess.run(
        [sys.executable, "-c", REFUSE_CRYPTOGRAPHY + code],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
