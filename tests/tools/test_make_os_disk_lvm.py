"""The LVM test OS disk (tools/make_os_disk.py --luks --lvm), on the host with
no lvm, loop device or device-mapper: its partitions, the physical volume's
label and metadata (read by the layouts of lvm2's format_text), the LUKS2
container at the first extent (checked by the host's cryptsetup on the
extracted bytes), the LVM target's initrd (lvm and everything it loads, the
crypttab naming cryptvault, the activation before the crypttab files) and
that the disks without the option have none of it."""

from __future__ import annotations

import gzip
import io
import json
import lzma
import posixpath
import struct
import subprocess
from pathlib import Path

import pytest
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile

from runtime.disk.os_initrd_crypttabs import InitrdCrypttabs, crypttabs_in_initrd
from tests.support.host_programs import sbin
from tests.support.luks_images import key_verdict
from tools import make_os_disk as osd
from tools import os_disk_lvm as lvm
from tools.initrd.cpio import Entry, read_archive
from tools.initrd.elf import LIBRARY_DIRS
from tools.os_disk_common import TARGET_END

pytestmark = pytest.mark.build  # the locked packages, from the download cache

EXTRA_KEY = bytes(range(1, 256, 2))  # 128 bytes, as Heads' DUK
S_IFMT, S_IFLNK, S_IFDIR = 0o170000, 0o120000, 0o040000


def _read(image: Path, offset: int, size: int) -> bytes:
    with image.open("rb") as f:
        f.seek(offset)
        return f.read(size)


@pytest.fixture(scope="module")
def lvm_disk(tmp_path_factory: pytest.TempPathFactory) -> osd.OsDisk:
    out = tmp_path_factory.mktemp("lvm-disk") / "lvm.img"
    return osd.make_os_disk(out, luks=True, lvm=True, extra_key=EXTRA_KEY)


def test_lvm_disk_partitions(lvm_disk: osd.OsDisk) -> None:
    assert lvm_disk.luks == osd.LUKS_LVM_CONTAINERS == (*osd.LUKS_CONTAINERS, osd.LUKS_VAULT)
    assert lvm_disk.image.stat().st_size == osd.LVM_DISK_SIZE
    assert [p.name for p in lvm_disk.image.parent.iterdir()] == ["lvm.img"]  # no leftovers
    table = json.loads(
        subprocess.run(
            [sbin("sfdisk"), "--json", str(lvm_disk.image)],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
    )["partitiontable"]
    parts = table["partitions"]
    assert [p["name"] for p in parts] == ["boot", "root", "cryptroot", "cryptdata", "osvg"]
    for container in osd.LUKS_CONTAINERS:  # as on the LUKS disk
        part = parts[container.partition - 1]
        assert (part["start"] * osd.SECTOR, part["size"] * osd.SECTOR) == (
            container.offset,
            container.size,
        )
    pv = parts[lvm.LVM_PARTITION - 1]
    assert pv["node"].endswith("5")
    assert (pv["start"] * osd.SECTOR, pv["size"] * osd.SECTOR) == (
        lvm.LVM_PART_OFFSET,
        lvm.LVM_PART_SIZE,
    )
    assert (pv["type"], pv["uuid"]) == (lvm.GPT_TYPE_LINUX_LVM, lvm.LVM_PART_UUID)
    # the container: the logical volume, which fills the physical volume after pe_start
    vault = osd.LUKS_VAULT
    assert (vault.partition, vault.part_uuid) == (lvm.LVM_PARTITION, lvm.LVM_PART_UUID)
    assert vault.offset == lvm.LVM_PART_OFFSET + lvm.LVM_PE_START
    assert vault.offset + vault.size == lvm.LVM_PART_OFFSET + lvm.LVM_PART_SIZE
    assert len({c.uuid for c in lvm_disk.luks}) == 3
    # what a guest with the disk as its first virtio disk calls them
    assert [c.guest_device for c in lvm_disk.luks] == [
        "/dev/vda3",
        "/dev/vda4",
        "/dev/mapper/osvg-cryptvault",
    ]
    assert vault.guest_partition == "/dev/vda5"


def test_lvm_disk_physical_volume(lvm_disk: osd.OsDisk) -> None:
    head = _read(lvm_disk.image, lvm.LVM_PART_OFFSET, lvm.LVM_PE_START)
    assert head == lvm.pv_template()
    # label_header and pv_header (lvm2 lib/label/label.h, format_text/layout.h)
    label = head[osd.SECTOR : 2 * osd.SECTOR]
    assert label[:8] == b"LABELONE"
    assert struct.unpack_from("<Q", label, 8)[0] == 1  # the sector it is in
    assert label[24:32] == b"LVM2 001"
    assert label[32:64] == lvm.LVM_PV_UUID.replace("-", "").encode()
    device_size, data_offset, data_size = struct.unpack_from("<3Q", label, 64)
    assert (device_size, data_offset, data_size) == (lvm.LVM_PART_SIZE, lvm.LVM_PE_START, 0)
    assert label[88:104] == bytes(16)  # end of the data areas
    mda_offset, mda_size = struct.unpack_from("<2Q", label, 104)
    # the metadata area's header and its current metadata text
    mda = head[mda_offset : mda_offset + mda_size]
    assert mda[4:20] == b" LVM2 x[5A%r0N*>"
    assert struct.unpack_from("<IQQ", mda, 20) == (1, mda_offset, mda_size)
    text_offset, text_size = struct.unpack_from("<2Q", mda, 40)
    text = mda[text_offset : text_offset + text_size].rstrip(b"\0").decode()
    assert text.startswith("osvg {")
    extent_sectors = lvm.LVM_EXTENT_SIZE // osd.SECTOR
    extents = lvm.LVM_LV_SIZE // lvm.LVM_EXTENT_SIZE
    for line in (
        f"extent_size = {extent_sectors}",
        f'id = "{lvm.LVM_PV_UUID}"',
        f"dev_size = {lvm.LVM_PART_SIZE // osd.SECTOR}",
        f"pe_start = {lvm.LVM_PE_START // osd.SECTOR}",
        f"pe_count = {extents}",
        "cryptvault {",
        "start_extent = 0",
        f"extent_count = {extents}",
        '"pv0", 0',
    ):
        assert f"\n{line}\n" in text.replace("\t", ""), line
    assert lvm.LVM_PE_START + extents * lvm.LVM_EXTENT_SIZE == lvm.LVM_PART_SIZE


def test_lvm_disk_container_in_the_logical_volume(lvm_disk: osd.OsDisk, tmp_path: Path) -> None:
    vault = osd.LUKS_VAULT
    image = tmp_path / "cryptvault.luks"
    image.write_bytes(_read(lvm_disk.image, vault.offset, vault.size))
    header = image.read_bytes()[:208]
    assert header[:6] == b"LUKS\xba\xbe"
    assert struct.unpack_from(">H", header, 6)[0] == 2
    assert header[168:208].rstrip(b"\0").decode() == vault.uuid
    dump = subprocess.run(
        [sbin("cryptsetup"), "luksDump", str(image)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "Version:       \t2" in dump
    assert f"UUID:          \t{vault.uuid}" in dump
    assert "PBKDF:      pbkdf2" in dump
    opened = key_verdict(image, osd.DISK_RECOVERY_PASSPHRASE.encode())
    assert opened.returncode == 0, opened.stderr
    assert "Key slot 0 unlocked." in opened.stdout
    opened = key_verdict(image, EXTRA_KEY)
    assert opened.returncode == 0, opened.stderr
    assert f"Key slot {vault.duk_slot} unlocked." in opened.stdout
    assert vault.duk_slot == 31
    assert key_verdict(image, b"another key").returncode == 2


def test_lvm_disk_boots_the_lvm_target(lvm_disk: osd.OsDisk, tmp_path: Path) -> None:
    boot_fs = tmp_path / "boot.ext4"
    boot_fs.write_bytes(_read(lvm_disk.image, lvm_disk.boot_offset, lvm_disk.boot_size))
    initrd = subprocess.run(
        [sbin("debugfs"), "-R", f"cat /initrd.img-{lvm_disk.kernel_release}", str(boot_fs)],
        capture_output=True,
        timeout=60,
        check=True,
    ).stdout
    # also: the LVM target is the same bytes every time
    assert initrd == osd.luks_target_initrd(lvm=True)
    entries = {entry.path: entry for entry in read_archive(gzip.decompress(initrd))}
    assert entries["init"].data == osd.LUKS_LVM_TARGET_INIT.encode()
    assert entries["cryptroot/crypttab"].data == osd.os_crypttab(osd.LUKS_LVM_CONTAINERS)
    assert entries["cryptroot/crypttab"].data.decode().splitlines() == [
        f"cryptroot UUID={osd.LUKS_ROOT.uuid} none luks,discard",
        f"cryptdata UUID={osd.LUKS_DATA.uuid} none luks,discard",
        f"cryptvault UUID={osd.LUKS_VAULT.uuid} none luks,discard",
    ]
    # as the firmware reads it when the owner saves a default boot with the DUK
    assert crypttabs_in_initrd(initrd) == InitrdCrypttabs(
        {"cryptroot/crypttab": osd.os_crypttab(osd.LUKS_LVM_CONTAINERS)}, ("gzip",)
    )

    def resolve(path: str) -> Entry:
        for _ in range(10):
            entry = entries[path]
            if entry.mode & S_IFMT != S_IFLNK:
                return entry
            target = entry.data.decode()
            path = (
                target.lstrip("/")
                if target.startswith("/")
                else posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
            )
        raise AssertionError(f"symlink loop at {path}")

    # Every library every program in the archive loads is in it.
    assert entries["sbin/lvm"].mode & 0o111
    for path, entry in entries.items():
        if entry.mode & S_IFMT == S_IFLNK or entry.data[:4] != b"\x7fELF":
            continue
        elf = ELFFile(io.BytesIO(entry.data))
        for section in elf.iter_sections():
            if isinstance(section, DynamicSection):
                for tag in section.iter_tags():
                    if tag.entry.d_tag == "DT_NEEDED":
                        assert any(
                            f"{d}/{tag.needed}" in entries
                            and resolve(f"{d}/{tag.needed}").data[:4] == b"\x7fELF"
                            for d in LIBRARY_DIRS
                        ), f"{path} needs {tag.needed}"

    load = entries["etc/modules.load"].data.decode().split()
    names = [Path(m).name.removesuffix(".ko").replace("-", "_") for m in load]
    assert names.index("dm_mod") < names.index("dm_crypt")
    assert len(names) == len(set(names))


def test_lvm_target_init_activates_before_the_crypttabs(tmp_path: Path) -> None:
    init = osd.LUKS_LVM_TARGET_INIT
    script = tmp_path / "init"
    script.write_text(init)
    checked = subprocess.run(
        [str(osd.busybox_path()), "sh", "-n", str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr
    assert "@LVM" not in init
    activate = init.index("/sbin/lvm vgchange -a ay --sysinit")
    assert init.index("/bin/busybox insmod") < activate
    assert activate < init.index("for crypttab in /cryptroot/crypttab /etc/crypttab; do")
    assert lvm.LVM_TARGET_CONFIG in init
    for setting in ("udev_sync = 0", "udev_rules = 0", "obtain_device_list_from_udev = 0"):
        assert setting in lvm.LVM_TARGET_CONFIG
    assert 'echo "OS-TARGET: lvm $group active"' in init
    assert 'echo "OS-TARGET: lvm not activated' in init
    # a UUID= source among the mapper nodes and dm devices, before sysfs' list
    mapper = init.index("for dev in /dev/mapper/* /dev/dm-*; do")
    assert mapper < init.index("for block in /sys/class/block/*; do")
    assert init.startswith(osd.TARGET_INIT.removesuffix(TARGET_END))
    assert init.endswith(TARGET_END)


def test_the_other_disks_have_no_lvm(tmp_path: Path) -> None:
    # The LUKS target: no lvm program, activation or mapper sources, and no
    # cryptvault; its /init is the LVM one without the LVM parts.
    init = osd.LUKS_TARGET_INIT
    assert "lvm" not in init and "/dev/mapper/*" not in init and "@LVM" not in init
    removed = osd.LUKS_LVM_TARGET_INIT.replace(lvm.TARGET_LVM_ACTIVATE, "")
    assert removed.replace(lvm.TARGET_LVM_SOURCES, "") == init
    entries = {e.path for e in read_archive(gzip.decompress(osd.luks_target_initrd()))}
    assert "sbin/lvm" not in entries
    assert not any("libdevmapper-event" in path for path in entries)
    assert b"cryptvault" not in osd.os_crypttab()
    assert osd.LUKS_DISK_SIZE == lvm.LVM_PART_OFFSET + osd.MIB  # the LVM part comes after

    with pytest.raises(osd.OsDiskError, match="lvm=True needs luks=True"):
        osd.make_os_disk(tmp_path / "disk.img", lvm=True)
    assert osd.main(["--out", str(tmp_path / "disk.img"), "--lvm"]) == 1
    assert not (tmp_path / "disk.img").exists()


def test_pv_template_is_checked(tmp_path: Path) -> None:
    template = lvm.pv_template()
    assert len(template) == lvm.LVM_PE_START
    assert lvm.LVM_TEMPLATE.stat().st_size < 8192  # a few KB in the repository
    bad = tmp_path / "bad.xz"
    bad.write_bytes(b"not xz")
    with pytest.raises(osd.OsDiskError, match="LVM template"):
        lvm.pv_template(bad)
    other = tmp_path / "other.xz"
    other.write_bytes(lzma.compress(template[:-1] + b"x", format=lzma.FORMAT_XZ))
    with pytest.raises(osd.OsDiskError, match=r"regenerate it with tools/make_lvm_template\.py"):
        lvm.pv_template(other)


@pytest.mark.parametrize(
    ("output", "status", "expected"),
    [
        ('  1 logical volume(s) in volume group "osvg" now active', 0, ["lvm osvg active"]),
        (
            '  1 logical volume(s) in volume group "osvg" now active\n'
            '  2 logical volume(s) in volume group "other-vg" now active',
            0,
            ["lvm osvg active", "lvm other-vg active"],
        ),
        ("", 0, ["lvm not activated no volume group"]),
        (
            "  /dev/mapper/control: open failed: No such device\n"
            '  0 logical volume(s) in volume group "osvg" now active',
            5,
            ["lvm not activated lvm exit 5: /dev/mapper/control: open failed: No such device"],
        ),
    ],
)
def test_lvm_activation_lines(
    output: str, status: int, expected: list[str], tmp_path: Path
) -> None:
    """The LVM part of the target's /init under busybox sh, with an lvm that
    prints what lvm 2.03.16's vgchange does."""
    busybox = str(osd.busybox_path())
    fake = tmp_path / "lvm"
    calls = tmp_path / "calls"
    fake.write_text(
        f'#!{busybox} sh\necho "$*" >>{calls}\ncat <<"END"\n{output}\nEND\nexit {status}\n'
    )
    fake.chmod(0o755)
    script = (
        lvm.TARGET_LVM_ACTIVATE.replace("/sbin/lvm", str(fake))
        .replace("/bin/busybox sleep 1", ":")
        .replace("/bin/busybox", busybox)
    )
    done = subprocess.run(
        [busybox, "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"OS-TARGET: {line}" for line in expected]
    invocations = calls.read_text().splitlines()
    assert invocations[0] == f"vgchange -a ay --sysinit --config {lvm.LVM_TARGET_CONFIG}"
    assert len(invocations) == (5 if expected == ["lvm not activated no volume group"] else 1)
