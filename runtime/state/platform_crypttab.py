"""The crypttab overrides signed with a Disk Unlock Key: the OS initrd's own
crypttab entries, with the key file of the DUK's containers set to
/secret.key. They are read from the default entry's initrds when the default
is saved or the DUK set up (as Heads' kexec-save-default does), so that the
OS opens its containers under its own names and options; without them the
key cpio writes Heads' default lines (`luks-<uuid>`), which an OS whose
crypttab names its root `sda3_crypt` would not use."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from runtime.boot_configs.entry import ConfigSyntaxError
from runtime.disk.crypttab import (
    SECRET_KEY_PATH,
    CrypttabError,
    names_a_key_device,
    override_lines,
)
from runtime.disk.key_lists import (
    CRYPTTAB_OVERRIDES_FILE,
    CrypttabOverride,
    KeyDevice,
    KeyListError,
    format_crypttab_overrides,
)
from runtime.integrity.boot_paths import BootPathError
from runtime.integrity.boot_report import printable
from runtime.integrity.boot_view import BootView

#: an initrd is read whole to find its crypttab; distributions' are 30-100 MiB
MAX_INITRD_BYTES = 256 << 20
#: an entry with more initrds than this is a hostile one (each may take seconds)
MAX_INITRDS = 4
DEFAULT_USED = "The default crypttab lines (luks-<UUID>) are used."
NONE_NAMED = (
    "The OS initrd's crypttab names none of the key's disks by its LUKS UUID (UUID= or "
    "/dev/disk/by-uuid/): its lines are kept as they are, so the OS still asks for the "
    "passphrase. Name the disk by UUID in the OS's crypttab, update its initramfs, and "
    "save the default again."
)


@dataclass(frozen=True)
class Overrides:
    """What the signing adds (``extra``) or removes (``drop``), and what the
    owner is told about it ("" when the OS's crypttab was used as it is)."""

    extra: dict[str, bytes]
    drop: tuple[str, ...]
    note: str = ""


def _none(note: str) -> Overrides:
    # an overrides file signed for another initrd would lay its lines over this one
    return Overrides({}, (CRYPTTAB_OVERRIDES_FILE,), note)


def overrides_for(
    view: BootView,
    line: str,
    devices: list[KeyDevice],
    progress: Callable[[str], None] = lambda _: None,
) -> Overrides:
    """The overrides for the entry ``line`` of the verified ``view``."""
    from runtime.boot_configs.heads_line import parse_heads_line
    from runtime.disk.os_initrd_crypttabs import crypttabs_in_initrd

    if not view.verified:
        return _none("/boot was not verified: the default crypttab lines are used.")
    try:
        entry = parse_heads_line(line).entry
    except ConfigSyntaxError:
        return _none("The default entry cannot be read: the default crypttab lines are used.")
    if entry.modules:
        return _none("")  # multiboot: the DUK is not given to such an entry
    if len(entry.initrds) > MAX_INITRDS:
        return _none(
            f"The default entry loads more than {MAX_INITRDS} initrds: their crypttab is "
            "not read, and the default crypttab lines are used."
        )
    shown = ", ".join(printable(p) for p in entry.initrds)
    progress(f"Reading the crypttab in {shown}...")
    try:
        # one stream, in the order the boot hands them over, as the kernel unpacks them
        data = _read_all(view, entry.initrds)
    except (BootPathError, OSError, ValueError, MemoryError) as err:
        return _none(f"{shown} could not be read ({printable(str(err))}). {DEFAULT_USED}")
    result = crypttabs_in_initrd(data)
    del data
    if result.problem:
        # the kernel stops at such a place too: what it would unpack is not known
        why = printable(result.problem.rstrip("."))
        return _none(f"In {shown}, {why}. {DEFAULT_USED}")
    if not result.files:
        return _none("")  # no crypttab in the OS initrd: Heads' default lines are its own
    lines: list[CrypttabOverride] = []
    try:
        for path, content in result.files.items():
            lines += override_lines(path, content, devices)
        overrides = format_crypttab_overrides(lines)
    except (CrypttabError, KeyListError) as err:
        why = printable(str(err).rstrip("."))
        return _none(f"The OS initrd's crypttab cannot be used: {why}. {DEFAULT_USED}")
    named = [o for o in lines if names_a_key_device(o.line, devices)]
    asking = [printable(o.line.split()[0]) for o in named if not _keyed(o.line)]
    note = NONE_NAMED if not named else _asking(asking) if asking else ""
    return Overrides({CRYPTTAB_OVERRIDES_FILE: overrides}, (), note)


def _keyed(line: str) -> bool:
    fields = line.split()
    return len(fields) > 2 and fields[2] == SECRET_KEY_PATH


def _asking(names: list[str]) -> str:
    return (
        "The OS's crypttab entries " + ", ".join(names) + " name a key disk but keep asking "
        "for the passphrase (a key file or keyscript of their own): the Disk Unlock Key is "
        "not used for them."
    )


def _read_all(view: BootView, paths: Sequence[str]) -> bytearray:
    """The initrds' bytes one after the other, each padded to 4 bytes as boot
    loaders place them, only if they are the ones the owner signed: sizes
    checked before anything is read, one buffer for all."""
    opened: list[tuple[str, int]] = []
    try:
        for path in paths:
            opened.append(view.open(path))
        sizes = [os.fstat(fd).st_size for _, fd in opened]
        places = [-(-size // 4) * 4 for size in sizes]  # each padded to 4 bytes
        total = sum(places)
        if total > MAX_INITRD_BYTES:
            raise ValueError(f"larger than {MAX_INITRD_BYTES >> 20} MiB together")
        data = bytearray(total)
        at = 0
        with memoryview(data) as room:
            for (rel, fd), size, place in zip(opened, sizes, places, strict=True):
                got = 0
                while got < size and (n := os.readv(fd, [room[at + got : at + size]])):
                    got += n
                if got != size or os.read(fd, 1):
                    raise ValueError("its size changed while it was read")
                digest = hashlib.sha256(room[at : at + size]).hexdigest()
                if digest != view.signed_digest(rel):
                    raise ValueError("it changed since /boot was checked")
                at += place
        return data
    finally:
        for _, fd in opened:
            os.close(fd)
