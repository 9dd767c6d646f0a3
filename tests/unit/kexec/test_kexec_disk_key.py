"""The disk unlock key's cpio appended to the OS's initrd in the kexec plan
(runtime/kexec/plan.py extra_initrd) and its copies zeroed once loaded
(runtime/kexec/key_initrd.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.boot_configs.entry import BootEntry, EntryKind, Module
from runtime.kexec.errors import KexecError
from runtime.kexec.key_initrd import KEY_FILE, wipe_key_copies, write_key_file
from runtime.kexec.load import write_initrd
from runtime.kexec.plan import plan_for

KEY_CPIO = bytearray(b"070701" + b"K" * 506)  # stands in for the 512-byte archive


@pytest.fixture
def boot(tmp_path: Path) -> Path:
    root = tmp_path / "boot"
    root.mkdir()
    for name, data in {"vmlinuz": b"kernel", "initrd.img": b"main-initrd", "xen.gz": b"x"}.items():
        (root / name).write_bytes(data)
    return root


def _linux(*initrds: str) -> BootEntry:
    return BootEntry("Debian", EntryKind.LINUX, "/vmlinuz", initrds=initrds, cmdline="ro")


def test_one_initrd_and_the_key_are_concatenated(boot: Path, tmp_path: Path) -> None:
    key = write_key_file(str(tmp_path), KEY_CPIO)
    out = str(tmp_path / "combined")
    plan = plan_for(_linux("/initrd.img"), str(boot), initrd_out=out, extra_initrd=key)
    assert f"--initrd={out}" in plan.args
    assert plan.initrd_parts == (f"{boot}/initrd.img", key)
    write_initrd(plan)
    combined = Path(out).read_bytes()
    assert combined == b"main-initrd\0" + bytes(KEY_CPIO)  # the OS's first, 4-byte aligned
    assert Path(key).stat().st_mode & 0o777 == 0o600

    wipe_key_copies(key, out, len(KEY_CPIO))
    assert Path(key).read_bytes() == bytes(len(KEY_CPIO))
    assert Path(out).read_bytes() == b"main-initrd\0" + bytes(len(KEY_CPIO))


def test_an_entry_without_initrd_gets_no_key(boot: Path, tmp_path: Path) -> None:
    key = write_key_file(str(tmp_path), KEY_CPIO)
    with pytest.raises(KexecError, match="no initrd"):
        plan_for(_linux(), str(boot), initrd_out=str(tmp_path / "c"), extra_initrd=key)


def test_a_multiboot_entry_is_refused_the_key_with_the_way_forward(
    boot: Path, tmp_path: Path
) -> None:
    entry = BootEntry("Qubes", EntryKind.MULTIBOOT, "/xen.gz", modules=(Module("/vmlinuz", "ro"),))
    with pytest.raises(KexecError, match="recovery passphrase"):
        plan_for(entry, str(boot), initrd_out=str(tmp_path / "c"), extra_initrd="/k")


def test_the_key_file_never_replaces_what_is_there(tmp_path: Path) -> None:
    (tmp_path / KEY_FILE).symlink_to(tmp_path / "elsewhere")
    with pytest.raises(KexecError):
        write_key_file(str(tmp_path), KEY_CPIO)
    assert not (tmp_path / "elsewhere").exists()
