"""The discovery front (every configuration under a root, one menu) and the
JSON command that prints it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runtime.boot_configs.__main__ import main
from runtime.boot_configs.discover import collapse_duplicates, discover
from runtime.boot_configs.entry import BootEntry, EntryKind
from runtime.boot_configs.fs import DirFS, MemoryFS
from tests.support.uroot_corpus import UROOT_BOOT

DEBIAN = """set default="0"
menuentry 'Debian GNU/Linux' --class debian $menuentry_id_option 'gnulinux-simple' {
	linux	/vmlinuz-6.1 root=UUID=x ro  quiet
	initrd	/initrd.img-6.1
}
submenu 'Advanced options for Debian GNU/Linux' {
	menuentry 'Debian GNU/Linux, with Linux 6.1' {
		linux	/vmlinuz-6.1 root=UUID=x ro quiet
		initrd	/initrd.img-6.1
	}
	menuentry 'Debian GNU/Linux, with Linux 6.1 (recovery mode)' {
		linux	/vmlinuz-6.1 root=UUID=x ro single
		initrd	/initrd.img-6.1
	}
	menuentry 'Old' {
		linux	/vmlinuz-5.10 root=UUID=x ro single
	}
}
"""
FILES = {"/vmlinuz-6.1": "k", "/initrd.img-6.1": "i"}


def _debian(tmp_path: Path) -> Path:
    (tmp_path / "grub").mkdir()
    (tmp_path / "grub" / "grub.cfg").write_text(DEBIAN)
    for name, text in FILES.items():
        (tmp_path / name.lstrip("/")).write_text(text)
    return tmp_path


def test_menu_collapses_repeats_and_hides_missing(tmp_path: Path) -> None:
    found = discover(DirFS(_debian(tmp_path)))
    assert [e.name for e in found.entries] == [
        "Debian GNU/Linux",
        "Debian GNU/Linux, with Linux 6.1",
        "Debian GNU/Linux, with Linux 6.1 (recovery mode)",
        "Old",
    ]
    assert [e.name for e in found.menu] == [
        "Debian GNU/Linux",
        "Debian GNU/Linux, with Linux 6.1 (recovery mode)",
    ]
    assert found.menu[0].also_listed_as == ("Debian GNU/Linux, with Linux 6.1",)
    assert found.default is not None and found.default.name == "Debian GNU/Linux"
    assert not found.entries[3].files_present
    assert found.configs == ("/grub/grub.cfg",)


def test_repeat_carries_the_default_to_the_kept_entry() -> None:
    a = BootEntry("A", EntryKind.LINUX, "/k", cmdline="ro  quiet")
    b = BootEntry("B", EntryKind.LINUX, "/k", cmdline="ro quiet", is_default=True)
    c = BootEntry("C", EntryKind.LINUX, "/k", cmdline="ro")
    (kept, other) = collapse_duplicates([a, b, c])
    assert kept.name == "A" and kept.is_default and kept.also_listed_as == ("B",)
    assert other.name == "C"


def test_iso_with_grub_and_isolinux_shows_each_boot_once() -> None:
    fs = MemoryFS(
        {
            "/boot/grub/grub.cfg": "menuentry Live { linux /live/vmlinuz boot=live\n"
            " initrd /live/initrd.img }\n",
            "/isolinux/isolinux.cfg": "default live\nlabel live\n menu label Live (BIOS)\n"
            " kernel /live/vmlinuz\n"
            " append initrd=/live/initrd.img boot=live\n"
            "label safe\n kernel /live/vmlinuz\n"
            " append boot=live nomodeset\n",
            "/live/vmlinuz": "k",
            "/live/initrd.img": "i",
        }
    )
    found = discover(fs)
    assert found.configs == ("/boot/grub/grub.cfg", "/isolinux/isolinux.cfg")
    assert [e.name for e in found.menu] == ["Live", "safe"]
    assert found.menu[0].also_listed_as == ("Live (BIOS)",)
    # the first configuration that names a default decides
    assert [e.name for e in found.entries if e.is_default] == ["Live"]


def test_systemd_boot_efi_fallback_and_nothing() -> None:
    bls = MemoryFS(
        {
            "/loader/entries/a.conf": "title Arch\nlinux /vmlinuz-linux\ninitrd /initramfs.img\n"
            "options root=/dev/x rw\n",
            "/loader/loader.conf": "default a.conf\n",
            "/vmlinuz-linux": "k",
            "/initramfs.img": "i",
        }
    )
    found = discover(bls)
    assert [e.name for e in found.menu] == ["Arch"] and found.configs == ("/loader/entries",)
    efi = MemoryFS(
        {"/EFI/fedora/grub.cfg": "menuentry F { linux /vmlinuz-linux }\n", "/vmlinuz-linux": "k"}
    )
    assert [e.name for e in discover(efi).menu] == ["F"]
    empty = discover(MemoryFS({"/readme": "x"}))
    assert empty.menu == () and empty.default is None
    assert any("no boot loader configuration" in w.message for w in empty.warnings)


def test_json_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _debian(tmp_path)
    assert main([str(root)]) == 0
    out = capsys.readouterr()
    entries = json.loads(out.out)
    assert [e["offered"] for e in entries] == [True, False, True, False]
    first = entries[0]
    assert set(first) == {
        "name",
        "kind",
        "kernel",
        "initrds",
        "cmdline",
        "modules",
        "source",
        "line",
        "rank",
        "default",
        "files_present",
        "offered",
        "also_listed_as",
        "warnings",
    }
    assert first["kind"] == "linux" and first["initrds"] == ["/initrd.img-6.1"]
    assert first["default"] is True and first["line"] == 2
    assert entries[3]["warnings"] == ["missing file /vmlinuz-5.10"]
    assert main(["--heads", str(root)]) == 0
    heads = json.loads(capsys.readouterr().out)
    assert heads["lines"][0].startswith("Debian GNU/Linux|elf|kernel /vmlinuz-6.1|")
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty")]) == 1
    assert "nothing to boot" in capsys.readouterr().err
    assert main([str(tmp_path / "missing")]) == 2


def test_every_corpus_tree_is_discovered() -> None:
    kinds = ("grub/testdata_new", "syslinux/testdata", "iso/testdata", "bls/testdata")
    trees = [p for kind in kinds for p in sorted((UROOT_BOOT / kind).iterdir()) if p.is_dir()]
    total = 0
    for tree in trees:
        found = discover(DirFS(tree))
        total += len(found.entries)
        assert sum(e.is_default for e in found.entries) <= 1
    print(f"discovery over {len(trees)} corpus trees: {total} entries")
    assert total > 250


def test_iso_command_prefixes_names_and_passes_the_iso(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    iso = tmp_path / "iso"
    (iso / "boot" / "grub").mkdir(parents=True)
    (iso / "live").mkdir()
    (iso / "live" / "vmlinuz").write_text("k")
    (iso / "live" / "initrd.img").write_text("i")
    (iso / "boot" / "grub" / "loopback.cfg").write_text(
        'menuentry "Live" {\n linux /live/vmlinuz boot=live findiso=${iso_path}\n'
        " initrd /live/initrd.img\n}\n"
    )
    assert main(["--iso", "/debian-live.iso", "--fs-uuid", "AB-CD", str(iso)]) == 0
    (entry,) = json.loads(capsys.readouterr().out)
    assert entry["name"] == "[debian-live.iso] Live"
    assert entry["cmdline"] == "boot=live findiso=/debian-live.iso"
    assert entry["offered"] and entry["source"] == "/boot/grub/loopback.cfg"
