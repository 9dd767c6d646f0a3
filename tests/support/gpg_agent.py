"""Stop the daemons gpg starts for a test's home (gpg-agent, keyboxd): they
outlive the test, and the next signing must start an agent of its own."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

STOP_TIMEOUT_S = 60


def stop_gpg_agents(home: Path, *, check: bool = False) -> None:
    """``gpgconf --kill all`` for ``home``; ``check``: a failure fails the test."""
    gpgconf = shutil.which("gpgconf") or "/usr/bin/gpgconf"
    subprocess.run(
        [gpgconf, "--homedir", str(home), "--kill", "all"],
        check=check,
        timeout=STOP_TIMEOUT_S,
        capture_output=True,
    )
