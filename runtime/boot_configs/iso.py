"""Boot entries of a live ISO image kept as a file on a host file system.

Distributions ship GRUB's loopback.cfg for exactly this case
(https://www.supergrubdisk.org/wiki/Loopback.cfg): GRUB sets iso_path to the
ISO's path, runs /boot/grub/loopback.cfg (Fedora-built images keep it in
boot/grub2), and its entries hand the path on to the initramfs (findiso=,
iso-scan/filename=, img_loop=). Without one, the ISO's own grub.cfg and then
its isolinux/syslinux configuration are read; the first configuration that
gives entries wins.

An ISO booted from a file only comes up if its initramfs is told where the
file is, so an entry that does not name the ISO gets the parameter its
initramfs family reads (dracut, casper, live-boot, archiso, NixOS); entries
of no known family (memtest, a rescue kernel) are left as they are.

GRUB runs as on an x86_64 BIOS machine (GRUB_PLATFORM): Heads kexecs the
kernel with no EFI runtime, so EFI-only items (fwsetup, memtest.efi) are not
offered and the pc branch of a menu is the one that applies.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable
from dataclasses import replace

from runtime.boot_configs.entry import (
    BootEntry,
    ConfigSyntaxError,
    EntryKind,
    Module,
    ParseWarning,
)
from runtime.boot_configs.fs import BootFS, normalize
from runtime.boot_configs.grub import parse_grub
from runtime.boot_configs.syslinux import parse_syslinux

LOOPBACK_CONFIGS = ("/boot/grub/loopback.cfg", "/boot/grub2/loopback.cfg")
GRUB_CONFIGS = (
    "/boot/grub/grub.cfg",
    "/boot/grub2/grub.cfg",
    "/EFI/BOOT/grub.cfg",
    "/EFI/boot/grub.cfg",
    "/grub/grub.cfg",
)
SYSLINUX_CONFIGS = (
    "/isolinux/isolinux.cfg",
    "/boot/isolinux/isolinux.cfg",
    "/isolinux.cfg",
    "/syslinux/syslinux.cfg",
    "/boot/syslinux/syslinux.cfg",
    "/syslinux.cfg",
)
#: What GRUB itself would set: the pc platform, as Heads boots without EFI
#: services; the CPU of the x86_64 boards live ISOs are made for.
GRUB_PLATFORM = {"grub_platform": "pc", "grub_cpu": "x86_64"}
#: The GRUB device name `search --file "${iso_path}"` answers with: the ISO's
#: host file system (GRUB would say hd0,msdos1; only `probe` reads it).
HOST_DEVICE = "isohost"

#: (a kernel parameter marking the initramfs, what makes it find the ISO file).
#: A marker ending in '=', ':' or '/' is a prefix; any other is a whole word.
ISO_PARAMETERS: tuple[tuple[str, str], ...] = (
    ("root=live:", "iso-scan/filename={iso}"),  # dracut dmsquash-live: Fedora, openSUSE
    ("inst.stage2=", "iso-scan/filename={iso}"),  # anaconda installers: Fedora, Qubes
    ("boot=casper", "iso-scan/filename={iso}"),  # casper: Ubuntu, Mint, Pop!_OS
    ("boot=live", "findiso={iso}"),  # live-boot: Debian, Tails, Kali
    ("archisobasedir=", "img_dev=UUID={uuid} img_loop={iso}"),  # archiso
    ("init=/nix/store/", "findiso={iso}"),  # NixOS stage 1
)
#: Words after which the kernel passes parameters on to init (Linux's "--")
#: or Debian's installer copies them into the installed system ("---").
_END_MARKER = re.compile(r"(?:^|\s)(---?)(?=\s|$)")

_Parse = Callable[[BootFS, str], tuple[list[BootEntry], list[ParseWarning]]]


def _marks(word: str, marker: str) -> bool:
    return word == marker or (marker[-1] in "=:/" and word.startswith(marker))


def _quote(param: str) -> str:
    # as GRUB's loaders do: a parameter holding a blank stays one parameter
    return f'"{param}"' if any(c in param for c in " \t") else param


def _with_iso_parameter(cmdline: str, iso_path: str, fs_uuid: str) -> str:
    """The command line with the ISO-locating parameter of its initramfs family
    added, before any "--"/"---"; unchanged if it names the ISO already or
    belongs to no family known here."""
    if iso_path in cmdline:
        return cmdline
    words = cmdline.split()
    for marker, template in ISO_PARAMETERS:
        if any(_marks(w, marker) for w in words):
            added = " ".join(
                _quote(p) for p in template.format(iso=iso_path, uuid=fs_uuid).split(" ")
            )
            end = _END_MARKER.search(cmdline)
            if end is None:
                return f"{cmdline} {added}" if cmdline else added
            return f"{cmdline[: end.start(1)]}{added} {cmdline[end.start(1) :]}"
    return cmdline


def _for_iso(
    entry: BootEntry, iso_path: str, fs_uuid: str, warnings: list[ParseWarning]
) -> BootEntry | None:
    """The entry as booted from the ISO file; None when a path leaves the ISO."""
    files = [entry.kernel, *entry.initrds, *(m.path for m in entry.modules)]
    resolved = [normalize(f) for f in files]
    paths = [p for p in resolved if p is not None]
    if len(paths) != len(files):
        message = f"{entry.name!r}: path leaves the ISO; skipped"
        warnings.append(ParseWarning(entry.source, entry.line, message))
        return None
    n = len(entry.initrds)
    modules = [Module(p, m.cmdline) for p, m in zip(paths[1 + n :], entry.modules, strict=True)]
    cmdline = entry.cmdline
    if entry.kind is EntryKind.MULTIBOOT and modules:
        # Xen's first module is the Linux kernel: its command line finds the ISO
        if iso_path not in cmdline:
            first = modules[0]
            modules[0] = Module(first.path, _with_iso_parameter(first.cmdline, iso_path, fs_uuid))
    else:
        cmdline = _with_iso_parameter(cmdline, iso_path, fs_uuid)
    return replace(
        entry,
        name=f"[{posixpath.basename(iso_path)}] {entry.name}",
        kernel=paths[0],
        initrds=tuple(paths[1 : 1 + n]),
        cmdline=cmdline,
        modules=tuple(modules),
    )


def _try(parse: _Parse, fs: BootFS, path: str, warnings: list[ParseWarning]) -> list[BootEntry]:
    try:
        entries, found = parse(fs, path)
    except ConfigSyntaxError as e:
        # one broken configuration must not hide the next one
        warnings.append(ParseWarning(path, 0, f"not read: {e}"))
        return []
    warnings.extend(found)
    return entries


def parse_iso(
    fs: BootFS, iso_path: str, fs_uuid: str
) -> tuple[list[BootEntry], list[ParseWarning]]:
    """Entries to boot the ISO whose contents `fs` holds. iso_path is the ISO
    file's path on its host file system, fs_uuid that file system's UUID."""
    iso_path = "/" + iso_path.lstrip("/")
    warnings: list[ParseWarning] = []

    def grub(fs_: BootFS, path: str) -> tuple[list[BootEntry], list[ParseWarning]]:
        return parse_grub(
            fs_,
            path,
            initial_vars={**GRUB_PLATFORM, "iso_path": iso_path},
            devices={iso_path: HOST_DEVICE},
            fs_uuids={HOST_DEVICE: fs_uuid},
        )

    candidates: list[tuple[_Parse, str]] = [
        *((grub, p) for p in (*LOOPBACK_CONFIGS, *GRUB_CONFIGS)),
        *((parse_syslinux, p) for p in SYSLINUX_CONFIGS),
    ]
    tried = False
    for parse, path in candidates:
        if fs.read_text(path) is None:
            continue
        tried = True
        entries = _try(parse, fs, path, warnings)
        if not entries:
            warnings.append(
                ParseWarning(path, 0, "no bootable entries; trying the next configuration")
            )
            continue
        kept = [e for e in (_for_iso(e, iso_path, fs_uuid, warnings) for e in entries) if e]
        if not kept:
            continue
        default = next((i for i, e in enumerate(kept) if e.is_default), 0)
        return [replace(e, rank=i, is_default=i == default) for i, e in enumerate(kept)], warnings
    if not tried:
        warnings.append(
            ParseWarning("/", 0, "no GRUB, loopback.cfg or isolinux configuration found")
        )
    return [], warnings
