"""The crypttab files the key cpio lays over the OS's initramfs, so that its
unlock scripts open the LUKS containers with the DUK at /secret.key (Heads'
kexec-insert-key, heads-facts.md §5.4):

- without overrides: `etc/crypttab` and `cryptroot/crypttab` (dracut and Debian's
  initramfs-tools read one each), one line per key device;
- with overrides (kexec_initrd_crypttab_overrides.txt): the OS initrd's own
  crypttab lines, read once when the default boot is saved, with the key file
  of every entry that had none set to /secret.key; each path gets its lines.

A crypttab line is `name device [keyfile [options]]`, fields separated by
spaces or tabs. Pure text work; the OS initrd's crypttab is hostile input too.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from runtime.disk.key_cpio import KEY_FILE_NAME
from runtime.disk.key_lists import (
    MAX_FILE_BYTES,
    MAX_OVERRIDE_LINES,
    CrypttabOverride,
    KeyDevice,
    is_crypttab_text,
    is_luks_uuid,
    is_override_path,
    shown,
)

#: where the key cpio puts the DUK, as the OS's initramfs sees it (a path, not a secret)
SECRET_KEY_PATH = "/" + KEY_FILE_NAME
DEFAULT_CRYPTTAB_PATHS = ("etc/crypttab", "cryptroot/crypttab")
DEFAULT_OPTIONS = "luks,discard"
#: Debian's crypttab(5): no key file, ask for a passphrase. Only this word and a
#: missing field mean it; '-' is an ordinary file name there.
NO_KEY_FILE = "none"

_FIELD = re.compile(r"[^ \t]+")
_BLANK_CHARS = " \t"


class CrypttabError(ValueError):
    """Crypttab text or entries that cannot be used (plain words)."""


def default_crypttab_line(luks_uuid: str) -> str:
    if not is_luks_uuid(luks_uuid):
        raise CrypttabError(f"{shown(luks_uuid)} is not a LUKS UUID")
    return f"luks-{luks_uuid} UUID={luks_uuid} {SECRET_KEY_PATH} {DEFAULT_OPTIONS}"


def default_crypttabs(luks_uuids: Sequence[str]) -> dict[str, bytes]:
    """{path in the initrd: content} for both default paths, the same lines in each."""
    if not luks_uuids:
        raise CrypttabError("there is no LUKS container to write a crypttab for")
    if len(set(luks_uuids)) != len(luks_uuids):
        raise CrypttabError("a LUKS UUID is listed twice: two crypttab lines would clash")
    text = "".join(default_crypttab_line(uuid) + "\n" for uuid in luks_uuids).encode()
    return dict.fromkeys(DEFAULT_CRYPTTAB_PATHS, text)


def with_secret_key(line: str) -> str:
    """One crypttab entry with a key file of `none` (or none given) set to
    /secret.key; blanks around the line are dropped, those inside kept. An entry
    with another key file, or without even a device, comes back unchanged."""
    entry = line.strip(_BLANK_CHARS)
    fields = list(_FIELD.finditer(entry))
    if len(fields) == 2:
        return f"{entry} {SECRET_KEY_PATH}"
    if len(fields) >= 3 and fields[2].group() == NO_KEY_FILE:
        key_file = fields[2]
        return entry[: key_file.start()] + SECRET_KEY_PATH + entry[key_file.end() :]
    return entry


def _entries(crypttab: bytes, source: str) -> list[str]:
    """The entry lines of a crypttab, comments and blank lines dropped. Only the
    entries must be UTF-8: a comment in another encoding is no reason to refuse."""
    if len(crypttab) > MAX_FILE_BYTES:
        raise CrypttabError(f"{source} is larger than {MAX_FILE_BYTES} bytes")
    if b"\0" in crypttab:
        raise CrypttabError(f"{source} holds a NUL byte: it is not a text file")
    entries: list[str] = []
    for number, raw in enumerate(crypttab.split(b"\n"), start=1):
        if b"\r" in raw:
            raise CrypttabError(f"{source} line {number} holds a carriage return (DOS line end?)")
        stripped = raw.strip(_BLANK_CHARS.encode())
        if not stripped or stripped.startswith(b"#"):
            continue
        try:
            entry = stripped.decode("utf-8")
        except UnicodeDecodeError:
            raise CrypttabError(f"{source} line {number} is not UTF-8 text") from None
        if not is_crypttab_text(entry):
            raise CrypttabError(f"{source} line {number} holds a control character or is too long")
        entries.append(entry)
    if len(entries) > MAX_OVERRIDE_LINES:
        raise CrypttabError(f"{source} holds more than {MAX_OVERRIDE_LINES} entries")
    return entries


def names_a_key_device(line: str, devices: Sequence[KeyDevice]) -> bool:
    """Whether a crypttab entry's device field is one of ``devices``, by its
    LUKS UUID (`UUID=`, `/dev/disk/by-uuid/`): a path such as /dev/sda3 may
    name another disk under the OS's kernel than under the firmware's."""
    fields = _FIELD.findall(line)
    if len(fields) < 2:
        return False
    source = fields[1]
    uuid = source.removeprefix("UUID=").removeprefix("/dev/disk/by-uuid/")
    return uuid != source and any(uuid.lower() == d.luks_uuid.lower() for d in devices)


def override_lines(
    initrd_path: str, crypttab: bytes, devices: Sequence[KeyDevice] | None = None
) -> list[CrypttabOverride]:
    """At setup: the override lines for one crypttab found in the OS initrd.
    `initrd_path` is its path inside the initrd, with or without a leading '/'.
    With ``devices``, only their entries get the key file: an entry of a
    container the DUK does not open keeps asking, instead of failing on a key
    that cannot open it (Heads sets it on every entry, as devices=None does)."""
    path = initrd_path.removeprefix("/")
    if not is_override_path(path):
        raise CrypttabError(
            f"{shown(initrd_path)} is not a crypttab path inside an initrd "
            "(no '..', ending in 'crypttab')"
        )
    source = f"the OS initrd's /{path}"
    return [
        CrypttabOverride(
            path,
            with_secret_key(entry)
            if devices is None or (names_a_key_device(entry, devices) and not _key_options(entry))
            else entry.strip(_BLANK_CHARS),
        )
        for entry in _entries(crypttab, source)
    ]


#: options that would change what a key file given there means: a keyscript
#: takes the field as its argument, the others read part of the file
_KEY_FILE_OPTIONS = ("keyscript=", "keyfile-size=", "keyfile-offset=")


def _key_options(line: str) -> bool:
    fields = _FIELD.findall(line)
    options = fields[3].split(",") if len(fields) > 3 else []
    return any(o.startswith(_KEY_FILE_OPTIONS) for o in options)


def crypttabs_from_overrides(overrides: Sequence[CrypttabOverride]) -> dict[str, bytes]:
    """At kexec: {path in the initrd: content}, each override line appended to
    its path in order; paths in the order they first appear."""
    if len(overrides) > MAX_OVERRIDE_LINES:
        raise CrypttabError(f"more than {MAX_OVERRIDE_LINES} crypttab override lines")
    files: dict[str, list[str]] = {}
    for entry in overrides:
        if not is_override_path(entry.path):
            raise CrypttabError(f"{shown(entry.path)} is not a crypttab path inside an initrd")
        if not is_crypttab_text(entry.line):
            raise CrypttabError(f"the override line for /{entry.path} holds a control character")
        files.setdefault(entry.path, []).append(entry.line + "\n")
    return {path: "".join(lines).encode() for path, lines in files.items()}
