"""The LUKS side of the test OS disk (tools/make_os_disk.py): its containers,
their key slots and the target initrd that opens them.

The LUKS disk (`--luks`, make_os_disk(luks=True)), for the Disk Unlock Key
(issue 18), adds two partitions after /boot and root:

  3. "cryptroot": a LUKS2 container (24 MiB, of which the header takes 16),
  4. "cryptdata": a LUKS1 container (16 MiB),

each with DISK_RECOVERY_PASSPHRASE in key slot 0, a fixed UUID and a fast
PBKDF2 (1000 iterations); their payload is left unformatted: the target opening
them is the proof. `--extra-key-file` (extra_key=) also puts a key in the slot
Heads gives the DUK (31 in LUKS2, 7 in LUKS1), as if the DUK were set up. The
host's cryptsetup (cryptsetup-bin) formats each container in an image file (no
device-mapper needed for that) copied in at its offset. LUKS salts and volume
keys are random, so this disk is NOT reproducible; its initrd is. The disk
without --luks is the same, byte for byte, as before the option existed.
The LVM disk (`--luks --lvm`) adds a third, LUKS2 container "cryptvault" in
LVM logical volume osvg/cryptvault on partition 5 (tools/os_disk_lvm.py).

Its /boot initrd is the LUKS target: the same report, then, before `done`,
Debian cryptroot's crypttab semantics over /cryptroot/crypttab, then
/etc/crypttab (the OS's own cryptroot/crypttab names every container with the
key file `none`; Heads' key cpio, appended at kexec, replaces it and adds
etc/crypttab with /secret.key):

    OS-TARGET: secret.key <size> bytes          only if /secret.key exists
    OS-TARGET: key-hex <hex>                    then the key itself, in hex: a
                                                test aid for the leak checks
    OS-TARGET: lvm <group> active               LVM disk only, before the
                                                crypttab files: each volume
                                                group `lvm vgchange` activated
    OS-TARGET: lvm not activated <reason>       no volume group, lvm exit <n>:
                                                <its last message>
    OS-TARGET: crypttab <path>                  each crypttab file read
    OS-TARGET: keyfile <name> present|absent|none
    OS-TARGET: passphrase for <name>            key file none: a line is read
    OS-TARGET: wrong passphrase for <name>      (3 tries, as Debian's tries=3)
    OS-TARGET: opened <name> slot <n>
    OS-TARGET: mapped <name> <bytes> bytes      /dev/mapper/<name>'s size
    OS-TARGET: not opened <name> <reason>       wrong key, wrong passphrase,
                                                no passphrase, no device ...

A source is `UUID=<uuid>` (matched against the UUID in each block device's
LUKS header; on the LVM disk /dev/mapper/* and /dev/dm-* first) or a /dev
path; an entry needs the `luks` option, `discard` becomes --allow-discards; a
device named twice (Heads writes the same lines to both files) opens once.
The passphrase is read with echo off, waiting `ostarget.passphrase_timeout=`
seconds from the kernel command line (60 by default) before giving up. It
carries the locked cryptsetup-bin with its shared libraries and the modules
of LUKS_TARGET_MODULES (5.7 MB with gzip); the LVM disk's also carries lvm2's
/sbin/lvm with its libraries (8.4 MB).

Why not a real Debian initramfs (initramfs-tools + cryptsetup-initramfs): the
lock holds neither those packages nor what mkinitramfs runs (klibc-utils, kmod,
udev, dash, coreutils ...), and mkinitramfs builds from an installed root (a
chroot with the packages configured, needing root), not from unpacked debs.
This target keeps the part the DUK depends on: the crypttab lines and the key
file Heads' cpio provides.
"""

from __future__ import annotations

import gzip
import io
import os
import stat
from pathlib import Path

from tools.initrd import elf, kmod
from tools.initrd.cache import default_cache_dir
from tools.initrd.cpio import Entry, write_archive
from tools.initrd.lock import load_lock
from tools.initrd.pool import Pool, unpack
from tools.os_disk_common import (
    BOARD_KERNEL_PACKAGE,
    SOURCE_DATE_EPOCH,
    TARGET_END,
    TARGET_REPORT,
    OsDiskError,
    busybox_path,
    host_tool,
    kernel_files,
    pinned_env,
    run_tool,
)
from tools.os_disk_common import LUKS_DATA_OFFSET as LUKS_DATA_OFFSET
from tools.os_disk_common import LUKS_DATA_SIZE as LUKS_DATA_SIZE
from tools.os_disk_common import LUKS_DISK_SIZE as LUKS_DISK_SIZE
from tools.os_disk_common import LUKS_ROOT_OFFSET as LUKS_ROOT_OFFSET
from tools.os_disk_common import LUKS_ROOT_SIZE as LUKS_ROOT_SIZE
from tools.os_disk_common import LuksContainer as LuksContainer
from tools.os_disk_lvm import (
    LUKS_VAULT,
    LVM_IMAGE_PATH,
    LVM_PACKAGES,
    LVM_TARGET_MODULES,
    TARGET_LVM_ACTIVATE,
    TARGET_LVM_SOURCES,
)

#: The passphrase in key slot 0 of every LUKS container (the owner's recovery
#: passphrase, which the DUK setup asks for).
DISK_RECOVERY_PASSPHRASE = "disk recovery passphrase"  # noqa: S105 (a test disk's)
#: Fast key derivation for every key slot made here (the guest runs under TCG).
LUKS_PBKDF_ARGS = ("--pbkdf=pbkdf2", "--pbkdf-force-iterations=1000")
#: Largest extra key accepted (Heads' DUK is 128 bytes; a pipe holds 64 KiB).
MAX_EXTRA_KEY = 8192
#: The Debian kernel modules the LUKS target loads (dependencies added, in
#: order): the disk, device-mapper and dm-crypt, and the templates aes-xts needs
#: (xts asks for ecb(aes); aes itself is built in). No modprobe runs there.
LUKS_TARGET_MODULES = ("virtio_pci", "virtio_blk", "dm_crypt", "ecb", "xts")
#: The locked packages the LUKS target's cryptsetup and its libraries come from.
CRYPTSETUP_PACKAGES = (
    "cryptsetup-bin",
    "libcryptsetup12",
    "libdevmapper1.02.1",
    "libargon2-1",
    "libjson-c5",
    "libblkid1",
    "libuuid1",
    "libpopt0",
    "libselinux1",
    "libpcre2-8-0",
    "libudev1",
    "libssl3",
    "libc6",
)
CRYPTSETUP_IMAGE_PATH = "sbin/cryptsetup"

#: The LUKS disk's target, between the report and `done`: Debian cryptroot's
#: crypttab semantics over busybox, the locked cryptsetup and dm-crypt. The
#: @LVM_...@ lines are where the LVM disk's target has its parts
#: (luks_target_init); the LUKS disk's has nothing there.
_TARGET_UNLOCK = r"""# The LUKS disk's part: open what the crypttab files name, as Debian's
# cryptroot does (name, source, key file or none, options).
/bin/busybox mount -t devtmpfs devtmpfs /dev
while read -r module; do
    /bin/busybox insmod "$module" || echo "OS-TARGET: insmod $module failed"
done </etc/modules.load
# No udev here: libdevmapper then makes the /dev/mapper nodes itself.
export DM_DISABLE_UDEV=1
passphrase_timeout=60
for word in $cmdline; do
    case "$word" in
    ostarget.passphrase_timeout=*) passphrase_timeout=${word#*=} ;;
    esac
done
if [ -e /secret.key ]; then
    echo "OS-TARGET: secret.key $(/bin/busybox stat -c %s /secret.key) bytes"
    # A TEST AID, only in this test OS: the key in hex on the OS's own part of
    # the console, so that the host, which never sees the key otherwise, can
    # search the firmware's console, the disk and RAM for it. A real OS never
    # prints its disk key.
    echo "OS-TARGET: key-hex $(/bin/busybox hexdump -v -e '1/1 "%02x"' /secret.key)"
fi

luks_uuid() {
    # LUKS1 and LUKS2 both keep the UUID at byte 168, NUL-padded to 40 bytes.
    [ "$(/bin/busybox dd if="$1" bs=4 count=1 2>/dev/null)" = LUKS ] || return 1
    /bin/busybox dd if="$1" bs=1 skip=168 count=40 2>/dev/null | /bin/busybox tr -d '\000'
}

resolve() {
    # UUID= is matched exactly, as udev's /dev/disk/by-uuid name would be.
    case "$1" in
    UUID=*)
@LVM_SOURCES@
        for block in /sys/class/block/*; do
            dev=/dev/${block##*/}
            [ -b "$dev" ] || continue
            if found=$(luks_uuid "$dev") && [ "$found" = "${1#UUID=}" ]; then
                echo "$dev"
                return 0
            fi
        done
        return 1
        ;;
    /dev/*) [ -b "$1" ] && echo "$1" ;;
    *) return 1 ;;
    esac
}

report() {
    # name, cryptsetup's exit status, its -v output
    if [ "$2" -eq 0 ]; then
        slot=$(echo "$3" | /bin/busybox sed -n 's/^Key slot \([0-9]*\) unlocked\.$/\1/p')
        echo "OS-TARGET: opened $1 slot ${slot:-unknown}"
        if [ -b "/dev/mapper/$1" ]; then
            echo "OS-TARGET: mapped $1 $(/bin/busybox blockdev --getsize64 "/dev/mapper/$1") bytes"
        fi
    elif [ "$2" -eq 2 ]; then
        echo "OS-TARGET: not opened $1 wrong key"
    else
        echo "OS-TARGET: not opened $1 cryptsetup exit $2: $(echo "$3" | /bin/busybox tail -n 1)"
    fi
}

ask() {
    # name, device, cryptsetup flags: 3 tries, as Debian's default tries=3
    local name=$1 dev=$2 attempt=1 pass result status
    shift 2
    while [ "$attempt" -le 3 ]; do
        /bin/busybox stty -echo 2>/dev/null  # never echo a passphrase to the console
        echo "OS-TARGET: passphrase for $name"
        if ! read -r -t "$passphrase_timeout" pass; then
            /bin/busybox stty echo 2>/dev/null
            echo "OS-TARGET: not opened $name no passphrase"
            return
        fi
        /bin/busybox stty echo 2>/dev/null
        # printf is a builtin: the passphrase is in no process's argv
        result=$(printf '%s' "$pass" |
            /sbin/cryptsetup open --type luks -v "$@" --key-file=- "$dev" "$name" 2>&1)
        status=$?
        pass=""
        if [ "$status" -ne 2 ]; then
            report "$name" "$status" "$result"
            return
        fi
        echo "OS-TARGET: wrong passphrase for $name"
        attempt=$((attempt + 1))
    done
    echo "OS-TARGET: not opened $name wrong passphrase"
}

seen=" "
open_entry() {
    local name=$1 source=$2 key=$3 options=$4 dev tries=0 flags="" result
    case ",$options," in
    *,luks,*) ;;
    *) echo "OS-TARGET: not opened $name no luks option"; return ;;
    esac
    # Heads writes the same lines to both crypttab files: one device opens once.
    case "$seen" in *" $source "*) return ;; esac
    until dev=$(resolve "$source"); do
        tries=$((tries + 1))
        if [ "$tries" -ge 10 ]; then
            echo "OS-TARGET: not opened $name no device $source"
            return
        fi
        /bin/busybox sleep 1
    done
    case "$seen" in *" $dev "*) return ;; esac
    seen="$seen$source $dev "
    case ",$options," in *,discard,*) flags=--allow-discards ;; esac
    if [ -z "$key" ] || [ "$key" = none ]; then
        echo "OS-TARGET: keyfile $name none"
        ask "$name" "$dev" $flags
        return
    fi
    if [ ! -f "$key" ]; then
        echo "OS-TARGET: keyfile $name absent"
        echo "OS-TARGET: not opened $name key file $key missing"
        return
    fi
    echo "OS-TARGET: keyfile $name present"
    result=$(/sbin/cryptsetup open --type luks -v $flags --key-file "$key" \
        "$dev" "$name" </dev/null 2>&1)
    report "$name" $? "$result"
}

@LVM_ACTIVATE@
for crypttab in /cryptroot/crypttab /etc/crypttab; do
    [ -f "$crypttab" ] || continue
    echo "OS-TARGET: crypttab $crypttab"
    # fd 3: stdin stays the console for the passphrase
    while read -r name source key options <&3; do
        case "$name" in "" | "#"*) continue ;; esac
        open_entry "$name" "$source" "$key" "$options"
    done 3<"$crypttab"
done
"""


def luks_target_init(lvm: bool = False) -> str:
    """The LUKS target's /init; with `lvm`, the LVM disk's (volume groups
    activated first, logical volumes among the UUID= sources). Without, the
    same text as before the LVM disk existed."""
    unlock = _TARGET_UNLOCK.replace("@LVM_SOURCES@\n", TARGET_LVM_SOURCES if lvm else "")
    unlock = unlock.replace("@LVM_ACTIVATE@\n", TARGET_LVM_ACTIVATE if lvm else "")
    return TARGET_REPORT + unlock + TARGET_END


LUKS_TARGET_INIT = luks_target_init()
LUKS_LVM_TARGET_INIT = luks_target_init(lvm=True)


LUKS_ROOT = LuksContainer(
    name="cryptroot",
    version=2,
    uuid="0b007b00-7b00-4b00-8b00-00000000c002",
    partition=3,
    part_uuid="5A3E1D2C-0B0A-4F1E-9D8C-000000000003",
    offset=LUKS_ROOT_OFFSET,
    size=LUKS_ROOT_SIZE,
    duk_slot=31,
)
LUKS_DATA = LuksContainer(
    name="cryptdata",
    version=1,
    uuid="0b007b00-7b00-4b00-8b00-00000000c003",
    partition=4,
    part_uuid="5A3E1D2C-0B0A-4F1E-9D8C-000000000004",
    offset=LUKS_DATA_OFFSET,
    size=LUKS_DATA_SIZE,
    duk_slot=7,
)
LUKS_CONTAINERS = (LUKS_ROOT, LUKS_DATA)
#: The LVM disk's (make_os_disk(luks=True, lvm=True)): cryptvault is in an LVM
#: logical volume (tools/os_disk_lvm.py).
LUKS_LVM_CONTAINERS = (*LUKS_CONTAINERS, LUKS_VAULT)


def os_crypttab(containers: tuple[LuksContainer, ...] = LUKS_CONTAINERS) -> bytes:
    """The OS initrd's own /cryptroot/crypttab, as Debian's installer leaves it:
    no key file, so its initramfs asks for a passphrase. Heads' key cpio
    replaces this file."""
    return "".join(f"{c.name} UUID={c.uuid} none luks,discard\n" for c in containers).encode()


def _from_pool(pool: Pool, image_path: str) -> list[Entry]:
    """A file of the pool and every symlink it is reached through (as
    build_initrd.py's Image.add_from_pool, without the image's bookkeeping)."""
    entries: list[Entry] = []
    path = image_path
    for _ in range(20):
        found = pool.files.get(path)
        if found is None:
            real = pool.resolve(path)
            if real == path or real not in pool.files:
                raise OsDiskError(f"/{path} is in no locked package")
            path = real
            continue
        if found.link is None:
            executable = bool(found.host.stat().st_mode & stat.S_IXUSR)
            return [*entries, Entry.file(path, found.host.read_bytes(), executable)]
        entries.append(Entry.symlink(path, found.link))
        following = pool.resolve(path)
        if following == path:
            raise OsDiskError(f"/{path} is a dangling symlink")
        path = following
    raise OsDiskError(f"symlink loop at /{image_path}")


def _with_parents(entries: dict[str, Entry]) -> list[Entry]:
    """The entries and a directory entry for each parent none names (the
    kernel's unpacker makes no missing parent)."""
    directories = {
        "/".join(parts[:depth])
        for parts in (path.split("/") for path in entries)
        for depth in range(1, len(parts))
    }
    return [*entries.values(), *(Entry.directory(d) for d in directories - set(entries))]


def luks_target_initrd(
    cache: Path | None = None, kernel_package: str = BOARD_KERNEL_PACKAGE, *, lvm: bool = False
) -> bytes:
    """The LUKS disk's target initrd: the tiny target plus the LUKS part of its
    /init, the locked cryptsetup with its shared libraries, the kernel modules
    of LUKS_TARGET_MODULES and the OS's own /cryptroot/crypttab. A gzip'd newc
    cpio, the same bytes every time. With `lvm`, the LVM disk's: lvm as well,
    the LVM part of /init, cryptvault in the crypttab (tools/os_disk_lvm.py)."""
    cache = cache or default_cache_dir()
    lock = load_lock()
    pool = Pool()
    for name in (*CRYPTSETUP_PACKAGES, *(LVM_PACKAGES if lvm else ())):
        pool.add_package(lock.deb(name), cache)
    programs = [CRYPTSETUP_IMAGE_PATH, *([LVM_IMAGE_PATH] if lvm else [])]
    try:
        libraries = elf.closure(programs, pool.host_paths())
    except elf.MissingLibrary as err:
        raise OsDiskError(f"{' and '.join(programs)} for the LUKS target: {err}") from None
    entries: dict[str, Entry] = {}
    for path in sorted({*programs, *libraries}):
        for entry in _from_pool(pool, path):
            entries[entry.path] = entry

    release = kernel_files(cache, kernel_package).release
    modules_dir = unpack(lock.deb(kernel_package), cache) / "lib" / "modules" / release
    wanted = [*LUKS_TARGET_MODULES, *(LVM_TARGET_MODULES if lvm else ())]
    try:
        modules = kmod.load_order(modules_dir, wanted)
    except kmod.ModuleError as err:
        raise OsDiskError(f"{kernel_package}: {err}") from None
    load_list = []
    for ko in modules:
        path = f"lib/modules/{release}/{ko.relative_to(modules_dir).as_posix()}"
        entries[path] = Entry.file(path, ko.read_bytes())
        load_list.append("/" + path)

    for entry in (
        Entry.file("bin/busybox", busybox_path(cache).read_bytes(), executable=True),
        Entry.symlink("bin/sh", "busybox"),
        Entry.char_device("dev/console", 5, 1),
        Entry.directory("proc"),
        Entry.directory("sys"),
        # LUKS2's lock files (cryptsetup warns without the directory)
        Entry.directory("run/cryptsetup"),
        Entry.file("etc/modules.load", ("\n".join(load_list) + "\n").encode()),
        Entry.file(
            "cryptroot/crypttab", os_crypttab(LUKS_LVM_CONTAINERS if lvm else LUKS_CONTAINERS)
        ),
        Entry.file("init", luks_target_init(lvm).encode(), executable=True),
    ):
        entries[entry.path] = entry
    raw = io.BytesIO()
    write_archive(raw, _with_parents(entries), mtime=SOURCE_DATE_EPOCH)
    return gzip.compress(raw.getvalue(), compresslevel=9, mtime=0)


def make_luks_image(image: Path, container: LuksContainer, extra_key: bytes | None) -> None:
    """A LUKS container in its own image file, formatted by the host's cryptsetup
    (on a plain file no device-mapper is needed): the recovery passphrase in
    key slot 0 and, if given, `extra_key` in the container's DUK slot. Its
    payload stays unformatted: opening it is the proof the target gives."""
    cryptsetup = host_tool("cryptsetup", "cryptsetup-bin")
    with image.open("wb") as f:
        f.truncate(container.size)
    env = pinned_env()
    run_tool(
        [
            cryptsetup,
            "luksFormat",
            "--batch-mode",
            f"--type=luks{container.version}",
            *LUKS_PBKDF_ARGS,
            f"--uuid={container.uuid}",
            "--key-slot=0",
            "--key-file=-",
            str(image),
        ],
        stdin=DISK_RECOVERY_PASSPHRASE,
        env=env,
    )
    if extra_key is None:
        return
    # The key through a pipe, never a file or argv: tests pass real-looking keys.
    read_end, write_end = os.pipe()
    try:
        os.write(write_end, extra_key)  # at most MAX_EXTRA_KEY: the pipe holds it
        os.close(write_end)
        write_end = -1
        run_tool(
            [
                cryptsetup,
                "luksAddKey",
                "--batch-mode",
                *LUKS_PBKDF_ARGS,
                f"--key-slot={container.duk_slot}",
                "--key-file=-",
                str(image),
                f"/proc/self/fd/{read_end}",
            ],
            stdin=DISK_RECOVERY_PASSPHRASE,
            env=env,
            pass_fds=(read_end,),
        )
    finally:
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)
