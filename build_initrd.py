#!/usr/bin/env python3
"""Build the initramfs of a board, bit-for-bit reproducibly.

    .venv/bin/python build_initrd.py --board qemu-swtpm [--out build/qemu-swtpm]

Inputs: etc/boards/<board>/board.toml and the lock etc/initrd/lock.toml
(pinned Debian packages and Python sources, each checked by sha256).
Outputs in --out: initrd.cpio.zst (or .xz), manifest.tsv (every file with its
size, sha256 and origin package), size-report.txt, build-info.json.
Same lock + same tree -> same sha256, whatever the directory or the time.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import lzma
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from runtime.config.board import BoardConfig, ConfigError, parse_board_table
from runtime.image_files import (
    BOARD_CONFIG_PATH,
    BUILD_INFO_PATH,
    DEFAULTS_CONFIG_PATH,
    INIT_VALUES_DIR,
    OWNER_KEY_PATH,
    OWNER_SECRET_KEY_PATH,
    USER_CONFIG_PATH,
    in_image,
)
from tools.boards import UnknownBoard, board_file, load_board_table
from tools.initrd import elf, keymap, kmod
from tools.initrd.busybox_build import APPLETS as BUSYBOX_APPLETS
from tools.initrd.busybox_build import PROGRAM as BUSYBOX
from tools.initrd.busybox_build import SOURCE as BUSYBOX_SOURCE
from tools.initrd.busybox_build import build_busybox
from tools.initrd.cache import FetchError, default_cache_dir, fetch_source
from tools.initrd.cpio import Entry, write_archive
from tools.initrd.gnupg_build import SOURCE as GNUPG_SOURCE
from tools.initrd.gnupg_build import build_gnupg
from tools.initrd.kexec_build import SOURCE as KEXEC_SOURCE
from tools.initrd.kexec_build import build_kexec
from tools.initrd.lock import Lock, LockError, load_lock, wanted_packages
from tools.initrd.pool import Pool
from tools.initrd.python_freeze import IMAGE_INTERPRETER as PYTHON
from tools.initrd.python_freeze import FreezeError, frozen_interpreter
from tools.initrd.python_tree import (
    PythonTreeError,
    build_tpm2_pytss,
    compile_sources,
    import_closure,
)
from tools.initrd.report import Member, manifest, size_report
from tools.initrd.source_build import SourceBuildError

if TYPE_CHECKING:
    from runtime.config import Settings

REPO = Path(__file__).resolve().parent
# 2026-01-01T00:00:00Z unless the caller sets it: every mtime in the archive.
DEFAULT_EPOCH = 1767225600
#: packages the build runs, never placed in the image (etc/initrd/packages.toml)
BUILD_ONLY = frozenset({"kbd", "console-data"})

# Programs in the image (path inside the image -> component for the report).
PROGRAMS = {
    "usr/bin/python3.11": "python",
    "bin/busybox": "busybox",
    "sbin/kexec": "kexec",
    "sbin/cryptsetup": "cryptsetup",
    "usr/bin/zstd": "zstd",
    "usr/bin/gpg": "gnupg",
    "usr/bin/gpg-agent": "gnupg",
    "usr/bin/gpgv": "gnupg",
    "usr/bin/gpgconf": "gnupg",
    "usr/lib/gnupg/scdaemon": "gnupg",
    "usr/sbin/flashrom": "flashrom",
    "usr/sbin/cbfstool": "cbfstool",
}
# Only on boards with [disk] lvm = true (runtime/config/board.py): activates the
# volume group holding a Disk Unlock Key's LUKS container. No lvm.conf (the
# runtime passes --config), no udev rules, no dmeventd.
LVM = "sbin/lvm"
# Loaded with dlopen(), so no DT_NEEDED names them.
DLOPENED = [
    "usr/lib/x86_64-linux-gnu/libtss2-tcti-device.so.0",  # tpm2-pytss's TCTI loader
    "usr/lib/x86_64-linux-gnu/libudev.so.1",  # pyudev, via ctypes
    "lib/x86_64-linux-gnu/libgcc_s.so.1",  # glibc, for thread cancellation
]
USR_LIB = "usr/lib/x86_64-linux-gnu"


class BuildError(Exception):
    """A build input is wrong or missing; the message says what to do."""


# Size-report components: packages by exact name, then by name prefix.
COMPONENT_OF_PACKAGE = {
    "gnupg2": "gnupg",
    "kexec-tools": "kexec",
    "busybox": "busybox",
    "cryptsetup-bin": "cryptsetup",
    "zstd": "zstd",
    "flashrom": "flashrom",
    "coreboot-utils": "cbfstool",
    "lvm2": "lvm",
    # needed by lvm alone in the image (itself, libedit's and libsystemd's
    # closures; tests/build/test_image.py checks nothing else needs them)
    "libdevmapper-event1.02.1": "lvm",
    "libaio1": "lvm",
    "libedit2": "lvm",
    "libbsd0": "lvm",
    "libmd0": "lvm",
    "libtinfo6": "lvm",
    "libsystemd0": "lvm",
    "libcap2": "lvm",
    "libzstd1": "lvm",  # libsystemd's (the zstd program links no libzstd)
    "libc6": "libc",
    "libgcc-s1": "libc",
    "libssl3": "openssl",
}
COMPONENT_OF_PREFIX = (
    (("python3", "libpython3", "tpm2-pytss"), "python"),
    (("runtime",), "runtime"),
    (("linux-image",), "kernel modules"),
    (("libtss2",), "tss2 libraries"),
    (("overlay", "generated"), "overlay and config"),
)


def image_programs(board: BoardConfig) -> list[str]:
    """The programs this board's image holds (their libraries come with them)."""
    return [*PROGRAMS, *([LVM] if board.disk_lvm else [])]


def component_of(origin: str) -> str:
    name = origin.split(" ", 1)[0]
    if name in COMPONENT_OF_PACKAGE:
        return COMPONENT_OF_PACKAGE[name]
    for prefixes, component in COMPONENT_OF_PREFIX:
        if origin.startswith(prefixes):
            return component
    return "other libraries"


class Image:
    """The members of the archive, with their origins."""

    def __init__(self) -> None:
        self.members: dict[str, Member] = {}

    def add(self, entry: Entry, origin: str) -> None:
        self._parents(entry.path)
        existing = self.members.get(entry.path)
        if existing is not None and existing.entry != entry:
            raise BuildError(
                f"two different files for /{entry.path}: from {existing.origin} and from {origin}"
            )
        self.members[entry.path] = Member(entry, origin, component_of(origin))

    def _parents(self, path: str) -> None:
        parts = path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            parent = "/".join(parts[:i])
            if parent not in self.members:
                self.members[parent] = Member(Entry.directory(parent), "directory", "-")

    def add_from_pool(self, pool: Pool, image_path: str) -> None:
        """A file and, if it is reached through symlinks, those symlinks too."""
        seen = 0
        path = image_path
        while True:
            seen += 1
            if seen > 20:
                raise BuildError(f"symlink loop at {image_path}")
            entry = pool.files.get(path)
            if entry is None:
                real = pool.resolve(path)
                if real == path or real not in pool.files:
                    raise BuildError(f"/{path} is in no locked package")
                path = real
                continue
            if entry.link is None:
                data = entry.host.read_bytes()
                mode = entry.host.stat().st_mode
                self.add(Entry.file(path, data, bool(mode & stat.S_IXUSR)), entry.origin)
                return
            self.add(Entry.symlink(path, entry.link), entry.origin)
            next_path = pool.resolve(path)
            if next_path == path:
                raise BuildError(f"/{path} is a dangling symlink")
            path = next_path


def merged_root(pool: Pool, into: Path) -> None:
    """A tree of hard links (or symlinks) to the pool, for the image's interpreter."""
    for image, entry in pool.files.items():
        target = into / image
        target.parent.mkdir(parents=True, exist_ok=True)
        if entry.link is not None:
            if not target.is_symlink() and not target.exists():
                link = entry.link
                if link.startswith("/"):
                    link = os.path.relpath(into / link.lstrip("/"), target.parent)
                target.symlink_to(link)
        elif not target.exists():
            try:
                os.link(entry.host, target)
            except OSError:
                shutil.copy2(entry.host, target)


def compress(raw: bytes, method: str, zstd_level: int = 19) -> bytes:
    if method == "xz":
        # CRC32: the kernel's xz decoder does not check SHA-256 or CRC64.
        filters = [
            {"id": lzma.FILTER_X86},
            {"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME},
        ]
        return lzma.compress(raw, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32, filters=filters)
    # zstd's output does not depend on the thread count (checked: -T1 == -T2).
    done = subprocess.run(
        ["/usr/bin/zstd", "-q", f"-{zstd_level}", "-T0", "--no-progress", "-c"],
        input=raw,
        capture_output=True,
        timeout=900,
        check=True,
    )
    return done.stdout


def built_from_source(lock: Lock, cache: Path) -> list[tuple[str, Path, str]]:
    """The programs built from their pinned Debian sources: (image path, built
    file, origin)."""
    builds: list[tuple[str, dict[str, Path]]] = [
        # no SQLite/TOFU, LDAP, TLS or dirmngr
        (GNUPG_SOURCE, build_gnupg(lock, cache)),
        # no Xen dom0 libraries
        (KEXEC_SOURCE, build_kexec(lock, cache)),
        # only the applets the image uses
        (BUSYBOX_SOURCE, {BUSYBOX: build_busybox(lock, cache)}),
    ]
    return [
        (path, built, f"{source} {lock.deb_source(source).version} (built from source)")
        for source, programs in builds
        for path, built in programs.items()
    ]


def add_python_and_programs(
    image: Image,
    pool: Pool,
    lock: Lock,
    args: argparse.Namespace,
    work: Path,
    programs: list[str],
) -> int:
    """tpm2-pytss from source, the frozen interpreter (or the import closure as
    sourceless .pyc), the programs, and every shared library they, the
    extension modules and the dlopen()ed libraries need, resolved inside the
    pool. Returns the unresolved optional imports' count (for build-info)."""
    root = work / "root"
    merged_root(pool, root)
    pin = lock.source("tpm2-pytss")
    wheel = build_tpm2_pytss(
        pin,
        fetch_source(pin, args.cache),
        args.cache,
        work / "wheel" if args.rebuild_wheel else None,
    )
    origins = {p: f.origin for p, f in pool.files.items()}
    closure = import_closure(root, wheel, REPO, origins)
    if args.interpreter == "frozen":
        python = frozen_interpreter(lock, args.cache, closure, root, work / "freeze", args.optimize)
    else:
        python = compile_sources(root, closure.files, work / "pyc", args.optimize)
    host_paths = pool.host_paths()
    not_from_pool: set[str] = set()
    for path, built, origin in built_from_source(lock, args.cache):
        image.add(Entry.file(path, built.read_bytes(), True), origin)
        host_paths[path] = str(built)
        not_from_pool.add(path)
    extension_modules = []
    for f in python:
        image.add(Entry.file(f.image, f.host.read_bytes(), f.image == PYTHON), f.origin)
        if f.image == PYTHON or f.image.endswith(".so"):
            host_paths[f.image] = str(f.host)
            not_from_pool.add(f.image)
        if f.image.endswith(".so"):
            extension_modules.append(f.image)
    for path in [*programs, *DLOPENED]:
        if path not in not_from_pool:
            image.add_from_pool(pool, path)
    for lib in sorted(elf.closure([*programs, *DLOPENED, *extension_modules], host_paths)):
        image.add_from_pool(pool, lib)
    for applet in BUSYBOX_APPLETS:
        image.add(Entry.symlink(f"bin/{applet}", "busybox"), "generated: busybox applet")
    return len(closure.missing)


def add_kernel_modules(image: Image, pool: Pool, kernel: dict[str, object]) -> None:
    """The board's modules and their dependencies, and the order to load them in."""
    release = kernel["release"]
    modules_dir = pool.files[f"lib/modules/{release}/modules.builtin"].host.parent
    wanted = kernel["modules"]
    assert isinstance(wanted, list)
    load_list = []
    for ko in kmod.load_order(modules_dir, [str(m) for m in wanted]):
        rel = f"lib/modules/{release}/{ko.relative_to(modules_dir).as_posix()}"
        image.add_from_pool(pool, rel)
        load_list.append("/" + rel)
    image.add(
        Entry.file("etc/modules.load", ("\n".join(load_list) + "\n").encode()),
        "generated: board kernel modules",
    )


def image_settings(args: argparse.Namespace) -> Settings:
    """The settings the image will read, with the runtime's own parser."""
    from runtime.config import Layer, load_settings

    layers = [Layer("project defaults", str(REPO / "etc" / "defaults.config"))]
    board_config = board_file(args.board).parent / "config"
    if board_config.exists():
        layers.append(Layer("board defaults", str(board_config)))
    if args.user_config:
        layers.append(Layer("your settings", str(args.user_config)))
    return load_settings(layers).settings


def init_values(settings: Settings, owner_key: bool) -> dict[str, str]:
    """What /init reads before the runtime runs (its init_value function): the
    runtime's reading of the settings, never a second parser in shell."""
    from runtime.devices.serial_line import build_refusal

    serial = settings.boot_recovery_serial or ""
    token = settings.hotp_serial_device if settings.hotp_enabled else None
    if build_refusal(serial, owner_key, token):
        serial = ""  # the runtime's main menu says why
    return {"recovery-key": settings.recovery_key, "recovery-serial": serial}


def add_settings_for_init(image: Image, lock: Lock, args: argparse.Namespace) -> None:
    """/init's two values, and the keyboard layout compiled (tools/initrd/keymap.py)."""
    settings = image_settings(args)
    for name, value in init_values(settings, bool(args.owner_key)).items():
        image.add(
            Entry.file(f"{in_image(INIT_VALUES_DIR)}/{name}", (value + "\n").encode()),
            "generated: settings for /init",
        )
    if settings.keyboard_keymap:
        layout = keymap.compile_keymap(settings.keyboard_keymap, lock, args.cache)
        image.add(Entry.file(keymap.IMAGE_PATH, layout), "generated: keymap")


def add_overlay_and_config(image: Image, args: argparse.Namespace, epoch: int) -> None:
    """Files placed verbatim, the board (TOML as written, JSON for the runtime),
    the owner material, mount points and the console device."""
    overlay = REPO / "initrd_overlay"
    for path in sorted(overlay.rglob("*")):
        rel = path.relative_to(overlay).as_posix()
        if path.is_file() and path.name != "README.md":
            executable = bool(path.stat().st_mode & stat.S_IXUSR)
            image.add(Entry.file(rel, path.read_bytes(), executable), "overlay")
    image.add(Entry.file("etc/board.toml", board_file(args.board).read_bytes()), "generated: board")
    board_json = json.dumps(load_board_table(args.board), sort_keys=True, indent=1)
    image.add(Entry.file("etc/board.json", board_json.encode() + b"\n"), "generated: board")
    if args.owner_key:
        image.add(
            Entry.file(in_image(OWNER_KEY_PATH), args.owner_key.read_bytes()),
            "generated: owner key",
        )
    if args.owner_secret_key:
        # test images only: signing /boot without an OpenPGP card (QEMU tests)
        image.add(
            Entry.file(in_image(OWNER_SECRET_KEY_PATH), args.owner_secret_key.read_bytes()),
            "generated: owner SECRET key (test image)",
        )
    # The settings' layers (runtime/config/loading.py): project, board, owner.
    image.add(
        Entry.file(in_image(DEFAULTS_CONFIG_PATH), (REPO / "etc" / "defaults.config").read_bytes()),
        "settings",
    )
    board_config = board_file(args.board).parent / "config"
    if board_config.exists():
        image.add(
            Entry.file(in_image(BOARD_CONFIG_PATH), board_config.read_bytes()), "settings: board"
        )
    if args.user_config:
        image.add(
            Entry.file(in_image(USER_CONFIG_PATH), args.user_config.read_bytes()),
            "generated: user config",
        )
    # The clock check warns when the clock is before the image's source date.
    info = {"board": args.board, "source_date_epoch": epoch, "version": package_version()}
    image.add(
        Entry.file(in_image(BUILD_INFO_PATH), (json.dumps(info, sort_keys=True) + "\n").encode()),
        "generated: build",
    )
    for directory in ("dev", "proc", "sys", "tmp", "run", "mnt", "boot", "root"):
        image.add(Entry.directory(directory), "generated: mount point")
    # The kernel opens /dev/console before /init runs, before devtmpfs.
    image.add(Entry.char_device("dev/console", 5, 1), "generated: console")


def write_outputs(
    members: list[Member], args: argparse.Namespace, epoch: int, extra: dict[str, object]
) -> dict[str, object]:
    """The archive, compressed; the manifest, the size report and build-info."""
    buffer = io.BytesIO()
    write_archive(buffer, (m.entry for m in members), epoch)
    raw = buffer.getvalue()
    # xz (slow) runs beside zstd: lzma releases the GIL.
    with ThreadPoolExecutor(max_workers=2) as executor:
        xz_job = (
            None
            if args.quick and args.compression != "xz"
            else executor.submit(compress, raw, "xz")
        )
        zstd_data = compress(raw, "zstd", args.zstd_level)
        xz_data = xz_job.result() if xz_job is not None else None
    chosen = xz_data if args.compression == "xz" else zstd_data
    assert chosen is not None
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    initrd = out / f"initrd.cpio.{'xz' if args.compression == 'xz' else 'zst'}"
    _atomic_write(initrd, chosen)
    _atomic_write(out / "manifest.tsv", manifest(members).encode())
    xz_size = len(xz_data) if xz_data is not None else None
    report = size_report(
        members, len(raw), xz_size, len(zstd_data), per_component_xz=not args.quick
    )
    _atomic_write(out / "size-report.txt", report.encode())
    info = {
        "board": args.board,
        "initrd": initrd.name,
        "sha256": hashlib.sha256(chosen).hexdigest(),
        "raw_bytes": len(raw),
        "xz_bytes": xz_size,
        "zstd_bytes": len(zstd_data),
        "files": sum(1 for m in members if stat.S_ISREG(m.entry.mode)),
        **extra,
    }
    _atomic_write(out / "build-info.json", (json.dumps(info, indent=2) + "\n").encode())
    return info


def build(args: argparse.Namespace) -> dict[str, object]:
    started = time.monotonic()
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH", DEFAULT_EPOCH))
    table = load_board_table(args.board)
    board = parse_board_table(table)  # the runtime's own checks, at build time
    kernel = table["kernel"]
    assert isinstance(kernel, dict)
    lock = load_lock()
    groups, _ = wanted_packages()
    # Other boards' kernels, the firmware and the OS disk's busybox stay out.
    wanted_debs = [
        n
        for n in groups
        if not n.startswith(("linux-image", "ovmf", "busybox-static")) and n not in BUILD_ONLY
    ]
    wanted_debs.append(str(kernel["package"]))
    print(f"build: {len(wanted_debs)} Debian packages from the lock", flush=True)
    pool = Pool()
    for name in wanted_debs:
        pool.add_package(lock.deb(name), args.cache)

    image = Image()
    with tempfile.TemporaryDirectory(prefix="initrd-build-") as tmp:
        missing = add_python_and_programs(image, pool, lock, args, Path(tmp), image_programs(board))
        add_kernel_modules(image, pool, kernel)
    add_overlay_and_config(image, args, epoch)
    add_settings_for_init(image, lock, args)
    return write_outputs(
        list(image.members.values()),
        args,
        epoch,
        {
            "unresolved_optional_imports": missing,
            "seconds": round(time.monotonic() - started, 1),
        },
    )


def package_version() -> str:
    """The version pyproject.toml gives the package: the runtime shows it (runtime/version.py)."""
    with (REPO / "pyproject.toml").open("rb") as f:
        return str(tomllib.load(f)["project"]["version"])


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--board", default="qemu-swtpm")
    parser.add_argument("--out", type=Path, help="output directory (default build/<board>)")
    parser.add_argument(
        "--compression", choices=["zstd", "xz"], help="initramfs compression (default: the board's)"
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=default_cache_dir(),
        help="download cache (default ~/.cache/heads-runtime)",
    )
    parser.add_argument(
        "--owner-key", type=Path, help="owner's public key (ASCII-armoured) to place in the image"
    )
    parser.add_argument(
        "--owner-secret-key",
        type=Path,
        help="TEST IMAGES ONLY: the owner's secret key, so the firmware can "
        "sign /boot without an OpenPGP card (anyone with the image can)",
    )
    parser.add_argument(
        "--user-config",
        type=Path,
        help="owner settings (Heads config.user format) to place in the image",
    )
    parser.add_argument(
        "--interpreter",
        choices=["frozen", "debian"],
        default="frozen",
        help="frozen: CPython built from the pinned source with every module frozen in "
        "(default); debian: Debian's python3.11 with a tree of .pyc files (to compare)",
    )
    parser.add_argument(
        "--optimize",
        type=int,
        choices=[0, 1, 2],
        default=0,
        help="Python -O level the modules are compiled at (default 0)",
    )
    parser.add_argument(
        "--zstd-level",
        type=int,
        choices=range(1, 20),
        metavar="1-19",
        help="zstd level (default: the board's; 19 is 15x slower than 9 and 12%% smaller)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="skip the slow xz figures of the size report (same initramfs)",
    )
    parser.add_argument(
        "--rebuild-wheel",
        action="store_true",
        help="compile tpm2-pytss again (not taken from, nor put in, the cache)",
    )
    args = parser.parse_args(argv)
    if args.out is None:
        args.out = REPO / "build" / args.board
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        initrd = load_board_table(args.board).get("initrd", {})
        assert isinstance(initrd, dict)
        args.compression = args.compression or initrd.get("compression", "zstd")
        args.zstd_level = args.zstd_level or int(initrd.get("zstd_level", 19))
        info = build(args)
    except (
        BuildError,
        LockError,
        FetchError,
        PythonTreeError,
        FreezeError,
        SourceBuildError,
        elf.MissingLibrary,
        kmod.ModuleError,
        UnknownBoard,
        ConfigError,
        keymap.KeymapError,
    ) as err:
        print(f"build_initrd: {err}", file=sys.stderr)
        return 1
    print(f"build: {args.out / str(info['initrd'])} sha256 {info['sha256']}")
    print((args.out / "size-report.txt").read_text().split("\n\n")[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
