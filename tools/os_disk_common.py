"""What the test OS disk's two builders share: tools/make_os_disk.py (the disk)
and tools/os_disk_luks.py (its LUKS side) both import this, never each other.

The partition layout of /boot and root, the pinned timestamp, the board's
kernel and the static busybox from the lock, the report every target's /init
starts with and the end it finishes with, and the host programs (looked for
in sbin too, run with a pinned environment, a failure raised as OsDiskError).
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


def pinned_env() -> dict[str, str]:
    return {
        **os.environ,
        "LC_ALL": "C",
        "TZ": "UTC",
        "SOURCE_DATE_EPOCH": str(SOURCE_DATE_EPOCH),
        "E2FSPROGS_FAKE_TIME": str(SOURCE_DATE_EPOCH),
    }
