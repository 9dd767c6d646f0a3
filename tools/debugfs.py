"""One debugfs (e2fsprogs) session on an ext4 image from the host: no root,
no loop device. Shared by tools/os_disk_edit.py (an OS update's or an
attacker's change to /boot) and tools/ext4_journal.py (a change hidden in the
journal); each raises its own error from what this reports."""

from __future__ import annotations

import subprocess
from pathlib import Path

TIMEOUT = 120


def debugfs_errors(stderr: str) -> list[str]:
    """debugfs exits 0 when a request fails: every line on its stderr but its
    banner ("debugfs 1.47.0 ...") is an error."""
    return [
        line for line in stderr.splitlines() if line.strip() and not line.startswith("debugfs ")
    ]


def run_debugfs(
    debugfs: str, image: Path, requests: list[str], *, writable: bool
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run ``requests`` in one debugfs session on ``image``; the finished
    process (whatever its exit) and the errors it printed."""
    done = subprocess.run(
        [debugfs, *(["-w"] if writable else []), "-f", "-", str(image)],
        input="\n".join(requests) + "\n",
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    return done, debugfs_errors(done.stderr)
