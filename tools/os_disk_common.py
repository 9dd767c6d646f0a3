"""What the test OS disk's builders share: tools/make_os_disk.py (the disk),
tools/os_disk_luks.py (its LUKS side) and tools/os_disk_lvm.py (its LVM side)
all import this; os_disk_luks imports os_disk_lvm, nothing else imports
sideways.

The partition layout, a LUKS container's description, the pinned timestamp,
the board's kernel and the static busybox from the lock, the report every
target's /init starts with and the end it finishes with, and the host
programs (looked for in sbin too, run with a pinned environment, a failure
raised as OsDiskError).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tools.boards import load_board_table
from tools.initrd.cache import default_cache_dir
from tools.initrd.lock import load_lock
from tools.initrd.pool import unpack

BOARD = "qemu-swtpm"
_BOARD_KERNEL = load_board_table(BOARD)["kernel"]
#: The board's kernel package and release (etc/boards/qemu-swtpm/board.toml [kernel]).
BOARD_KERNEL_PACKAGE: str = _BOARD_KERNEL["package"]
BOARD_KERNEL_RELEASE: str = _BOARD_KERNEL["release"]
BUSYBOX_PACKAGE = "busybox-static"

#: Every timestamp in the disk (2023-11-14 22:13:20 UTC).
SOURCE_DATE_EPOCH = 1_700_000_000
#: The ext4 directory hash seed of its file systems (fixed: reproducible).
HASH_SEED = "0b007b00-7b00-4b00-8b00-0000000005ee"

#: The disk's layout, in bytes: /boot, then root (the LUKS disk adds its
#: containers after them: tools/os_disk_luks.py).
SECTOR = 512
MIB = 1 << 20
BOOT_OFFSET = 1 * MIB
BOOT_SIZE = 96 * MIB
ROOT_OFFSET = BOOT_OFFSET + BOOT_SIZE
ROOT_SIZE = 16 * MIB
#: 1 MiB at the end leaves room for the backup GPT (33 sectors).
DISK_SIZE = ROOT_OFFSET + ROOT_SIZE + 1 * MIB
#: The LUKS disk (make_os_disk(luks=True)): the same two partitions, then a
#: LUKS2 container (its header alone takes 16 MiB) and a LUKS1 one. The LVM
#: disk puts its physical volume after them (tools/os_disk_lvm.py).
LUKS_ROOT_OFFSET = ROOT_OFFSET + ROOT_SIZE
LUKS_ROOT_SIZE = 24 * MIB
LUKS_DATA_OFFSET = LUKS_ROOT_OFFSET + LUKS_ROOT_SIZE
LUKS_DATA_SIZE = 16 * MIB
LUKS_DISK_SIZE = LUKS_DATA_OFFSET + LUKS_DATA_SIZE + 1 * MIB

#: The tiny target's /init is TARGET_REPORT + TARGET_END (the LUKS target's puts
#: its unlocking between them). Only shell builtins and explicit busybox
#: applets, so the archive needs no applet links; output goes to /dev/console
#: (the serial console with console=ttyS0).
TARGET_REPORT = """\
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
"""
TARGET_END = """\
echo "OS-TARGET: done"
/bin/busybox sync
/bin/busybox poweroff -f
"""


class OsDiskError(Exception):
    """The disk cannot be made (a host tool is missing or failed)."""


@dataclass(frozen=True)
class LuksContainer:
    """One LUKS container of the LUKS disk."""

    name: str  # its name in the OS initrd's own /cryptroot/crypttab
    version: int  # LUKS version, 1 or 2
    uuid: str  # the LUKS header's UUID (fixed)
    partition: int  # GPT partition number: the guest's /dev/vda<partition>
    part_uuid: str
    offset: int  # byte offset of the container in the disk image
    size: int  # bytes
    duk_slot: int  # the key slot Heads gives the DUK (LUKS2 31, LUKS1 7)
    # "<group>/<volume>" when the container is an LVM logical volume on the
    # partition (a physical volume) rather than the partition itself
    volume: str | None = None

    @property
    def guest_partition(self) -> str:
        """Its partition in a guest with the disk as the first virtio disk."""
        return f"/dev/vda{self.partition}"

    @property
    def guest_device(self) -> str:
        """Its device in that guest: the partition, or the logical volume's
        device-mapper node (lvm's name for it, '-' in either name doubled),
        which exists once the volume group is active."""
        if self.volume is None:
            return self.guest_partition
        group, volume = self.volume.split("/")
        return f"/dev/mapper/{group.replace('-', '--')}-{volume.replace('-', '--')}"


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


def host_tool(name: str, package: str) -> str:
    """A host program, also looked for in the sbin directories a user's PATH may lack."""
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if found is None:
        raise OsDiskError(
            f"{name} is not installed: install the Debian package {package} "
            f"(apt-get install {package})"
        )
    return found


def run_tool(
    argv: list[str],
    stdin: str | None = None,
    env: dict[str, str] | None = None,
    pass_fds: tuple[int, ...] = (),
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        argv,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
        pass_fds=pass_fds,
    )
    if done.returncode != 0:
        raise OsDiskError(
            f"{Path(argv[0]).name} failed ({done.returncode}): "
            f"{(done.stderr or done.stdout).strip()[-800:]}"
        )
    return done


def make_ext4(source: Path, image: Path, size: int, label: str, uuid: str) -> None:
    """An ext4 image of `size` bytes holding the tree at `source`, reproducibly.

    mke2fs -d copies each file's owner and change time (ctime) from the host,
    which no one can pin beforehand, so debugfs pins them afterwards."""
    mke2fs = host_tool("mke2fs", "e2fsprogs")
    debugfs = host_tool("debugfs", "e2fsprogs")
    env = pinned_env()
    with image.open("wb") as f:
        f.truncate(size)
    run_tool(
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
    done = run_tool([debugfs, "-w", "-f", str(script), str(image)], env=env)
    # debugfs exits 0 when a command fails; its only other stderr line is the banner.
    errors = [
        line
        for line in done.stderr.splitlines()
        if line.strip() and not line.startswith("debugfs ")
    ]
    if errors:
        raise OsDiskError(f"debugfs could not pin {label}'s inodes: {'; '.join(errors[:5])}")


def copy_into(disk: Path, image: Path, offset: int, size: int) -> None:
    """dd an image (a file system, a LUKS container) into the disk at `offset`
    (zero blocks are skipped: the disk file is sparse and already zero there)."""
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


def pinned_env() -> dict[str, str]:
    return {
        **os.environ,
        "LC_ALL": "C",
        "TZ": "UTC",
        "SOURCE_DATE_EPOCH": str(SOURCE_DATE_EPOCH),
        "E2FSPROGS_FAKE_TIME": str(SOURCE_DATE_EPOCH),
    }
