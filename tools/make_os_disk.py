"""Make the test OS disk for the qemu-swtpm board: what the runtime finds on /boot.

    .venv/bin/python -m tools.make_os_disk --out build/os-disk.img

A raw GPT disk with two ext4 partitions:

  1. /boot (label "boot", 96 MiB): the board's Debian kernel `vmlinuz-<release>`,
     its `config-<release>`, a tiny `initrd.img-<release>`, and `grub/grub.cfg`
     as Debian's update-grub writes it (a default entry and an "Advanced options"
     submenu with a recovery entry).
  2. root (label "root", 16 MiB): /etc/os-release naming the test OS and a
     placeholder /sbin/init.

The tiny initrd is the "OS": its /init (busybox sh) prints to the console

    OS-TARGET: booted
    OS-TARGET: cmdline <the kernel command line>
    OS-TARGET: pcr <n> <hex>        n = 0..15, SHA-256 bank, or "unavailable"
    OS-TARGET: done

and powers off, so a test can see that the runtime kexec'd the right kernel
with the right command line and what the PCRs held at that moment.

Everything comes from the locked Debian packages (the kernel package and
busybox-static). The host needs `sfdisk` (Debian package fdisk) and `mke2fs`
and `debugfs` (e2fsprogs); no root, no loop devices: each file system is made
in its own image file with `mke2fs -d` and copied into the disk at its offset.
The disk is reproducible: fixed GUIDs and UUIDs, a fixed hash seed, and every
timestamp and owner in the file systems pinned.

The LUKS disk (`--luks`, make_os_disk(luks=True)) adds two LUKS containers and
a target initrd that opens them: tools/os_disk_luks.py, whose names are
re-exported here. The LVM disk (`--luks --lvm`) adds a third container in an
LVM logical volume, and lvm to that target: tools/os_disk_lvm.py. The disks
without these options are the same, byte for byte, as before they existed.
What all share (the layout, the locked kernel and busybox, the host
programs): tools/os_disk_common.py.
"""

from __future__ import annotations

import argparse
import gzip
import io
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tools.initrd.cache import FetchError, default_cache_dir
from tools.initrd.cpio import Entry, write_archive
from tools.initrd.lock import LockError
from tools.os_disk_common import BOARD_KERNEL_PACKAGE as BOARD_KERNEL_PACKAGE
from tools.os_disk_common import BOARD_KERNEL_RELEASE as BOARD_KERNEL_RELEASE
from tools.os_disk_common import BOOT_OFFSET as BOOT_OFFSET
from tools.os_disk_common import BOOT_SIZE as BOOT_SIZE
from tools.os_disk_common import DISK_SIZE as DISK_SIZE
from tools.os_disk_common import MIB as MIB
from tools.os_disk_common import ROOT_OFFSET as ROOT_OFFSET
from tools.os_disk_common import ROOT_SIZE as ROOT_SIZE
from tools.os_disk_common import SECTOR as SECTOR
from tools.os_disk_common import SOURCE_DATE_EPOCH as SOURCE_DATE_EPOCH
from tools.os_disk_common import (
    TARGET_END,
    TARGET_REPORT,
    copy_into,
    host_tool,
    make_ext4,
    pinned_env,
    run_tool,
)
from tools.os_disk_common import OsDiskError as OsDiskError
from tools.os_disk_common import busybox_path as busybox_path
from tools.os_disk_common import kernel_files as kernel_files
from tools.os_disk_luks import DISK_RECOVERY_PASSPHRASE as DISK_RECOVERY_PASSPHRASE
from tools.os_disk_luks import LUKS_CONTAINERS as LUKS_CONTAINERS
from tools.os_disk_luks import LUKS_DATA as LUKS_DATA
from tools.os_disk_luks import LUKS_DISK_SIZE as LUKS_DISK_SIZE
from tools.os_disk_luks import LUKS_LVM_CONTAINERS as LUKS_LVM_CONTAINERS
from tools.os_disk_luks import LUKS_LVM_TARGET_INIT as LUKS_LVM_TARGET_INIT
from tools.os_disk_luks import LUKS_ROOT as LUKS_ROOT
from tools.os_disk_luks import LUKS_TARGET_INIT as LUKS_TARGET_INIT
from tools.os_disk_luks import LUKS_TARGET_MODULES as LUKS_TARGET_MODULES
from tools.os_disk_luks import MAX_EXTRA_KEY as MAX_EXTRA_KEY
from tools.os_disk_luks import LuksContainer as LuksContainer
from tools.os_disk_luks import luks_target_initrd as luks_target_initrd
from tools.os_disk_luks import make_luks_image
from tools.os_disk_luks import os_crypttab as os_crypttab
from tools.os_disk_lvm import LUKS_VAULT as LUKS_VAULT
from tools.os_disk_lvm import LVM_DISK_SIZE as LVM_DISK_SIZE
from tools.os_disk_lvm import lvm_partition_line, write_pv_template

REPO = Path(__file__).resolve().parents[1]

#: The default entry's command line after `root=... ro`, as Debian's update-grub
#: makes it from GRUB_CMDLINE_LINUX="console=ttyS0,115200" and
#: GRUB_CMDLINE_LINUX_DEFAULT="quiet".
GRUB_CMDLINE_LINUX = "console=ttyS0,115200"
GRUB_CMDLINE_LINUX_DEFAULT = "quiet"
ROOT_DEVICE = "LABEL=root"
DEFAULT_CMDLINE = f"root={ROOT_DEVICE} ro {GRUB_CMDLINE_LINUX} {GRUB_CMDLINE_LINUX_DEFAULT}"
RECOVERY_CMDLINE = f"root={ROOT_DEVICE} ro single {GRUB_CMDLINE_LINUX}"

# Fixed identifiers, so two builds are byte for byte the same.
DISK_GUID = "5A3E1D2C-0B0A-4F1E-9D8C-7B6A59483726"
BOOT_PART_UUID = "5A3E1D2C-0B0A-4F1E-9D8C-000000000001"
ROOT_PART_UUID = "5A3E1D2C-0B0A-4F1E-9D8C-000000000002"
BOOT_FS_UUID = "0b007b00-7b00-4b00-8b00-0000000000b0"
ROOT_FS_UUID = "0b007b00-7b00-4b00-8b00-0000000000a0"
GPT_TYPE_LINUX_FS = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
GPT_TYPE_ROOT_X86_64 = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"
#: The Discoverable Partitions Specification's "Linux LUKS" type.
GPT_TYPE_LINUX_LUKS = "CA7D7CCB-63ED-4C53-861C-1742536059CC"

#: The tiny target's /init: its report, then the end (tools/os_disk_common.py).
TARGET_INIT = TARGET_REPORT + TARGET_END

OS_RELEASE = """\
PRETTY_NAME="heads-runtime test OS"
NAME="heads-runtime test OS"
ID=heads-runtime-test-os
ID_LIKE=debian
VERSION_ID="1"
"""

ROOT_INIT_PLACEHOLDER = """\
#!/bin/sh
# Placeholder: the test OS runs entirely from its initrd (/boot/initrd.img-*),
# which powers the machine off before it would switch to this root.
echo "heads-runtime test OS: nothing to run on the root file system" >&2
exit 1
"""


@dataclass(frozen=True)
class OsDisk:
    """The disk made by make_os_disk, and what a boot from it should do."""

    image: Path
    boot_offset: int  # byte offset of partition 1 (/boot) in the image
    boot_size: int  # its size in bytes
    kernel_release: str
    cmdline: str  # the default grub entry's command line
    luks: tuple[LuksContainer, ...] = ()  # the LUKS disk's containers, in partition order


def target_initrd(busybox: Path) -> bytes:
    """The tiny target's initrd: a gzip'd newc cpio, the same bytes every time."""
    entries = [
        Entry.directory("bin"),
        Entry.file("bin/busybox", busybox.read_bytes(), executable=True),
        Entry.symlink("bin/sh", "busybox"),
        Entry.directory("dev"),
        Entry.char_device("dev/console", 5, 1),
        Entry.directory("proc"),
        Entry.directory("sys"),
        Entry.file("init", TARGET_INIT.encode(), executable=True),
    ]
    raw = io.BytesIO()
    write_archive(raw, entries, mtime=SOURCE_DATE_EPOCH)
    return gzip.compress(raw.getvalue(), compresslevel=9, mtime=0)


def grub_cfg(release: str) -> str:
    """/boot/grub/grub.cfg as Debian 12's update-grub writes it for this one kernel
    on a separate /boot (paths relative to /boot), trimmed of the theme and
    os-prober sections."""
    uuid = BOOT_FS_UUID
    classes = "--class debian --class gnu-linux --class gnu --class os"
    search = (
        f"search --no-floppy --fs-uuid --set=root --hint-bios=hd0,gpt1 "
        f"--hint-efi=hd0,gpt1 --hint-baremetal=ahci0,gpt1  {uuid}"
    )
    preamble = (
        "\tload_video\n"
        "\tinsmod gzio\n"
        "\tif [ x$grub_platform = xxen ]; then insmod xzio; insmod lzopio; fi\n"
        "\tinsmod part_gpt\n"
        "\tinsmod ext2\n"
        f"\t{search}\n"
    )
    nested = preamble.replace("\t", "\t\t")

    def entry(title: str, entry_id: str, cmdline: str, indent: str, loading: str) -> str:
        body = nested if indent else preamble
        return (
            f"{indent}menuentry '{title}' {classes} $menuentry_id_option '{entry_id}' {{\n"
            f"{body}"
            f"{indent}\techo\t'{loading}'\n"
            f"{indent}\tlinux\t/vmlinuz-{release} {cmdline}\n"
            f"{indent}\techo\t'Loading initial ramdisk ...'\n"
            f"{indent}\tinitrd\t/initrd.img-{release}\n"
            f"{indent}}}\n"
        )

    return (
        "#\n"
        "# DO NOT EDIT THIS FILE\n"
        "#\n"
        "# It is automatically generated by grub-mkconfig using templates\n"
        "# from /etc/grub.d and settings from /etc/default/grub\n"
        "#\n"
        "\n"
        "### BEGIN /etc/grub.d/00_header ###\n"
        "if [ -s $prefix/grubenv ]; then\n"
        "  set have_grubenv=true\n"
        "  load_env\n"
        "fi\n"
        'if [ "${next_entry}" ] ; then\n'
        '   set default="${next_entry}"\n'
        "   set next_entry=\n"
        "   save_env next_entry\n"
        "   set boot_once=true\n"
        "else\n"
        '   set default="0"\n'
        "fi\n"
        "\n"
        'if [ x"${feature_menuentry_id}" = xy ]; then\n'
        '  menuentry_id_option="--id"\n'
        "else\n"
        '  menuentry_id_option=""\n'
        "fi\n"
        "\n"
        "export menuentry_id_option\n"
        "\n"
        "function load_video {\n"
        "  if [ x$feature_all_video_module = xy ]; then\n"
        "    insmod all_video\n"
        "  else\n"
        "    insmod efi_gop\n"
        "    insmod efi_uga\n"
        "    insmod ieee1275_fb\n"
        "    insmod vbe\n"
        "    insmod vga\n"
        "    insmod video_bochs\n"
        "    insmod video_cirrus\n"
        "  fi\n"
        "}\n"
        "\n"
        "terminal_input console\n"
        "terminal_output console\n"
        'if [ "${recordfail}" = 1 ] ; then\n'
        "  set timeout=30\n"
        "else\n"
        "  if [ x$feature_timeout_style = xy ] ; then\n"
        "    set timeout_style=menu\n"
        "    set timeout=5\n"
        "  else\n"
        "    set timeout=5\n"
        "  fi\n"
        "fi\n"
        "### END /etc/grub.d/00_header ###\n"
        "\n"
        "### BEGIN /etc/grub.d/10_linux ###\n"
        "function gfxmode {\n"
        '\tset gfxpayload="${1}"\n'
        "}\n"
        "set linux_gfx_mode=\n"
        "export linux_gfx_mode\n"
        + entry(
            "Debian GNU/Linux",
            f"gnulinux-simple-{uuid}",
            DEFAULT_CMDLINE,
            "",
            f"Loading Linux {release} ...",
        )
        + f"submenu 'Advanced options for Debian GNU/Linux' $menuentry_id_option "
        f"'gnulinux-advanced-{uuid}' {{\n"
        + entry(
            f"Debian GNU/Linux, with Linux {release}",
            f"gnulinux-{release}-advanced-{uuid}",
            DEFAULT_CMDLINE,
            "\t",
            f"Loading Linux {release} ...",
        )
        + entry(
            f"Debian GNU/Linux, with Linux {release} (recovery mode)",
            f"gnulinux-{release}-recovery-{uuid}",
            RECOVERY_CMDLINE,
            "\t",
            f"Loading Linux {release} ...",
        )
        + "}\n"
        "\n"
        "### END /etc/grub.d/10_linux ###\n"
        "\n"
        "### BEGIN /etc/grub.d/40_custom ###\n"
        "# This file provides an easy way to add custom menu entries.  Simply type the\n"
        "# menu entries you want to add after this comment.  Be careful not to change\n"
        "# the 'exec tail' line above.\n"
        "### END /etc/grub.d/40_custom ###\n"
    )


def _write(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(mode)


def _partition_disk(disk: Path, luks: tuple[LuksContainer, ...] = ()) -> None:
    sfdisk = host_tool("sfdisk", "fdisk")
    script = (
        "label: gpt\n"
        f"label-id: {DISK_GUID}\n"
        "unit: sectors\n"
        f"sector-size: {SECTOR}\n"
        "\n"
        f"start={BOOT_OFFSET // SECTOR}, size={BOOT_SIZE // SECTOR}, "
        f'type={GPT_TYPE_LINUX_FS}, uuid={BOOT_PART_UUID}, name="boot"\n'
        f"start={ROOT_OFFSET // SECTOR}, size={ROOT_SIZE // SECTOR}, "
        f'type={GPT_TYPE_ROOT_X86_64}, uuid={ROOT_PART_UUID}, name="root"\n'
    ) + "".join(
        # a container in a logical volume: its physical volume's partition
        f"start={c.offset // SECTOR}, size={c.size // SECTOR}, "
        f'type={GPT_TYPE_LINUX_LUKS}, uuid={c.part_uuid}, name="{c.name}"\n'
        if c.volume is None
        else lvm_partition_line()
        for c in luks
    )
    run_tool(
        [sfdisk, "--quiet", "--no-reread", "--no-tell-kernel", "--wipe", "never", str(disk)],
        stdin=script,
        env=pinned_env(),
    )


def make_os_disk(
    out: Path,
    cache: Path | None = None,
    kernel_package: str = BOARD_KERNEL_PACKAGE,
    *,
    luks: bool = False,
    lvm: bool = False,
    extra_key: bytes | None = None,
) -> OsDisk:
    """Make the test OS disk at `out` (replaced atomically) and describe it.

    `luks`: the LUKS disk (LUKS_CONTAINERS after the two partitions, the LUKS
    target's initrd on /boot); not reproducible, as LUKS salts and keys are
    random. `lvm` (LUKS disk only): the LVM disk, LUKS_LVM_CONTAINERS (the
    last in an LVM logical volume) and the target with lvm. `extra_key` (LUKS
    disk only): also put these bytes in each container's DUK slot, as if the
    DUK had been set up."""
    if extra_key is not None and not luks:
        raise OsDiskError("an extra key needs the LUKS disk (luks=True)")
    if lvm and not luks:
        raise OsDiskError("the LVM disk is a LUKS disk: lvm=True needs luks=True")
    if extra_key is not None and not 0 < len(extra_key) <= MAX_EXTRA_KEY:
        raise OsDiskError(f"the extra key must be 1 to {MAX_EXTRA_KEY} bytes")
    # Check the host tools before downloading anything.
    needed = [("sfdisk", "fdisk"), ("mke2fs", "e2fsprogs"), ("debugfs", "e2fsprogs")]
    if luks:
        needed.append(("cryptsetup", "cryptsetup-bin"))
    for name, package in needed:
        host_tool(name, package)
    containers = LUKS_LVM_CONTAINERS if lvm else LUKS_CONTAINERS if luks else ()
    cache = cache or default_cache_dir()
    kernel = kernel_files(cache, kernel_package)
    initrd = (
        luks_target_initrd(cache, kernel_package, lvm=lvm)
        if luks
        else target_initrd(busybox_path(cache))
    )
    out = out.absolute()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".os-disk-", dir=out.parent) as tmp_name:
        tmp = Path(tmp_name)
        boot, root = tmp / "boot", tmp / "root"
        release = kernel.release
        _write(boot / f"vmlinuz-{release}", kernel.vmlinuz.read_bytes(), 0o644)
        _write(boot / f"config-{release}", kernel.config.read_bytes(), 0o644)
        _write(boot / f"initrd.img-{release}", initrd, 0o644)
        _write(boot / "grub" / "grub.cfg", grub_cfg(release).encode(), 0o444)
        _write(root / "etc" / "os-release", OS_RELEASE.encode(), 0o644)
        _write(root / "sbin" / "init", ROOT_INIT_PLACEHOLDER.encode(), 0o755)
        for directory in (boot, boot / "grub", root, root / "etc", root / "sbin"):
            directory.chmod(0o755)
        make_ext4(boot, tmp / "boot.ext4", BOOT_SIZE, "boot", BOOT_FS_UUID)
        make_ext4(root, tmp / "root.ext4", ROOT_SIZE, "root", ROOT_FS_UUID)
        for container in containers:
            make_luks_image(tmp / f"{container.name}.luks", container, extra_key)
        disk = tmp / "disk.img"
        with disk.open("wb") as f:
            f.truncate(LVM_DISK_SIZE if lvm else LUKS_DISK_SIZE if luks else DISK_SIZE)
        _partition_disk(disk, containers)
        if lvm:
            write_pv_template(disk)  # the volume group's metadata, before its first extent
        copy_into(disk, tmp / "boot.ext4", BOOT_OFFSET, BOOT_SIZE)
        copy_into(disk, tmp / "root.ext4", ROOT_OFFSET, ROOT_SIZE)
        for container in containers:
            copy_into(disk, tmp / f"{container.name}.luks", container.offset, container.size)
        disk.chmod(0o644)
        disk.replace(out)
    return OsDisk(
        image=out,
        boot_offset=BOOT_OFFSET,
        boot_size=BOOT_SIZE,
        kernel_release=kernel.release,
        cmdline=DEFAULT_CMDLINE,
        luks=containers,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.make_os_disk",
        description="Make the test OS disk of the qemu-swtpm board (raw GPT image).",
    )
    parser.add_argument("--out", type=Path, default=REPO / "build" / "os-disk.img")
    parser.add_argument(
        "--cache", type=Path, default=None, help=f"download cache (default {default_cache_dir()})"
    )
    parser.add_argument("--kernel-package", default=BOARD_KERNEL_PACKAGE)
    parser.add_argument(
        "--luks",
        action="store_true",
        help="add a LUKS2 and a LUKS1 container (passphrase: DISK_RECOVERY_PASSPHRASE) "
        "and the target that opens them; not reproducible",
    )
    parser.add_argument(
        "--lvm",
        action="store_true",
        help="with --luks: add a LUKS2 container in LVM logical volume osvg/cryptvault",
    )
    parser.add_argument(
        "--extra-key-file",
        type=Path,
        default=None,
        help="with --luks: also put this file's bytes in key slot 31 (LUKS2) and 7 (LUKS1)",
    )
    args = parser.parse_args(argv)
    try:
        extra_key = args.extra_key_file.read_bytes() if args.extra_key_file else None
    except OSError as err:
        print(f"make_os_disk: cannot read {args.extra_key_file}: {err.strerror}", file=sys.stderr)
        return 1
    try:
        disk = make_os_disk(
            args.out,
            args.cache,
            args.kernel_package,
            luks=args.luks,
            lvm=args.lvm,
            extra_key=extra_key,
        )
    except (OsDiskError, LockError, FetchError) as err:
        print(f"make_os_disk: {err}", file=sys.stderr)
        return 1
    print(
        f"wrote {disk.image}: /boot at byte {disk.boot_offset} ({disk.boot_size} bytes), "
        f"kernel {disk.kernel_release}, cmdline: {disk.cmdline}"
    )
    for c in disk.luks:
        where = f"LV {c.volume} on partition" if c.volume else "partition"
        print(f"  LUKS{c.version} {c.name}: {where} {c.partition}, UUID {c.uuid}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
