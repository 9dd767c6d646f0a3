"""The OS's root file system (CONFIG_ROOT_DEV), mounted read-only for the time
it takes to hash it, and unmounted whatever happens."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from runtime.devices.boot_device import journal_pending, mount_read_only, unmount

MOUNT_POINT = "/mnt/root-fs"


class RootMountError(OSError):
    """The root file system cannot be read; str() says why in plain words."""

    def __str__(self) -> str:
        return str(self.strerror or super().__str__())


@contextlib.contextmanager
def mounted_root(device: str, target: str = MOUNT_POINT) -> Iterator[str]:
    """Where ``device`` is mounted read-only, for the with block."""
    if not device.startswith("/dev/") or not os.path.exists(device):
        raise RootMountError(0, f"CONFIG_ROOT_DEV={device}: this machine has no such device.")
    if journal_pending(device):
        # a read-only mount ignores the journal, and the OS applies it when it
        # mounts the file system: what would be hashed is not what would run
        raise RootMountError(
            0,
            f"{device} has a journal holding changes not yet applied "
            "(an unclean shutdown, or changes hidden there): what would be "
            "checked is not what the OS would run. Boot the OS once, shut it "
            "down cleanly, and check again.",
        )
    os.makedirs(target, exist_ok=True)
    problem = mount_read_only(device, target)
    if problem:
        raise RootMountError(0, problem)
    try:
        yield target
    finally:
        unmount(target)
