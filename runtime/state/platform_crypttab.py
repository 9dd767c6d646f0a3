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
from runtime.integrity.boot_view import BootView

#: an initrd is read whole to find its crypttab; distributions' are 30-100 MiB
MAX_INITRD_BYTES = 256 << 20
_CHUNK = 1 << 20


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


def overrides_for(view: BootView, line: str, devices: list[KeyDevice]) -> Overrides:
    """The overrides for the entry ``line`` of the verified ``view``."""
    from runtime.boot_configs.heads_line import parse_heads_line
    from runtime.disk.os_initrd_crypttabs import crypttabs_in_initrd

    try:
        entry = parse_heads_line(line).entry
    except ConfigSyntaxError:
        return _none("The default entry cannot be read: the default crypttab lines are used.")
    if entry.modules:
        return _none("")  # multiboot: the DUK is not given to such an entry
    found: dict[str, bytes] = {}
    notes: list[str] = []
    for path in entry.initrds:
        try:
            data = _read_signed(view, path)
        except (BootPathError, OSError, ValueError) as err:
            notes.append(f"{path} could not be read ({err}).")
            continue
        result = crypttabs_in_initrd(data)
        del data
        if result.problem:
            notes.append(f"In {path}, {result.problem.rstrip('.')}.")
        found.update(result.files)  # a later initrd's file replaces an earlier's, as unpacked
    lines: list[CrypttabOverride] = []
    try:
        for path, content in found.items():
            lines += override_lines(path, content, devices)
        if any(names_a_key_device(o.line, devices) for o in lines):
            overrides = format_crypttab_overrides(lines)
            return Overrides({CRYPTTAB_OVERRIDES_FILE: overrides}, (), " ".join(notes))
    except (CrypttabError, KeyListError) as err:
        notes.append(f"Its crypttab cannot be used: {err}.")
    if found and not notes:
        notes.append("The OS initrd's crypttab names none of the key's disks.")
    if notes:
        notes.append("The default crypttab lines (luks-<UUID>) are used.")
    return _none(" ".join(notes))


def _read_signed(view: BootView, path: str) -> bytes:
    """The initrd's bytes, only if they are the ones the owner signed."""
    rel, fd = view.open(path)
    try:
        digest = hashlib.sha256()
        parts: list[bytes] = []
        size = 0
        while chunk := os.read(fd, _CHUNK):
            size += len(chunk)
            if size > MAX_INITRD_BYTES:
                raise ValueError(f"larger than {MAX_INITRD_BYTES >> 20} MiB")
            digest.update(chunk)
            parts.append(chunk)
    finally:
        os.close(fd)
    if view.signed is not None and digest.hexdigest() != view.signed_digest(rel):
        raise ValueError("it changed since /boot was checked")
    return b"".join(parts)
