"""The Disk Unlock Key's files in /boot, byte for byte as Heads writes and reads
them (../shared/reference/heads-facts.md §3, §2.1 PCR 6):

  kexec_key_devices.txt   `<blockdev> <LUKS UUID>` per line: the containers the DUK opens
  kexec_key_lvm.txt       one line, the volume group activated before they are looked for
  kexec_lukshdr_hash.txt  a copy of the header measurement text (Heads' /tmp/luksDump.txt):
                          `sha256sum /tmp/lukshdr-*`, one header backup per device; PCR 6
                          is extended with its sha256, and boot compares it byte for byte
  kexec_initrd_crypttab_overrides.txt
                          `/<path in the OS initrd>:<crypttab line>`: the OS's own
                          crypttab lines with the DUK as their key file

Everything here is read from /boot, so hostile: each file is bounded, must be
UTF-8 without NUL or CR, and every field has a strict character set. A bad
file raises KeyListError naming the file and the line; nothing else escapes.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

KEY_DEVICES_FILE = "kexec_key_devices.txt"
KEY_LVM_FILE = "kexec_key_lvm.txt"
LUKS_HEADER_HASH_FILE = "kexec_lukshdr_hash.txt"
CRYPTTAB_OVERRIDES_FILE = "kexec_initrd_crypttab_overrides.txt"

#: where Heads writes each header backup; the name is part of the measured text, so
#: it must stay this for a PCR 6 sealed under Heads to match (nothing is written there)
HEADER_BACKUP_DIR = "/tmp"  # noqa: S108
HEADER_BACKUP_PREFIX = "lukshdr-"

#: no list the DUK needs comes near these; more is not a /boot Heads wrote
MAX_FILE_BYTES = 64 * 1024
MAX_KEY_DEVICES = 64
MAX_OVERRIDE_LINES = 1024
MAX_LINE_CHARS = 4096

_DEVICE_COMPONENT = re.compile(r"[A-Za-z0-9._+-]+")
_MAX_DEVICE_PATH = 255
#: LUKS2 stores a canonical 36-character lowercase UUID; LUKS1's header has a
#: 40-byte field that old tools filled with other case or shape. Both are accepted
#: as they are stored (hex digits and dashes, 1-40 of them), never case-folded:
#: the crypttab line and udev's /dev/disk/by-uuid name use the stored text.
_LUKS_UUID = re.compile(r"[0-9a-fA-F-]{1,40}")
#: LVM's own rule for a volume group name (lvm(8) "VALID NAMES")
_VOLUME_GROUP = re.compile(r"[A-Za-z0-9+_.][A-Za-z0-9+_.-]{0,126}")
_OVERRIDE_PATH_COMPONENT = re.compile(r"[A-Za-z0-9._+-]+")
_OVERRIDE_PATH_SUFFIX = "crypttab"
#: the shell's `read` splits on these alone (not on other Unicode whitespace)
_BLANK_CHARS = " \t"
_BLANKS = re.compile(r"[ \t]+")
_HEX_DIGEST = re.compile(r"[0-9a-f]{64}")
_DIGEST_SIZE = 32


class KeyListError(ValueError):
    """A DUK file in /boot that is not in the format Heads writes (plain words)."""


def shown(text: str, limit: int = 60) -> str:
    """Hostile text as a message may quote it: escaped, and cut short."""
    quoted = repr(text[:limit])
    return quoted if len(text) <= limit else quoted + "..."


def is_device_path(path: str) -> bool:
    """/dev/ then [A-Za-z0-9._+-] components: no '..', no '//', no trailing '/'.
    '+' is in because LVM allows it in names, and /dev/<vg>/<lv> are key devices."""
    if not path.startswith("/dev/") or len(path) > _MAX_DEVICE_PATH or ".." in path:
        return False
    components = path[len("/dev/") :].split("/")
    return all(c != "." and _DEVICE_COMPONENT.fullmatch(c) for c in components)


def is_luks_uuid(text: str) -> bool:
    return _LUKS_UUID.fullmatch(text) is not None


def is_volume_group(name: str) -> bool:
    return _VOLUME_GROUP.fullmatch(name) is not None and name not in (".", "..")


def is_override_path(path: str) -> bool:
    """A crypttab's path inside the OS initrd, relative ('etc/crypttab'): no '..',
    no empty or '.' component, and the name ends in 'crypttab'."""
    if ".." in path or not path.endswith(_OVERRIDE_PATH_SUFFIX):
        return False
    return all(c != "." and _OVERRIDE_PATH_COMPONENT.fullmatch(c) for c in path.split("/"))


def is_crypttab_text(line: str) -> bool:
    """One crypttab line as it may be copied into the OS initrd: printable, tabs
    allowed (crypttab separates fields with them), no line break or other control."""
    return len(line) <= MAX_LINE_CHARS and line.replace("\t", " ").isprintable()


def _text_lines(data: bytes, source: str, max_lines: int) -> list[str]:
    """The file's lines (a missing last newline is accepted, as the shell's `read`
    and `cut` do), after the checks every DUK list shares."""
    if len(data) > MAX_FILE_BYTES:
        raise KeyListError(f"{source} is larger than {MAX_FILE_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        bad_line = data[: err.start].count(b"\n") + 1
        raise KeyListError(f"{source} line {bad_line} is not UTF-8 text") from None
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    if len(lines) > max_lines:
        raise KeyListError(f"{source} holds more than {max_lines} lines")
    for number, line in enumerate(lines, start=1):
        if "\0" in line or "\r" in line:
            raise KeyListError(f"{source} line {number} holds a NUL or carriage return")
    return lines


# kexec_key_devices.txt


@dataclass(frozen=True)
class KeyDevice:
    device: str  # /dev/vda2, /dev/mapper/..., /dev/<vg>/<lv>
    luks_uuid: str  # as the LUKS header stores it


def _check_key_device(entry: KeyDevice, where: str) -> None:
    if not is_device_path(entry.device):
        raise KeyListError(f"{where}: {shown(entry.device)} is not a block device under /dev/")
    if not is_luks_uuid(entry.luks_uuid):
        raise KeyListError(f"{where}: {shown(entry.luks_uuid)} is not a LUKS UUID")


def _check_unique(devices: Sequence[KeyDevice], source: str) -> None:
    seen_devices: set[str] = set()
    seen_uuids: set[str] = set()
    for number, entry in enumerate(devices, start=1):
        if entry.device in seen_devices:
            raise KeyListError(f"{source} line {number} names {entry.device} a second time")
        # two containers with one UUID would give the OS two crypttab lines of one name
        if entry.luks_uuid in seen_uuids:
            raise KeyListError(
                f"{source} line {number}: the LUKS UUID {entry.luks_uuid} is listed twice"
            )
        seen_devices.add(entry.device)
        seen_uuids.add(entry.luks_uuid)


def parse_key_devices(data: bytes, source: str = KEY_DEVICES_FILE) -> list[KeyDevice]:
    """The devices in file order. Fields are split on blanks as the shell's `read`
    does; blank lines are skipped; an empty list is refused (nothing to unlock)."""
    devices: list[KeyDevice] = []
    for number, line in enumerate(_text_lines(data, source, MAX_KEY_DEVICES), start=1):
        stripped = line.strip(_BLANK_CHARS)
        if not stripped:
            continue
        fields = _BLANKS.split(stripped)
        if len(fields) != 2:
            raise KeyListError(f"{source} line {number} is not '<device> <LUKS UUID>'")
        entry = KeyDevice(fields[0], fields[1])
        _check_key_device(entry, f"{source} line {number}")
        devices.append(entry)
    if not devices:
        raise KeyListError(f"{source} lists no device")
    _check_unique(devices, source)
    return devices


def format_key_devices(devices: Sequence[KeyDevice]) -> bytes:
    if not devices:
        raise KeyListError(f"{KEY_DEVICES_FILE} needs at least one device")
    if len(devices) > MAX_KEY_DEVICES:
        raise KeyListError(f"{KEY_DEVICES_FILE} holds at most {MAX_KEY_DEVICES} devices")
    for number, entry in enumerate(devices, start=1):
        _check_key_device(entry, f"{KEY_DEVICES_FILE} line {number}")
    _check_unique(devices, KEY_DEVICES_FILE)
    return "".join(f"{d.device} {d.luks_uuid}\n" for d in devices).encode()


# kexec_key_lvm.txt


def parse_key_lvm(data: bytes, source: str = KEY_LVM_FILE) -> str:
    """The volume group's name: one line, surrounding blanks ignored (Heads reads
    it with `cat`); blank lines around it are allowed."""
    lines = [line for line in _text_lines(data, source, 4) if line.strip(_BLANK_CHARS)]
    if not lines:
        raise KeyListError(f"{source} names no volume group")
    if len(lines) > 1:
        raise KeyListError(f"{source} holds more than one line: it names one volume group")
    name = lines[0].strip(_BLANK_CHARS)
    if not is_volume_group(name):
        raise KeyListError(f"{source}: {shown(name)} is not an LVM volume group name")
    return name


def format_key_lvm(volume_group: str) -> bytes:
    if not is_volume_group(volume_group):
        raise KeyListError(f"{shown(volume_group)} is not an LVM volume group name")
    return f"{volume_group}\n".encode()


# kexec_lukshdr_hash.txt (Heads' /tmp/luksDump.txt)


@dataclass(frozen=True)
class HeaderHash:
    backup_path: str  # /tmp/lukshdr-_dev_vda2
    digest: bytes  # sha256 of that header backup


def header_backup_path(device: str, backup_dir: str = HEADER_BACKUP_DIR) -> str:
    """Where Heads writes a device's header backup: every '/' becomes '_'. The
    mapping is not one to one (/dev/a_b and /dev/a/b meet), so it is not undone."""
    if not is_device_path(device):
        raise KeyListError(f"{shown(device)} is not a block device path under /dev/")
    return f"{backup_dir}/{HEADER_BACKUP_PREFIX}{device.replace('/', '_')}"


def format_header_hashes(hashes: Sequence[HeaderHash]) -> bytes:
    """`sha256sum <backups>` output in the glob's order: byte order, as the
    firmware's shell sorts without a locale."""
    ordered = sorted(hashes, key=lambda h: h.backup_path.encode())
    names = [h.backup_path for h in ordered]
    if len(set(names)) != len(names):
        raise KeyListError("two devices share one header backup name")
    lines = []
    for entry in ordered:
        # sha256sum escapes a name with a backslash or line break: never one of ours
        name = entry.backup_path
        if not name or not name.isprintable() or "\\" in name:
            raise KeyListError(f"{shown(name)} cannot be named in the measurement")
        if len(entry.digest) != _DIGEST_SIZE:
            raise KeyListError(f"the digest for {name} is not a sha256")
        lines.append(f"{entry.digest.hex()}  {name}\n")
    return "".join(lines).encode()


def format_header_measurement(
    digests: Mapping[str, bytes], backup_dir: str = HEADER_BACKUP_DIR
) -> bytes:
    """The measurement text from {device path: sha256 of its header backup}."""
    if not digests:
        raise KeyListError("there is no LUKS header to measure")
    return format_header_hashes(
        [HeaderHash(header_backup_path(dev, backup_dir), d) for dev, d in digests.items()]
    )


def _backup_name_pattern(backup_dir: str) -> re.Pattern[str]:
    # what header_backup_path makes: the device path with '/' as '_', no '..'
    prefix = re.escape(f"{backup_dir}/{HEADER_BACKUP_PREFIX}")
    return re.compile(prefix + r"_dev_[A-Za-z0-9._+-]{1,250}")


def parse_header_measurement(
    data: bytes, source: str = LUKS_HEADER_HASH_FILE, backup_dir: str = HEADER_BACKUP_DIR
) -> list[HeaderHash]:
    """The lines of a measurement text, exactly as sha256sum writes them (every
    line ended, lowercase hex, two spaces, the glob's order): boot compares the
    bytes, so any other shape could never match."""
    if data and not data.endswith(b"\n"):
        raise KeyListError(f"{source} does not end with a newline: it is cut short")
    name_pattern = _backup_name_pattern(backup_dir)
    hashes: list[HeaderHash] = []
    for number, line in enumerate(_text_lines(data, source, MAX_KEY_DEVICES), start=1):
        digest, separator, name = line[:64], line[64:66], line[66:]
        if (
            not _HEX_DIGEST.fullmatch(digest)
            or separator != "  "
            or not name_pattern.fullmatch(name)
            or ".." in name
        ):
            raise KeyListError(
                f"{source} line {number} is not '<sha256>  "
                f"{backup_dir}/{HEADER_BACKUP_PREFIX}<device>'"
            )
        if hashes and name.encode() <= hashes[-1].backup_path.encode():
            raise KeyListError(f"{source} line {number} is out of order or repeated")
        hashes.append(HeaderHash(name, bytes.fromhex(digest)))
    if not hashes:
        raise KeyListError(f"{source} lists no LUKS header")
    return hashes


def measurement_digest(text: bytes) -> bytes:
    """What PCR 6 is extended with: `tpmr extend -if <file>` extends SHA256(file)."""
    return hashlib.sha256(text).digest()


# kexec_initrd_crypttab_overrides.txt


@dataclass(frozen=True)
class CrypttabOverride:
    path: str  # inside the OS initrd, relative: "etc/crypttab"
    line: str  # one crypttab line, written to that file as it is


def _check_override(entry: CrypttabOverride, where: str) -> None:
    if not is_override_path(entry.path):
        raise KeyListError(
            f"{where}: {shown(entry.path)} is not a crypttab path inside an initrd "
            "(relative, no '..', ending in 'crypttab')"
        )
    if not is_crypttab_text(entry.line):
        raise KeyListError(f"{where}: the crypttab line holds a control character")


def parse_crypttab_overrides(
    data: bytes, source: str = CRYPTTAB_OVERRIDES_FILE
) -> list[CrypttabOverride]:
    """The overrides in file order. Heads writes the path with a leading '/'
    (`/etc/crypttab:...`); it is dropped here, so the path is relative. The
    path ends at the first ':' (a crypttab line may hold more of them)."""
    overrides: list[CrypttabOverride] = []
    for number, line in enumerate(_text_lines(data, source, MAX_OVERRIDE_LINES), start=1):
        path, colon, crypttab_line = line.partition(":")
        if not colon:
            raise KeyListError(f"{source} line {number} is not '<path>:<crypttab line>'")
        entry = CrypttabOverride(path.removeprefix("/"), crypttab_line)
        _check_override(entry, f"{source} line {number}")
        overrides.append(entry)
    if not overrides:
        raise KeyListError(f"{source} holds no crypttab line")
    return overrides


def format_crypttab_overrides(overrides: Sequence[CrypttabOverride]) -> bytes:
    """Heads' form, the path with its leading '/', so Heads reads our file too."""
    if not overrides:
        raise KeyListError(f"{CRYPTTAB_OVERRIDES_FILE} needs at least one line")
    if len(overrides) > MAX_OVERRIDE_LINES:
        raise KeyListError(f"{CRYPTTAB_OVERRIDES_FILE} holds at most {MAX_OVERRIDE_LINES} lines")
    for number, entry in enumerate(overrides, start=1):
        _check_override(entry, f"{CRYPTTAB_OVERRIDES_FILE} line {number}")
    return "".join(f"/{o.path}:{o.line}\n" for o in overrides).encode()
