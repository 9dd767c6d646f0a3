"""Change files on the test OS disk's /boot from the host, as an attacker (or
an OS update) with the disk in hand would: the ext4 partition is copied out
of the raw disk, changed with debugfs (e2fsprogs, no root, no loop device)
and copied back.

    with BootPartition(disk) as boot:
        boot.write("/vmlinuz-6.1", data)
        boot.read("/kexec_hashes.txt")
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from tools.debugfs import TIMEOUT, run_debugfs
from tools.make_os_disk import BOOT_OFFSET, BOOT_SIZE


def _debugfs() -> str:
    found = shutil.which("debugfs") or shutil.which("debugfs", path="/sbin:/usr/sbin")
    if not found:
        raise RuntimeError("debugfs is missing: install the Debian package e2fsprogs")
    return found


class BootPartition:
    def __init__(self, disk: Path, offset: int = BOOT_OFFSET, size: int = BOOT_SIZE) -> None:
        self.disk, self.offset, self.size = disk, offset, size
        self._dir = Path(tempfile.mkdtemp(prefix="boot-edit-"))
        self.image = self._dir / "boot.ext4"

    def __enter__(self) -> BootPartition:
        with self.disk.open("rb") as src, self.image.open("wb") as dst:
            src.seek(self.offset)
            dst.write(src.read(self.size))
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        try:
            if exc_type is None:
                with self.disk.open("r+b") as dst:
                    dst.seek(self.offset)
                    dst.write(self.image.read_bytes())
        finally:
            shutil.rmtree(self._dir, ignore_errors=True)

    def _run(self, request: str, writable: bool = True) -> str:
        args = [_debugfs(), *(["-w"] if writable else []), "-R", request, str(self.image)]
        done = subprocess.run(args, capture_output=True, text=True, timeout=TIMEOUT, check=True)
        return done.stdout

    def read(self, path: str) -> bytes:
        out = self._dir / "read.bin"
        self._run(f"dump {path} {out}", writable=False)
        return out.read_bytes() if out.exists() else b""

    def write(self, path: str, data: bytes) -> None:
        """Replace (or add) the file at path with data."""
        src = self._dir / "write.bin"
        src.write_bytes(data)
        self._run(f"rm {path}")  # fails quietly when absent: debugfs prints, exits 0
        self._run(f"write {src} {path}")

    def remove(self, path: str) -> None:
        self._run(f"rm {path}")

    def _script(self, requests: list[str]) -> None:
        """Run requests in one writable debugfs session; raise on any error it printed."""
        done, errors = run_debugfs(_debugfs(), self.image, requests, writable=True)
        done.check_returncode()
        if errors:
            raise RuntimeError(f"debugfs on {self.disk.name}: {'; '.join(errors[:5])}")

    def mkdir(self, path: str) -> None:
        """Make the directory at path (its parent must exist)."""
        self._script([f"mkdir {path}"])

    def symlink(self, path: str, target: str) -> None:
        """Make a symbolic link at path pointing to target, as given (relative or not)."""
        self._script([f"symlink {path} {target}"])

    def mkfifo(self, path: str) -> None:
        """Make a FIFO (named pipe) at path: an open of it for reading blocks."""
        # debugfs mknod takes a bare name in its current directory: with a
        # slash in it, the slash would become part of the entry's name
        directory, _, name = path.rpartition("/")
        self._script([f"cd {directory or '/'}", f"mknod {name} p"])

    def names(self, directory: str = "/") -> list[str]:
        listing = self._run(f"ls -p {directory}", writable=False)
        return [
            line.split("/")[5]
            for line in listing.splitlines()
            if line.count("/") >= 6 and line.split("/")[5] not in (".", "..")
        ]
