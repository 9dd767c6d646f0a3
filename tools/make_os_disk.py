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
"""

from __future__ import annotations

import argparse
import gzip
import io
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tools.boards import load_board_table
from tools.initrd.cache import FetchError, default_cache_dir
from tools.initrd.cpio import Entry, write_archive
from tools.initrd.lock import LockError, load_lock
from tools.initrd.pool import unpack

REPO = Path(__file__).resolve().parents[1]
BOARD = "qemu-swtpm"
_BOARD_KERNEL = load_board_table(BOARD)["kernel"]
#: The board's kernel package and release (etc/boards/qemu-swtpm/board.toml [kernel]).
BOARD_KERNEL_PACKAGE: str = _BOARD_KERNEL["package"]
BOARD_KERNEL_RELEASE: str = _BOARD_KERNEL["release"]
BUSYBOX_PACKAGE = "busybox-static"

#: Every timestamp in the disk (2023-11-14 22:13:20 UTC).
SOURCE_DATE_EPOCH = 1_700_000_000

#: The default entry's command line after `root=... ro`, as Debian's update-grub
#: makes it from GRUB_CMDLINE_LINUX="console=ttyS0,115200" and
#: GRUB_CMDLINE_LINUX_DEFAULT="quiet".
GRUB_CMDLINE_LINUX = "console=ttyS0,115200"
GRUB_CMDLINE_LINUX_DEFAULT = "quiet"
ROOT_DEVICE = "LABEL=root"
DEFAULT_CMDLINE = f"root={ROOT_DEVICE} ro {GRUB_CMDLINE_LINUX} {GRUB_CMDLINE_LINUX_DEFAULT}"
RECOVERY_CMDLINE = f"root={ROOT_DEVICE} ro single {GRUB_CMDLINE_LINUX}"

SECTOR = 512
MIB = 1 << 20
BOOT_OFFSET = 1 * MIB
BOOT_SIZE = 96 * MIB
ROOT_OFFSET = BOOT_OFFSET + BOOT_SIZE
ROOT_SIZE = 16 * MIB
#: 1 MiB at the end leaves room for the backup GPT (33 sectors).
DISK_SIZE = ROOT_OFFSET + ROOT_SIZE + 1 * MIB

# Fixed identifiers, so two builds are byte for byte the same.
DISK_GUID = "5A3E1D2C-0B0A-4F1E-9D8C-7B6A59483726"
BOOT_PART_UUID = "5A3E1D2C-0B0A-4F1E-9D8C-000000000001"
ROOT_PART_UUID = "5A3E1D2C-0B0A-4F1E-9D8C-000000000002"
BOOT_FS_UUID = "0b007b00-7b00-4b00-8b00-0000000000b0"
ROOT_FS_UUID = "0b007b00-7b00-4b00-8b00-0000000000a0"
HASH_SEED = "0b007b00-7b00-4b00-8b00-0000000005ee"
GPT_TYPE_LINUX_FS = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
GPT_TYPE_ROOT_X86_64 = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"

#: The tiny target's /init. Only shell builtins and explicit busybox applets, so
#: the archive needs no applet links; output goes to /dev/console (the serial
#: console with console=ttyS0).
TARGET_INIT = """\
#!/bin/sh
# The test OS: report that it booted, its command line and the PCRs, then power off.
export PATH=/bin
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
exec >/dev/console 2>&1 </dev/console
echo "OS-TARGET: booted"
read -r cmdline </proc/cmdline
echo "OS-TARGET: cmdline $cmdline"
n=0
while [ "$n" -le 15 ]; do
    pcr=/sys/class/tpm/tpm0/pcr-sha256/$n
    if [ -r "$pcr" ] && read -r value <"$pcr"; then
        echo "OS-TARGET: pcr $n $value"
    else
        echo "OS-TARGET: pcr $n unavailable"
    fi
    n=$((n + 1))
done
echo "OS-TARGET: done"
/bin/busybox sync
/bin/busybox poweroff -f
"""

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


class OsDiskError(Exception):
    """The disk cannot be made (a host tool is missing or failed)."""


@dataclass(frozen=True)
class OsDisk:
    """The disk made by make_os_disk, and what a boot from it should do."""

    image: Path
    boot_offset: int  # byte offset of partition 1 (/boot) in the image
    boot_size: int  # its size in bytes
    kernel_release: str
    cmdline: str  # the default grub entry's command line


@dataclass(frozen=True)
class KernelFiles:
    release: str
    vmlinuz: Path
    config: Path


def kernel_files(
    cache: Path | None = None, kernel_package: str = BOARD_KERNEL_PACKAGE
) -> KernelFiles:
    """The kernel image and config from the locked package (unpacked into the cache)."""
    tree = unpack(load_lock().deb(kernel_package), cache or default_cache_dir())
    if kernel_package == BOARD_KERNEL_PACKAGE:
        release = BOARD_KERNEL_RELEASE
    else:
        found = sorted((tree / "boot").glob("vmlinuz-*"))
        if len(found) != 1:
            raise OsDiskError(f"{kernel_package} has {len(found)} /boot/vmlinuz-* files, not 1")
        release = found[0].name.removeprefix("vmlinuz-")
    files = KernelFiles(
        release, tree / "boot" / f"vmlinuz-{release}", tree / "boot" / f"config-{release}"
    )
    for path in (files.vmlinuz, files.config):
        if not path.is_file():
            raise OsDiskError(f"{kernel_package} has no {path.relative_to(tree)}")
    return files


def busybox_path(cache: Path | None = None) -> Path:
    """The static busybox from the locked busybox-static package."""
    path = (
        unpack(load_lock().deb(BUSYBOX_PACKAGE), cache or default_cache_dir()) / "bin" / "busybox"
    )
    if not path.is_file():
        raise OsDiskError(f"{BUSYBOX_PACKAGE} has no bin/busybox")
    return path


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


def _tool(name: str, package: str) -> str:
    """A host program, also looked for in the sbin directories a user's PATH may lack."""
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if found is None:
        raise OsDiskError(
            f"{name} is not installed: install the Debian package {package} "
            f"(apt-get install {package})"
        )
    return found


def _run(
    argv: list[str], stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        argv, input=stdin, capture_output=True, text=True, timeout=300, env=env, check=False
    )
    if done.returncode != 0:
        raise OsDiskError(
            f"{Path(argv[0]).name} failed ({done.returncode}): "
            f"{(done.stderr or done.stdout).strip()[-800:]}"
        )
    return done


def _pinned_env() -> dict[str, str]:
    return {
        **os.environ,
        "LC_ALL": "C",
        "TZ": "UTC",
        "SOURCE_DATE_EPOCH": str(SOURCE_DATE_EPOCH),
        "E2FSPROGS_FAKE_TIME": str(SOURCE_DATE_EPOCH),
    }


def _write(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(mode)


def _make_ext4(source: Path, image: Path, size: int, label: str, uuid: str) -> None:
    """An ext4 image of `size` bytes holding the tree at `source`, reproducibly.

    mke2fs -d copies each file's owner and change time (ctime) from the host,
    which no one can pin beforehand, so debugfs pins them afterwards."""
    mke2fs = _tool("mke2fs", "e2fsprogs")
    debugfs = _tool("debugfs", "e2fsprogs")
    env = _pinned_env()
    with image.open("wb") as f:
        f.truncate(size)
    _run(
        [
            mke2fs,
            "-q",
            "-F",
            "-t",
            "ext4",
            "-b",
            "4096",
            "-I",
            "256",
            "-L",
            label,
            "-U",
            uuid,
            "-E",
            f"hash_seed={HASH_SEED},root_owner=0:0,nodiscard",
            "-d",
            str(source),
            str(image),
        ],
        env=env,
    )
    paths = ["/", *sorted("/" + p.relative_to(source).as_posix() for p in source.rglob("*"))]
    when = f"@{SOURCE_DATE_EPOCH}"
    pinned = (
        ("uid", "0"),
        ("gid", "0"),
        ("atime", when),
        ("ctime", when),
        ("mtime", when),
        ("crtime", when),
    )
    commands = [f"sif {path} {field} {value}" for path in paths for field, value in pinned]
    script = image.with_suffix(".debugfs")
    script.write_text("\n".join(commands) + "\n")
    done = _run([debugfs, "-w", "-f", str(script), str(image)], env=env)
    # debugfs exits 0 when a command fails; its only other stderr line is the banner.
    errors = [
        line
        for line in done.stderr.splitlines()
        if line.strip() and not line.startswith("debugfs ")
    ]
    if errors:
        raise OsDiskError(f"debugfs could not pin {label}'s inodes: {'; '.join(errors[:5])}")


def _copy_into(disk: Path, image: Path, offset: int, size: int) -> None:
    """dd the file system image into the disk at `offset` (zero blocks are skipped:
    the disk file is sparse and already zero there)."""
    if image.stat().st_size != size:
        raise OsDiskError(f"{image.name} is {image.stat().st_size} bytes, not {size}")
    zero = bytes(MIB)
    with image.open("rb") as src, disk.open("r+b") as dst:
        position = offset
        while block := src.read(MIB):
            if block != zero[: len(block)]:
                dst.seek(position)
                dst.write(block)
            position += len(block)


def _partition_disk(disk: Path) -> None:
    sfdisk = _tool("sfdisk", "fdisk")
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
    )
    _run(
        [sfdisk, "--quiet", "--no-reread", "--no-tell-kernel", "--wipe", "never", str(disk)],
        stdin=script,
        env=_pinned_env(),
    )


def make_os_disk(
    out: Path, cache: Path | None = None, kernel_package: str = BOARD_KERNEL_PACKAGE
) -> OsDisk:
    """Make the test OS disk at `out` (replaced atomically) and describe it."""
    # Check the host tools before downloading anything.
    for name, package in (("sfdisk", "fdisk"), ("mke2fs", "e2fsprogs"), ("debugfs", "e2fsprogs")):
        _tool(name, package)
    cache = cache or default_cache_dir()
    kernel = kernel_files(cache, kernel_package)
    initrd = target_initrd(busybox_path(cache))
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
        _make_ext4(boot, tmp / "boot.ext4", BOOT_SIZE, "boot", BOOT_FS_UUID)
        _make_ext4(root, tmp / "root.ext4", ROOT_SIZE, "root", ROOT_FS_UUID)
        disk = tmp / "disk.img"
        with disk.open("wb") as f:
            f.truncate(DISK_SIZE)
        _partition_disk(disk)
        _copy_into(disk, tmp / "boot.ext4", BOOT_OFFSET, BOOT_SIZE)
        _copy_into(disk, tmp / "root.ext4", ROOT_OFFSET, ROOT_SIZE)
        disk.chmod(0o644)
        disk.replace(out)
    return OsDisk(
        image=out,
        boot_offset=BOOT_OFFSET,
        boot_size=BOOT_SIZE,
        kernel_release=kernel.release,
        cmdline=DEFAULT_CMDLINE,
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
    args = parser.parse_args(argv)
    try:
        disk = make_os_disk(args.out, args.cache, args.kernel_package)
    except (OsDiskError, LockError, FetchError) as err:
        print(f"make_os_disk: {err}", file=sys.stderr)
        return 1
    print(
        f"wrote {disk.image}: /boot at byte {disk.boot_offset} ({disk.boot_size} bytes), "
        f"kernel {disk.kernel_release}, cmdline: {disk.cmdline}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
