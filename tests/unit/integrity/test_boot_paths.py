"""The one path resolver and the no-follow opener, the scan's bounds, and the
RAM copies kexec loads: each hostile path a boot configuration can name."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runtime.boot_configs.heads_line import parse_heads_line
from runtime.integrity import boot_scan
from runtime.integrity.boot_paths import (
    MAX_LINKS,
    BootPathError,
    live_links,
    open_file,
    resolve,
    signed_links,
)
from runtime.integrity.boot_scan import ScanError, hash_files, scan_boot
from runtime.integrity.boot_view import BootView, Signed
from runtime.kexec import ram_copy
from runtime.kexec.errors import KexecError


def _links(table: dict[str, str]):  # type: ignore[no-untyped-def]
    return signed_links(table)


@pytest.mark.parametrize(
    ("path", "links", "want"),
    [
        ("/vmlinuz", {}, "./vmlinuz"),
        ("//a/./b//c", {}, "./a/b/c"),
        ("/a/../b", {}, "./b"),
        ("/vmlinuz", {"./vmlinuz": "vmlinuz-6.1"}, "./vmlinuz-6.1"),
        # '..' after a symlink goes up from where the link leads (as the kernel walks)
        ("/d/lnk/../k", {"./d/lnk": "../grub"}, "./k"),
        ("/boot/vmlinuz", {"./boot": "."}, "./vmlinuz"),
        ("/x/y", {"./x": "a/b"}, "./a/b/y"),
    ],
)
def test_resolve_walks_like_the_kernel(path: str, links: dict[str, str], want: str) -> None:
    assert resolve(path, _links(links)) == want


@pytest.mark.parametrize(
    ("path", "links", "why"),
    [
        ("/../etc/shadow", {}, "climbs out"),
        ("/a/../../x", {}, "climbs out"),
        ("/vmlinuz", {"./vmlinuz": "/etc/shadow"}, "out of /boot"),
        ("/l", {"./l": "../../x"}, "climbs out"),
        ("/l", {"./l": "l"}, "more than"),
        ("/kexec.d/grub.cfg", {}, "signed-state area"),
        ("/kexec.d/lnk/../vmlinuz", {}, "signed-state area"),
        ("/a", {"./a": "kexec_default.1.txt"}, "signed-state area"),
        ("/a\0b", {}, "not a file name"),
    ],
)
def test_resolve_refuses(path: str, links: dict[str, str], why: str) -> None:
    with pytest.raises(BootPathError, match=why):
        resolve(path, _links(links))


def test_link_chain_limit() -> None:
    chain = {f"./l{i}": f"l{i + 1}" for i in range(MAX_LINKS + 1)}
    with pytest.raises(BootPathError, match="more than"):
        resolve("/l0", _links(chain))


def test_open_file_follows_no_symlink_and_opens_only_regular_files(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "k").write_bytes(b"kernel")
    os.symlink("d", tmp_path / "dl")
    os.symlink("d/k", tmp_path / "kl")
    os.mkfifo(tmp_path / "fifo")
    fd = open_file(str(tmp_path), "./d/k")
    assert os.read(fd, 10) == b"kernel"
    os.close(fd)
    for rel, why in (
        ("./dl/k", "symlink"),
        ("./kl", "symbolic link"),
        ("./fifo", "FIFO"),
        ("./d", "directory"),
        ("./none", "does not exist"),
    ):
        with pytest.raises(BootPathError, match=why):
            open_file(str(tmp_path), rel)


def test_live_links_stay_inside(tmp_path: Path) -> None:
    (tmp_path / "boot").mkdir()
    (tmp_path / "secret").write_text("outside")
    os.symlink("../secret", tmp_path / "boot" / "up")
    os.symlink(str(tmp_path / "secret"), tmp_path / "boot" / "abs")
    view = BootView(str(tmp_path / "boot"), None)
    assert view.read_text("/up") is None and view.read_text("/abs") is None
    with pytest.raises(BootPathError):
        resolve("/up", live_links(str(tmp_path / "boot")))


def test_scan_counts_the_state_area_and_stops_at_its_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "kexec.d").mkdir()
    for i in range(60):
        (tmp_path / "kexec.d" / f"f{i}").write_text("x")
    monkeypatch.setattr(boot_scan, "MAX_ENTRIES", 50)
    with pytest.raises(ScanError, match="more than 50"):
        scan_boot(str(tmp_path))


def test_scan_records_links_and_the_state_area(tmp_path: Path) -> None:
    (tmp_path / "k").write_text("k")
    os.symlink("k", tmp_path / "v")
    (tmp_path / "kexec.d").mkdir()
    os.mkfifo(tmp_path / "kexec.d" / "p")
    scan = scan_boot(str(tmp_path))
    assert scan.links == {"./v": "k"}
    assert set(scan.state_area) == {"./kexec.d", "./kexec.d/p"}
    assert "./kexec.d" not in scan.tree


def test_scan_depth_is_bounded(tmp_path: Path) -> None:
    path = tmp_path
    for _ in range(boot_scan.MAX_DEPTH + 2):
        path = path / "d"
        path.mkdir()
    with pytest.raises(ScanError, match="deeper"):
        scan_boot(str(tmp_path))


def _signed_view(root: Path) -> BootView:
    scan = scan_boot(str(root))
    return BootView(
        str(root), Signed(hash_files(str(root), scan.files), frozenset(scan.tree), scan.links)
    )


def test_several_initrds_are_copied_checked_and_room_is_counted(tmp_path: Path) -> None:
    boot = tmp_path / "boot"
    boot.mkdir()
    (boot / "k").write_bytes(b"K" * 1000)
    (boot / "ucode").write_bytes(b"U" * 300)
    (boot / "initrd").write_bytes(b"I" * 5000)
    view = _signed_view(boot)
    entry = parse_heads_line("x|elf|kernel /k|initrd /ucode|initrd /initrd").entry
    assert ram_copy.needed_bytes(view, entry) == 1000 + 2 * (300 + 5000)
    out = tmp_path / "ram"
    out.mkdir()
    staged = ram_copy.stage_entry(view, entry, str(out))
    assert Path(staged.paths["/initrd"]).read_bytes() == b"I" * 5000
    assert ram_copy.room_problem(10 << 20, 1 << 30) == ""
    assert "MiB of RAM" in ram_copy.room_problem(600 << 20, 1 << 30)


def test_unverified_copy_still_refuses_fifos_and_escapes(tmp_path: Path) -> None:
    boot = tmp_path / "boot"
    boot.mkdir()
    os.mkfifo(boot / "k")
    (tmp_path / "outside").write_bytes(b"x")
    os.symlink("../outside", boot / "o")
    view = BootView(str(boot), None)
    for line in ("x|elf|kernel /k", "x|elf|kernel /o"):
        with pytest.raises(KexecError):
            ram_copy.stage_entry(view, parse_heads_line(line).entry, str(tmp_path))
