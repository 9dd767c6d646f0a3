"""LUKS images for tests: made by the host's cryptsetup on plain files (no
device-mapper needed), with a fast key derivation."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

from runtime.disk.cryptsetup_ops import CRYPTSETUP

IMAGE_SIZE = 20 << 20


def luks_format(path: Path, version: int, passphrase: bytes, *extra: str) -> None:
    """A LUKS image, its passphrase given on stdin (never a file)."""
    with open(path, "wb") as f:
        f.truncate(IMAGE_SIZE)
    subprocess.run(
        [
            CRYPTSETUP,
            "luksFormat",
            "--batch-mode",
            f"--type=luks{version}",
            "--pbkdf=pbkdf2",
            "--pbkdf-force-iterations=1000",
            "--key-file=-",
            *extra,
            str(path),
        ],
        input=passphrase,
        check=True,
        capture_output=True,
        timeout=60,
    )


@contextlib.contextmanager
def loop_devices(images: Sequence[Path]) -> Iterator[list[str]]:
    """Each image attached to a loop device (a /dev path, as the runtime's
    device rules want), detached afterwards whatever happens."""
    attached: list[str] = []
    try:
        for image in images:
            found = subprocess.run(
                ["losetup", "--find", "--show", str(image)],
                check=True,
                capture_output=True,
                text=True,
                timeout=30,
            )
            attached.append(found.stdout.strip())
        yield attached
    finally:
        for device in attached:
            subprocess.run(["losetup", "--detach", device], capture_output=True, timeout=30)
