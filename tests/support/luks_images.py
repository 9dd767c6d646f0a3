"""LUKS images for tests: made by the host's cryptsetup on plain files (no
device-mapper needed), with a fast key derivation."""

from __future__ import annotations

import contextlib
import os
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


def key_verdict(
    image: Path, key: bytes, slot: int | None = None
) -> subprocess.CompletedProcess[str]:
    """cryptsetup's verdict on a key for a LUKS image file (exit 0: it opens;
    ``slot``: that key slot only). The key goes through a pipe, never a file."""
    read_end, write_end = os.pipe()
    os.write(write_end, key)
    os.close(write_end)
    try:
        return subprocess.run(
            [
                CRYPTSETUP,
                "open",
                "--test-passphrase",
                "-v",
                *([f"--key-slot={slot}"] if slot is not None else []),
                f"--key-file=/proc/self/fd/{read_end}",
                str(image),
            ],
            pass_fds=(read_end,),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(read_end)
