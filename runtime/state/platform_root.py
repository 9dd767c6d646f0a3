"""DevicePlatform's root file system hashing (CONFIG_ROOT_DEV,
CONFIG_ROOT_DIRLIST): making /boot's kexec_root_hashes.txt, and checking the
root file system against the copy the owner signed. The list itself is
runtime.integrity.root_hashes; this is the glue to the devices."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from runtime.devices.root_fs import RootMountError, mounted_root
from runtime.error_detail import plain
from runtime.integrity.boot_lists import ListFormatError
from runtime.integrity.root_hashes import (
    ROOT_HASHES_FILE,
    RootHashError,
    compare,
    format_root_hashes,
    hash_root,
    parse_root_hashes,
)
from runtime.integrity.signed_state_commit import MAX_STAGED_BYTES
from runtime.state.boot_side import BootSide
from runtime.state.platform import RootFacts
from runtime.state.platform_boot import trusted_state

if TYPE_CHECKING:
    from runtime.integrity.root_hashes import RootHashes

_NO_DEVICE = (
    "No root file system is named: set CONFIG_ROOT_DEV (and CONFIG_ROOT_DIRLIST) in your settings."
)


def _hashes(settings: object, progress: Callable[[str], None]) -> RootHashes:
    device = str(getattr(settings, "root_dev", "") or "")
    dirs = tuple(getattr(settings, "root_dirlist", ()) or ())

    def shown(done: int, total: int, name: str) -> None:
        if done % 500 == 0 or done == total:
            progress(f"Hashing the root file system: {done} of {total} files...")

    progress(f"Mounting {device} read-only...")
    with mounted_root(device) as root:
        return hash_root(root, dirs, shown)


def create(
    side: BootSide, settings: object, progress: Callable[[str], None]
) -> tuple[RootFacts, bytes | None]:
    """The root file system hashed into kexec_root_hashes.txt's bytes, and
    what differs from the list signed before (if any): /boot's signing writes
    it with the rest of the signed state, in one replacement."""

    if not getattr(settings, "root_dev", None):
        return RootFacts(problem=_NO_DEVICE), None
    try:
        found = _hashes(settings, progress)
        data = format_root_hashes(found)
        signed = trusted_state(side).get(ROOT_HASHES_FILE)
        before = parse_root_hashes(signed) if signed is not None else None
    except (RootMountError, RootHashError, ListFormatError) as err:
        return RootFacts(problem=plain("root-hashes", err, f"{err} Nothing was made.")), None
    if len(data) > MAX_STAGED_BYTES:
        return RootFacts(
            problem=f"The list would take {len(data) >> 20} MiB, more than a "
            f"signed list may ({MAX_STAGED_BYTES >> 20} MiB): list fewer "
            "directories in CONFIG_ROOT_DIRLIST. Nothing was made."
        ), None
    if before is None:
        return RootFacts(checked=len(found.digests)), data
    diff = compare(before, found)
    return RootFacts(
        checked=diff.checked, changed=diff.changed, missing=diff.missing, added=diff.added
    ), data


def check(side: BootSide, settings: object, progress: Callable[[str], None]) -> RootFacts:
    """The root file system against the list the owner signed."""

    if not getattr(settings, "root_dev", None):
        return RootFacts(problem=_NO_DEVICE)
    if not getattr(side.last_report, "ok", False):
        return RootFacts(problem="/boot does not verify, so its root hash list proves nothing.")
    signed = trusted_state(side).get(ROOT_HASHES_FILE)
    if signed is None:
        return RootFacts(
            problem="/boot holds no root hash list signed by you: create one "
            "(Options > Root file system hashes), then sign /boot."
        )
    try:
        expected = parse_root_hashes(signed)
        found = _hashes(settings, progress)
    except (RootMountError, RootHashError, ListFormatError) as err:
        return RootFacts(problem=plain("root-hashes", err, str(err)))
    result = compare(expected, found)
    return RootFacts(
        checked=result.checked, changed=result.changed, missing=result.missing, added=result.added
    )
