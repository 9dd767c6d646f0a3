"""The crypttab overrides signed with a Disk Unlock Key, read from the
default entry's initrds on a verified /boot: the OS's own entries for the
key's disks get /secret.key; an initrd that changed since /boot was checked,
or one without a usable crypttab, leaves Heads' default lines (and drops an
overrides file signed for another initrd)."""

from __future__ import annotations

import gzip
import io
import os
from pathlib import Path

from runtime.disk.key_lists import (
    CRYPTTAB_OVERRIDES_FILE,
    KEY_DEVICES_FILE,
    KEY_LVM_FILE,
    LUKS_HEADER_HASH_FILE,
    KeyDevice,
)
from runtime.integrity.boot_report import BootReport
from runtime.integrity.boot_scan import hash_files, scan_boot
from runtime.integrity.boot_view import BootView, Signed
from runtime.integrity.sign_boot import build_state
from runtime.state.boot_side import BootSide
from runtime.state.platform_crypttab import overrides_for
from runtime.state.platform_disk import signed_files
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


def test_a_crypttab_naming_none_of_the_key_disks_is_kept_as_it_is_and_said(
    tmp_path: Path,
) -> None:
    """Heads' default lines would replace the OS's file, and its root mapping
    (sda3_crypt) would never appear: its own lines, still asking, are safer."""
    crypttab = b"sda3_crypt PARTUUID=1234-5678 none luks\n"
    boot = _boot(tmp_path, _initrd({"etc/crypttab": crypttab}))
    found = overrides_for(_verified(boot), LINE, DEVICES)
    assert found.extra == {
        CRYPTTAB_OVERRIDES_FILE: b"/etc/crypttab:sda3_crypt PARTUUID=1234-5678 none luks\n"
    }
    assert found.drop == () and "names none of the key's disks" in found.note


def test_key_disk_entries_that_keep_asking_are_named(tmp_path: Path) -> None:
    crypttab = (
        f"vda3_crypt UUID={UUID_ROOT} none luks,keyscript=decrypt_keyctl\n"
        f"other_crypt UUID={UUID_OTHER} none luks\n"
    ).encode()
    boot = _boot(tmp_path, _initrd({"cryptroot/crypttab": crypttab}))
    found = overrides_for(_verified(boot), LINE, DEVICES)
    assert CRYPTTAB_OVERRIDES_FILE in found.extra
    assert "vda3_crypt" in found.note and "keep asking" in found.note


def test_a_later_initrd_replaces_an_earlier_ones_crypttab(tmp_path: Path) -> None:
    boot = _boot(tmp_path, _initrd({"cryptroot/crypttab": b"x UUID=y none luks\n"}))
    (boot / "ucode.img").write_bytes(_initrd({"cryptroot/crypttab": OS_CRYPTTAB}))
    line = "D|elf|kernel /vmlinuz|initrd /ucode.img|initrd /initrd.img"
    found = overrides_for(_verified(boot), line, DEVICES)
    assert found.extra == {CRYPTTAB_OVERRIDES_FILE: b"/cryptroot/crypttab:x UUID=y none luks\n"}


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
    assert found.extra == {} and found.drop == (CRYPTTAB_OVERRIDES_FILE,)
    assert found.note.startswith("In /ucode.img, /initrd.img, ") and "luks-<UUID>" in found.note
    binary = tmp_path / "second"
    binary.mkdir()
    boot = _boot(binary, _initrd({"cryptroot/crypttab": b"a\0b /dev/vda3 none\n"}))
    found = overrides_for(_verified(boot), LINE, DEVICES)
    assert found.extra == {} and "cannot be used" in found.note


def test_a_part_the_reader_stopped_at_leaves_the_default_lines(tmp_path: Path) -> None:
    """What the kernel would unpack after such a place is not known."""
    good = _initrd({"cryptroot/crypttab": OS_CRYPTTAB})
    boot = _boot(tmp_path, good + b"BZh91AY&SY" + b"\0" * 64)
    found = overrides_for(_verified(boot), LINE, DEVICES)
    assert found.extra == {} and "bzip2" in found.note


def test_names_from_the_disk_are_shown_printable(tmp_path: Path) -> None:
    boot = _boot(tmp_path, b"\x1f\x8b" + b"\0" * 64)
    os.rename(boot / "initrd.img", boot / "init\x1b]0;pwned\x07rd.img")
    found = overrides_for(
        _verified(boot), "D|elf|kernel /vmlinuz|initrd /init\x1b]0;pwned\x07rd.img", DEVICES
    )
    assert "pwned" in found.note and "\x1b" not in found.note and "\x07" not in found.note


def test_initrds_are_unpacked_as_one_stream_and_too_many_are_refused(tmp_path: Path) -> None:
    boot = _boot(tmp_path, _initrd({"cryptroot/crypttab": OS_CRYPTTAB}))
    shown: list[str] = []
    line = "D|elf|kernel /vmlinuz" + "|initrd /initrd.img" * 3
    found = overrides_for(_verified(boot), line, DEVICES, shown.append)
    assert len(shown) == 1 and CRYPTTAB_OVERRIDES_FILE in found.extra
    many = "D|elf|kernel /vmlinuz" + "".join(f"|initrd /i{n}" for n in range(5))
    for n in range(5):
        (boot / f"i{n}").write_bytes(_initrd({}))
    found = overrides_for(_verified(boot), many, DEVICES)
    assert found.extra == {} and "more than 4 initrds" in found.note


def test_a_multiboot_entry_gets_no_overrides_and_drops_old_ones(tmp_path: Path) -> None:
    boot = _boot(tmp_path, _initrd({"cryptroot/crypttab": OS_CRYPTTAB}))
    (boot / "xen.gz").write_bytes(b"xen")
    line = "Xen|multiboot|kernel /xen.gz|module /vmlinuz|module /initrd.img"
    found = overrides_for(_verified(boot), line, DEVICES)
    assert found.extra == {} and found.drop == (CRYPTTAB_OVERRIDES_FILE,) and found.note == ""


# --- what a signing adds and drops (platform_disk.signed_files, build_state) ---

NEW_SETUP = {
    KEY_DEVICES_FILE: f"/dev/vdb1 {UUID_OTHER}\n".encode(),
    LUKS_HEADER_HASH_FILE: b"0" * 64 + b"  /tmp/luksDump.txt\n",
}


def test_a_new_setup_drops_the_overrides_and_volume_group_an_earlier_one_signed(
    tmp_path: Path,
) -> None:
    earlier = {
        KEY_DEVICES_FILE: f"/dev/vda3 {UUID_ROOT}\n".encode(),
        CRYPTTAB_OVERRIDES_FILE: f"/etc/crypttab:r UUID={UUID_ROOT} /secret.key\n".encode(),
        KEY_LVM_FILE: b"vg0\n",
    }
    side = BootSide(boot_dir=str(tmp_path), last_report=BootReport(trusted_state=earlier))
    files = signed_files(side, None, dict(NEW_SETUP), lambda _: None)
    assert files.extra == NEW_SETUP  # no default saved: no overrides of its own
    assert set(files.drop) == {CRYPTTAB_OVERRIDES_FILE, KEY_LVM_FILE}
    # a signing that sets nothing up leaves the signed files as they are
    plain = signed_files(side, None, None, lambda _: None)
    assert plain.extra == {} and plain.drop == ()


def test_build_state_drops_only_what_it_is_told(tmp_path: Path) -> None:
    boot = tmp_path / "boot"
    boot.mkdir()
    (boot / "vmlinuz").write_bytes(b"kernel")
    scan = scan_boot(str(boot))
    current = {CRYPTTAB_OVERRIDES_FILE: b"/etc/crypttab:x UUID=y none\n", "kexec_iso_add.txt": b""}

    class Signer:
        def sign(self, data: bytes) -> bytes:
            return b"signature of " + data[:8]

    state = build_state(
        current,
        scan,
        hash_files(str(boot), scan.files),
        0x1ABCDEF,
        3,
        Signer(),
        None,
        extra=NEW_SETUP,
        drop=(CRYPTTAB_OVERRIDES_FILE,),
    )
    assert CRYPTTAB_OVERRIDES_FILE not in state.files
    assert "kexec_iso_add.txt" in state.files and KEY_DEVICES_FILE in state.files
