"""The crypttab overrides signed with a Disk Unlock Key, read from the
default entry's initrds on a verified /boot: the OS's own entries for the
key's disks get /secret.key; an initrd that changed since /boot was checked,
or one without a usable crypttab, leaves Heads' default lines (and drops an
overrides file signed for another initrd)."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

from runtime.disk.key_lists import CRYPTTAB_OVERRIDES_FILE, KeyDevice
from runtime.integrity.boot_scan import hash_files, scan_boot
from runtime.integrity.boot_view import BootView, Signed
from runtime.state.platform_crypttab import overrides_for
from tools.initrd.cpio import Entry, write_archive

UUID_ROOT = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
UUID_OTHER = "f0e1d2c3-b4a5-4968-8776-655443322110"
DEVICES = [KeyDevice("/dev/vda3", UUID_ROOT)]
LINE = "Debian|elf|kernel /vmlinuz|initrd /ucode.img|initrd /initrd.img|append ro"
OS_CRYPTTAB = (
    f"vda3_crypt UUID={UUID_ROOT} none luks,discard\n"
    f"other_crypt UUID={UUID_OTHER} none luks\n".encode()
)


def _newc(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    write_archive(out, [Entry.file(path, data) for path, data in files.items()], mtime=0)
    return out.getvalue()


def _initrd(files: dict[str, bytes]) -> bytes:
    """A gzip'd newc archive holding ``files``, as distributions compress them."""
    return gzip.compress(_newc(files), mtime=0)


def _boot(tmp_path: Path, initrd: bytes) -> Path:
    boot = tmp_path / "boot"
    boot.mkdir()
    (boot / "vmlinuz").write_bytes(b"kernel")
    (boot / "ucode.img").write_bytes(_newc({"kernel/x86/microcode/GenuineIntel.bin": b"u"}))
    (boot / "initrd.img").write_bytes(initrd)
    return boot


def _verified(boot: Path) -> BootView:
    scan = scan_boot(str(boot))
    return BootView(
        str(boot), Signed(hash_files(str(boot), scan.files), frozenset(scan.tree), scan.links)
    )


def test_the_os_entry_of_the_key_disk_gets_the_key_file(tmp_path: Path) -> None:
    boot = _boot(tmp_path, _initrd({"cryptroot/crypttab": OS_CRYPTTAB}))
    found = overrides_for(_verified(boot), LINE, DEVICES)
    assert found.drop == () and found.note == ""
    assert found.extra == {
        CRYPTTAB_OVERRIDES_FILE: (
            f"/cryptroot/crypttab:vda3_crypt UUID={UUID_ROOT} /secret.key luks,discard\n"
            f"/cryptroot/crypttab:other_crypt UUID={UUID_OTHER} none luks\n"
        ).encode()
    }


def test_an_initrd_without_crypttab_keeps_the_default_lines(tmp_path: Path) -> None:
    boot = _boot(tmp_path, _initrd({"etc/fstab": b"/dev/vda2 / ext4 defaults 0 1\n"}))
    found = overrides_for(_verified(boot), LINE, DEVICES)
    assert found.extra == {} and found.drop == (CRYPTTAB_OVERRIDES_FILE,)
    assert found.note == ""


def test_a_crypttab_naming_none_of_the_key_disks_is_said(tmp_path: Path) -> None:
    crypttab = f"other_crypt UUID={UUID_OTHER} none luks\n".encode()
    boot = _boot(tmp_path, _initrd({"etc/crypttab": crypttab}))
    found = overrides_for(_verified(boot), LINE, DEVICES)
    assert found.extra == {} and found.drop == (CRYPTTAB_OVERRIDES_FILE,)
    assert "names none of the key's disks" in found.note and "luks-<UUID>" in found.note


def test_an_initrd_changed_since_the_check_is_not_read(tmp_path: Path) -> None:
    boot = _boot(tmp_path, _initrd({"cryptroot/crypttab": OS_CRYPTTAB}))
    view = _verified(boot)
    (boot / "initrd.img").write_bytes(_initrd({"cryptroot/crypttab": b"x UUID=y /evil luks\n"}))
    found = overrides_for(view, LINE, DEVICES)
    assert found.extra == {} and found.drop == (CRYPTTAB_OVERRIDES_FILE,)
    assert "changed since /boot was checked" in found.note


def test_an_unreadable_initrd_or_a_bad_crypttab_is_said_not_raised(tmp_path: Path) -> None:
    boot = _boot(tmp_path, b"\x1f\x8b" + b"\0" * 64)  # a gzip header and nothing sound
    found = overrides_for(_verified(boot), LINE, DEVICES)
    assert found.extra == {} and found.note
    binary = tmp_path / "second"
    binary.mkdir()
    boot = _boot(binary, _initrd({"cryptroot/crypttab": b"a\0b /dev/vda3 none\n"}))
    found = overrides_for(_verified(boot), LINE, DEVICES)
    assert found.extra == {} and "cannot be used" in found.note


def test_a_multiboot_entry_gets_no_overrides_and_drops_old_ones(tmp_path: Path) -> None:
    boot = _boot(tmp_path, _initrd({"cryptroot/crypttab": OS_CRYPTTAB}))
    (boot / "xen.gz").write_bytes(b"xen")
    line = "Xen|multiboot|kernel /xen.gz|module /vmlinuz|module /initrd.img"
    found = overrides_for(_verified(boot), line, DEVICES)
    assert found.extra == {} and found.drop == (CRYPTTAB_OVERRIDES_FILE,) and found.note == ""
