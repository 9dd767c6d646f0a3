"""Finding LUKS containers in a fake sysfs tree, regular files standing in
for the /dev nodes; one real cryptsetup image where cryptsetup is installed."""

from __future__ import annotations

import errno
import os
import socket
import subprocess
from pathlib import Path

import pytest

from runtime.disk.luks_devices import (
    LuksDevice,
    LuksScan,
    UnsafeDevice,
    find_luks_devices,
    is_lvm_member,
    read_head,
    scan,
)

UUID1 = "11111111-2222-3333-4444-555555555555"
UUID2 = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
CRYPTSETUP = "/sbin/cryptsetup"


def luks_head(version: int = 2, uuid: str = UUID2, *, magic: bytes = b"LUKS\xba\xbe") -> bytes:
    head = bytearray(8192)
    head[0:6] = magic
    head[6:8] = version.to_bytes(2, "big")
    head[168 : 168 + len(uuid)] = uuid.encode("latin-1")
    if version == 2:
        head[8:16] = (16384).to_bytes(8, "big")
        head[24:31] = b"my disk"
        if magic != b"LUKS\xba\xbe":
            head[256:264] = (16384).to_bytes(8, "big")
    return bytes(head)


class Tree:
    """A sysfs /sys/class/block and a /dev under one tmp folder."""

    def __init__(self, root: Path) -> None:
        self.sys = root / "sys" / "class" / "block"
        self.dev = root / "dev"
        self.sys.mkdir(parents=True)
        self.dev.mkdir()

    def add(
        self,
        name: str,
        content: bytes | None = b"",
        *,
        sectors: int | str = 40960,
        partition: bool = False,
        devname: str | None = None,
        extra: dict[str, str] | None = None,
    ) -> Path:
        base = self.sys / name
        base.mkdir()
        (base / "size").write_text(f"{sectors}\n")
        devtype = "partition" if partition else "disk"
        (base / "uevent").write_text(
            f"MAJOR=8\nMINOR=0\nDEVNAME={devname or name}\nDEVTYPE={devtype}\n"
        )
        if partition:
            (base / "partition").write_text("1\n")
        for attr, value in (extra or {}).items():
            (base / attr).parent.mkdir(parents=True, exist_ok=True)
            (base / attr).write_text(value)
        node = self.dev / (devname or name)
        if content is not None:
            node.parent.mkdir(parents=True, exist_ok=True)
            node.write_bytes(content)
        return node

    def scan(self) -> LuksScan:
        return scan(str(self.sys), str(self.dev))

    def found(self) -> list[LuksDevice]:
        return find_luks_devices(str(self.sys), str(self.dev))


@pytest.fixture
def tree(tmp_path: Path) -> Tree:
    return Tree(tmp_path)


def test_luks_partitions_and_whole_disks_are_found_in_name_order(tree: Tree) -> None:
    tree.add("sda", b"\0" * 8192)  # a partition table, not LUKS
    tree.add("sda1", b"\0" * 8192, partition=True)
    tree.add("sda2", luks_head(2, UUID2), partition=True, sectors=2048)
    tree.add("nvme0n1", luks_head(1, UUID1), sectors=100)
    assert tree.found() == [
        LuksDevice(str(tree.dev / "nvme0n1"), "nvme0n1", 1, UUID1, 100 * 512, "", False),
        LuksDevice(str(tree.dev / "sda2"), "sda2", 2, UUID2, 2048 * 512, "my disk", True),
    ]


def test_opened_containers_ram_disks_and_unbacked_loops_are_skipped(tree: Tree) -> None:
    head = luks_head()
    tree.add("dm-0", head, extra={"dm/uuid": "CRYPT-LUKS2-aaaa-luks-aaaa\n"})
    tree.add("dm-1", head, extra={"dm/uuid": "LVM-abcdef\n"})  # LUKS on LVM: kept
    tree.add("loop0", head)
    tree.add("loop1", head, extra={"loop/backing_file": "/images/disk.img\n"})
    tree.add("ram0", head)
    tree.add("zram0", head)
    tree.add("nvme1c1n1", head, extra={"hidden": "1\n"})
    assert [d.name for d in tree.found()] == ["dm-1", "loop1"]


@pytest.mark.parametrize("sectors", [0, "", "x", "-5", "١٢"])
def test_an_empty_or_odd_size_is_skipped(tree: Tree, sectors: int | str) -> None:
    tree.add("sdb", luks_head(), sectors=sectors)
    assert tree.found() == []


def test_a_node_named_elsewhere_by_devname_is_read_there(tree: Tree) -> None:
    tree.add("cciss!c0d0", luks_head(), devname="cciss/c0d0")
    [found] = tree.found()
    assert found.path == str(tree.dev / "cciss" / "c0d0")


@pytest.mark.parametrize("devname", ["../../etc/shadow", "/etc/shadow", "a//b", "./sda"])
def test_a_devname_leaving_dev_is_skipped(tree: Tree, devname: str) -> None:
    tree.add("sdc", None, devname=devname)
    assert tree.scan().found == () and tree.scan().refused == ()


def test_a_node_gone_from_dev_is_skipped(tree: Tree) -> None:
    tree.add("sdd", None)
    tree.add("sde", luks_head())
    assert [d.name for d in tree.found()] == ["sde"]


def test_a_node_that_cannot_be_read_is_skipped(tree: Tree, monkeypatch: pytest.MonkeyPatch) -> None:
    tree.add("sde", luks_head())

    def failing(fd: int, size: int, offset: int) -> bytes:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "pread", failing)
    assert tree.scan().found == () and tree.scan().refused == ()
    with pytest.raises(UnsafeDevice, match="cannot be read"):
        read_head(str(tree.dev / "sde"))


@pytest.mark.timeout(20)
def test_links_fifos_sockets_and_folders_are_skipped_unopened(tree: Tree, tmp_path: Path) -> None:
    real = tmp_path / "real.img"
    real.write_bytes(luks_head())
    tree.add("sdf", None)
    (tree.dev / "sdf").symlink_to(real)
    tree.add("sdg", None)
    os.mkfifo(tree.dev / "sdg")
    tree.add("sdh", None)
    (tree.dev / "sdh").mkdir()
    tree.add("sdi", None)
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(tree.dev / "sdi"))
    try:
        assert tree.scan().found == ()
    finally:
        server.close()


def test_a_refused_header_is_reported_not_found(tree: Tree) -> None:
    tree.add("sdj", luks_head(2, "not;a uuid"))
    tree.add("sdk", luks_head(2)[:300])  # truncated
    result = tree.scan()
    assert result.found == ()
    assert [path for path, _ in result.refused] == [str(tree.dev / "sdj"), str(tree.dev / "sdk")]
    assert "UUID" in result.refused[0][1] and "cut short" in result.refused[1][1]


def test_a_secondary_only_header_is_neither_found_nor_refused(tree: Tree) -> None:
    tree.add("sdl", luks_head(2, magic=b"SKUL\xba\xbe"))
    assert tree.scan().found == () and tree.scan().refused == ()


def test_odd_names_in_sysfs_are_ignored(tree: Tree) -> None:
    tree.add("sd\x1bm", luks_head())
    assert tree.found() == []


def test_no_sysfs_gives_nothing(tmp_path: Path) -> None:
    assert find_luks_devices(str(tmp_path / "none"), str(tmp_path)) == []


def test_read_head_reads_at_most_what_is_asked(tmp_path: Path) -> None:
    big = tmp_path / "big"
    big.write_bytes(b"a" * 10_000)
    assert read_head(str(big)) == b"a" * 4096
    assert read_head(str(big), 10) == b"a" * 10
    small = tmp_path / "small"
    small.write_bytes(b"abc")
    assert read_head(str(small)) == b"abc"


@pytest.mark.timeout(20)
def test_read_head_refuses_what_is_not_a_disk(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    link = tmp_path / "link"
    link.symlink_to(fifo)
    for path in (fifo, link, tmp_path, Path("/dev/null")):
        with pytest.raises(UnsafeDevice) as caught:
            read_head(str(path))
        assert "not a disk" in str(caught.value)
    with pytest.raises(FileNotFoundError):
        read_head(str(tmp_path / "gone"))


@pytest.mark.skipif(not os.access(CRYPTSETUP, os.X_OK), reason="cryptsetup is not installed")
@pytest.mark.parametrize("version", [1, 2])
def test_a_real_cryptsetup_image_is_found(tree: Tree, version: int) -> None:
    node = tree.add(f"vd{version}", None, sectors=40960)
    with open(node, "wb") as f:
        f.truncate(20 << 20)
    subprocess.run(
        [
            CRYPTSETUP,
            "luksFormat",
            "--batch-mode",
            f"--type=luks{version}",
            "--pbkdf=pbkdf2",
            "--pbkdf-force-iterations=1000",
            "--key-file=-",
            str(node),
        ],
        input=b"passphrase",
        check=True,
        capture_output=True,
        timeout=60,
    )
    said = subprocess.run(
        [CRYPTSETUP, "luksUUID", str(node)], check=True, capture_output=True, timeout=30
    )
    [found] = tree.found()
    assert (found.version, found.uuid) == (version, said.stdout.decode().strip())
    assert found.size == 20 << 20


def test_a_character_device_is_never_even_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A name from /boot may be /dev/watchdog, which an open arms: refused
    from its mode alone."""
    opened: list[str] = []
    real_open = os.open

    def recording_open(path: str, *args: object, **kwargs: object) -> int:
        opened.append(str(path))
        return real_open(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", recording_open)
    with pytest.raises(UnsafeDevice, match="not a disk"):
        read_head("/dev/null")
    assert opened == []


def lvm_label(sector: int = 1) -> bytes:
    """lvm(8)'s physical volume label (label_header: id, sector, crc, offset, type)."""
    head = bytearray(8192)
    at = sector * 512
    head[at : at + 8] = b"LABELONE"
    head[at + 8 : at + 16] = sector.to_bytes(8, "little")
    head[at + 20 : at + 24] = (32).to_bytes(4, "little")
    head[at + 24 : at + 32] = b"LVM2 001"
    return bytes(head)


def test_lvm_physical_volumes_are_named_apart(tree: Tree) -> None:
    tree.add("sda2", lvm_label(1), partition=True)
    tree.add("sdb", lvm_label(3))
    tree.add("sdc", lvm_label(4))  # beyond the four sectors lvm reads
    odd = bytearray(lvm_label(1))
    odd[512 + 24 : 512 + 32] = b"LVM1 001"
    tree.add("sdd", bytes(odd))
    misplaced = bytearray(lvm_label(2))
    misplaced[1024 + 8 : 1024 + 16] = (1).to_bytes(8, "little")  # says sector 1
    tree.add("sdf", bytes(misplaced))
    tree.add("sde", luks_head(2, UUID2))
    result = tree.scan()
    assert result.lvm_members == (str(tree.dev / "sda2"), str(tree.dev / "sdb"))
    assert [d.name for d in result.found] == ["sde"]
    assert is_lvm_member(lvm_label(0)) and not is_lvm_member(b"")
