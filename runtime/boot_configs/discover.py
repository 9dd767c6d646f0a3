"""What a mounted /boot (or an unpacked ISO) offers to boot: every boot loader
configuration found there, parsed faithfully, then one menu a user can choose
from.

The parse keeps everything the configurations say, including entries whose
kernel is missing (marked, with a warning). The menu offers only entries whose
files are all present, and shows an entry once: configurations often repeat
one boot under several titles (GRUB's top entry and its "Advanced options"
twin, a grub.cfg and an isolinux.cfg on the same ISO, an EFI copy of grub.cfg),
and a user expects one line per different boot, not per title.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, replace

from runtime.boot_configs.bls import ReadOnlyFs, parse_bls
from runtime.boot_configs.entry import BootEntry, ParseWarning
from runtime.boot_configs.grub import parse_grub
from runtime.boot_configs.iso import parse_iso
from runtime.boot_configs.syslinux import parse_syslinux

#: GRUB's own configuration, for a /boot partition and for a root file system
GRUB_CONFIGS = ("/grub/grub.cfg", "/grub2/grub.cfg", "/boot/grub/grub.cfg", "/boot/grub2/grub.cfg")
#: EFI copies usually hand over to the one above; read only when it is absent
EFI_DIRS = ("/EFI", "/efi", "/boot/efi/EFI")
SYSLINUX_CONFIGS = (
    "/extlinux/extlinux.conf",
    "/boot/extlinux/extlinux.conf",
    "/extlinux.conf",
    "/syslinux/syslinux.cfg",
    "/boot/syslinux/syslinux.cfg",
    "/syslinux.cfg",
    "/isolinux/isolinux.cfg",
    "/boot/isolinux/isolinux.cfg",
    "/isolinux.cfg",
)
BLS_DIRS = ("/loader/entries", "/boot/loader/entries")


@dataclass(frozen=True)
class Discovery:
    #: every entry parsed, in configuration order, missing files included
    entries: tuple[BootEntry, ...]
    #: what the boot menu offers: files present, one entry per distinct boot
    menu: tuple[BootEntry, ...]
    warnings: tuple[ParseWarning, ...]
    #: the configuration files that gave entries, in the order read
    configs: tuple[str, ...]

    @property
    def default(self) -> BootEntry | None:
        return next((e for e in self.menu if e.is_default), self.menu[0] if self.menu else None)


def boot_identity(e: BootEntry) -> tuple[object, ...]:
    """Two entries with this equal boot the same thing the same way."""
    return (e.kind, e.kernel, e.initrds, " ".join(e.cmdline.split()), e.modules)


def collapse_duplicates(entries: list[BootEntry]) -> list[BootEntry]:
    """First entry of each boot kept, in order, the others' titles recorded on
    it; a default among the repeats makes the kept entry the default."""
    kept: dict[tuple[object, ...], int] = {}
    out: list[BootEntry] = []
    for e in entries:
        key = boot_identity(e)
        if key not in kept:
            kept[key] = len(out)
            out.append(e)
            continue
        i = kept[key]
        first = out[i]
        names = first.also_listed_as
        if e.name != first.name and e.name not in names:
            names = (*names, e.name)
        out[i] = replace(first, also_listed_as=names, is_default=first.is_default or e.is_default)
    return out


def _one_default(entries: list[BootEntry]) -> list[BootEntry]:
    """The first configuration that names a default decides it."""
    seen = False
    out = []
    for e in entries:
        out.append(replace(e, is_default=e.is_default and not seen))
        seen = seen or e.is_default
    return out


def _efi_grub_configs(fs: ReadOnlyFs) -> list[str]:
    found = []
    for base in EFI_DIRS:
        for vendor in fs.listdir(base) or []:
            path = posixpath.join(base, vendor, "grub.cfg")
            if fs.read_text(path) is not None:
                found.append(path)
    return found


def discover(fs: ReadOnlyFs) -> Discovery:
    """Entries from every configuration under fs's root, and the menu."""
    entries: list[BootEntry] = []
    warnings: list[ParseWarning] = []
    configs: list[str] = []

    def take(path: str, found: list[BootEntry], found_warnings: list[ParseWarning]) -> None:
        warnings.extend(found_warnings)
        if found:
            entries.extend(found)
            configs.append(path)

    grub = [p for p in GRUB_CONFIGS if fs.read_text(p) is not None]
    for path in grub or _efi_grub_configs(fs):
        take(path, *parse_grub(fs, path))
    if not any(e.source.endswith(".conf") for e in entries):
        # systemd-boot, or a /boot whose grub.cfg does not call blscfg
        for directory in BLS_DIRS:
            found, found_warnings = parse_bls(fs, directory)
            if found:
                take(directory, found, found_warnings)
                break
    for path in SYSLINUX_CONFIGS:
        if fs.read_text(path) is not None:
            take(path, *parse_syslinux(fs, path))
    if not configs:
        warnings.append(ParseWarning("/", 0, "no boot loader configuration with entries found"))
    return _finish(entries, warnings, configs)


def discover_iso(fs: ReadOnlyFs, iso_path: str, fs_uuid: str) -> Discovery:
    """The entries of an ISO file's contents (iso.py), and the menu: iso_path
    is where the file sits on its host file system, fs_uuid that file system's."""
    entries, warnings = parse_iso(fs, iso_path, fs_uuid)
    configs = list(dict.fromkeys(e.source for e in entries))
    return _finish(entries, warnings, configs)


def _finish(
    entries: list[BootEntry], warnings: list[ParseWarning], configs: list[str]
) -> Discovery:
    entries = _one_default(entries)
    entries = [replace(e, rank=i) for i, e in enumerate(entries)]
    menu = collapse_duplicates([e for e in entries if e.files_present])
    return Discovery(tuple(entries), tuple(menu), tuple(warnings), tuple(configs))
