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
from collections.abc import Callable
from dataclasses import dataclass

from runtime.boot_configs.entry import ConfigSyntaxError
from runtime.disk.crypttab import CrypttabError, names_a_key_device, override_lines
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
    initrds = list(dict.fromkeys(entry.initrds))  # one read each; the last place decides
    if len(initrds) > MAX_INITRDS:
        return _none(
            f"The default entry loads more than {MAX_INITRDS} initrds: their crypttab is "
            "not read, and the default crypttab lines are used."
        )
    found: dict[str, bytes] = {}
    for path in initrds:
        shown = printable(path)
        progress(f"Reading the crypttab in {shown}...")
        try:
            data = _read_signed(view, path)
        except (BootPathError, OSError, ValueError, MemoryError) as err:
            return _none(f"{shown} could not be read ({printable(str(err))}). {DEFAULT_USED}")
        result = crypttabs_in_initrd(data)
        del data
        if result.problem:
            # the kernel stops at such a place too: what it would unpack is not known
            why = printable(result.problem.rstrip("."))
            return _none(f"In {shown}, {why}. {DEFAULT_USED}")
        for name in result.files:
            found.pop(name, None)  # a later initrd's file replaces an earlier's, as unpacked
        found.update(result.files)
    if not found:
        return _none("")  # no crypttab in the OS initrd: Heads' default lines are its own
    lines: list[CrypttabOverride] = []
    try:
        for path, content in found.items():
            lines += override_lines(path, content, devices)
        keyed = any(names_a_key_device(o.line, devices) for o in lines)
        note = "" if keyed else NONE_NAMED
        return Overrides({CRYPTTAB_OVERRIDES_FILE: format_crypttab_overrides(lines)}, (), note)
    except (CrypttabError, KeyListError) as err:
        why = printable(str(err).rstrip("."))
        return _none(f"The OS initrd's crypttab cannot be used: {why}. {DEFAULT_USED}")


def _read_signed(view: BootView, path: str) -> bytearray:
    """The initrd's bytes, only if they are the ones the owner signed: its
    size checked before anything is read, one buffer (the largest initrd is
    held once, not twice)."""
    rel, fd = view.open(path)
    try:
        size = os.fstat(fd).st_size
        if size > MAX_INITRD_BYTES:
            raise ValueError(f"larger than {MAX_INITRD_BYTES >> 20} MiB")
        data = bytearray(size)
        got = 0
        with memoryview(data) as room:
            while got < size and (n := os.readv(fd, [room[got:]])):
                got += n
        if got != size or os.read(fd, 1):
            raise ValueError("its size changed while it was read")
    finally:
        os.close(fd)
    if hashlib.sha256(data).hexdigest() != view.signed_digest(rel):
        raise ValueError("it changed since /boot was checked")
    return data
