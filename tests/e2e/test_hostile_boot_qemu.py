"""A hostile /boot on the qemu-swtpm board: attacks on the ways /boot is read,
not on its signed files, each its own power-on from a /boot the owner signed
with a saved default (the verified-boot story's first boot, on this module's
own machine):

1. an unsigned `kexec.d` directory in the signed-state area, holding a
   grub.cfg whose entry boots `/kexec.d/lnk/../vmlinuz-*` through a symlink
   `lnk -> ../grub`, and an attacker "kernel" beside it (the path means the
   real kernel when the symlink is followed, the attacker's when `..` is
   taken lexically): the default boot and the OS boot menu are refused naming
   kexec.d, the entry is never offered (not even for an unsafe boot), nothing
   boots, and the disk is unchanged byte for byte;
2. a pending ext4 journal transaction that rewrites some of the kernel's
   blocks: /boot verifies (the probe does not replay it) and the Update
   checksums screen says the journal holds changes never applied; signing
   replays it (read-write mount) and then refuses, naming the kernel, and
   signs nothing; the default boot is then refused naming the kernel;
3. a FIFO named kexec_rollback.txt: the start does not hang, says what the
   file is, reaches the main menu, and the default boot is refused.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.e2e.console_steps import (
    MAIN,
    SIGN,
    choose_os_menu,
    image_digest,
    power_off,
    update_checksums_screen,
    words,
)
from tests.e2e.test_verified_boot_qemu import (  # the shared story: one owner, one signed disk
    FIRST_SCREEN,
    KERNEL,
    first_boot,  # noqa: F401 (a fixture: signs /boot, saves a default, boots it)
    initrd_signing,  # noqa: F401 (a fixture: the image that can sign)
    start,
    to_main_menu,
)
from tools.board_console import Boot
from tools.ext4_journal import journal_pending, make_pending_journal_in_disk
from tools.make_os_disk import BOARD_KERNEL_RELEASE, DEFAULT_CMDLINE
from tools.os_disk_edit import BootPartition

pytestmark = [pytest.mark.qemu, pytest.mark.xdist_group("qemu"), pytest.mark.timeout(2400)]
BLOCK = 4096  # the test disk's ext4 block size (tools/make_os_disk.py)
ATTACK_TITLE = "Attacker kexec.d entry"
ATTACK_CFG = (
    f"menuentry '{ATTACK_TITLE}' {{\n"
    f"\tlinux\t/kexec.d/lnk/../vmlinuz-{BOARD_KERNEL_RELEASE} {DEFAULT_CMDLINE} init=/bin/sh\n"
    f"\tinitrd\t/kexec.d/lnk/../initrd.img-{BOARD_KERNEL_RELEASE}\n"
    "}\n"
).encode()


def signed_disk(machine: Path, name: str) -> Path:
    """A copy of the disk as the owner left it: signed, with a default."""
    copy = machine / name
    shutil.copyfile(machine / "disk-after-first-boot.img", copy)
    return copy


def signed_state(disk: Path) -> dict[str, bytes]:
    """Every name at /boot's top under kexec*, with its content."""
    with BootPartition(disk) as part:
        return {n: part.read(f"/{n}") for n in part.names("/") if n.startswith("kexec")}


def power_off_from_main(running: Boot) -> None:
    """Power off from the main menu; nothing may have been handed a kernel."""
    power_off(running)
    running.wait_exit(120)
    console = running.console_text()
    assert "OS-TARGET" not in console
    assert "stage=kexec" not in console


def test_an_unsigned_kexec_d_configuration_is_refused_and_never_offered(
    machine: Path,
    initrd_signing: Path,  # noqa: F811
    first_boot: dict[str, str],  # noqa: F811
) -> None:
    disk = signed_disk(machine, "kexec-d.img")
    with BootPartition(disk) as part:
        part.mkdir("/kexec.d")
        part.write("/kexec.d/grub.cfg", ATTACK_CFG)
        part.symlink("/kexec.d/lnk", "../grub")
        part.write(f"/kexec.d/vmlinuz-{BOARD_KERNEL_RELEASE}", b"attacker kernel\n" * 4096)
        assert sorted(part.names("/kexec.d")) == sorted(
            ["grub.cfg", "lnk", f"vmlinuz-{BOARD_KERNEL_RELEASE}"]
        )
    before = image_digest(disk)
    with start(machine, initrd_signing, disk) as running:
        to_main_menu(running)
        running.press("d")
        refused = words(running.wait_for_screen("Boot refused", SIGN))
        assert "unexpected files in the signed-state area" in refused, refused
        assert "kexec.d" in refused, refused
        running.press("m")
        running.wait_for_screen(MAIN, 120)

        choose_os_menu(running)
        from_menu = words(running.wait_for_screen("Boot refused", SIGN))
        assert "unexpected files in the signed-state area" in from_menu, from_menu
        assert "kexec.d" in from_menu, from_menu
        # not even the unverified listing reads the kexec* area
        running.press("f")
        running.wait_for_screen("Boot without verifying /boot?", 60)
        running.press("y")
        unsafe = words(running.wait_for_screen("Unsafe boot: choose an entry", 120))
        assert "Debian GNU/Linux" in unsafe, unsafe
        assert ATTACK_TITLE not in unsafe and "kexec.d" not in unsafe, unsafe
        running.press("b")  # back: nothing chosen
        running.wait_for_screen(MAIN, 120)
        assert ATTACK_TITLE not in running.console_text()
        power_off_from_main(running)
    assert image_digest(disk) == before  # refused, and nothing written


def test_a_pending_journal_cannot_slip_a_kernel_into_update_checksums(
    machine: Path,
    initrd_signing: Path,  # noqa: F811
    first_boot: dict[str, str],  # noqa: F811
) -> None:
    disk = signed_disk(machine, "journal.img")
    with BootPartition(disk) as part:
        kernel = part.read(KERNEL)
    state = signed_state(disk)
    # the second and the last block: the journal (1024 blocks) holds both
    evil = bytearray(kernel)
    for at in (BLOCK + 17, (len(kernel) - 1) // BLOCK * BLOCK + 3):
        evil[at] ^= 0xFF
    make_pending_journal_in_disk(disk, KERNEL, bytes(evil))

    with start(machine, initrd_signing, disk) as running:
        to_main_menu(running)
        update = update_checksums_screen(running)
        # read without replaying the journal, /boot is still what was signed
        assert "already what you signed" in update, update
        assert "journal holds changes that were never applied" in update, update
        running.press("y")
        refused = words(running.wait_for_screen("/boot was not signed", SIGN))
        assert "changed after it was checked" in refused, refused
        assert f"vmlinuz-{BOARD_KERNEL_RELEASE}" in refused, refused
        assert "Nothing was signed" in refused, refused
        running.press("enter")
        running.wait_for_screen("Boot options -->", 60)
        running.press("b")
        running.wait_for_screen(MAIN, 120)
        # the replayed kernel is now on /boot: not what the owner signed
        running.press("d")
        boot = words(running.wait_for_screen("Boot refused", SIGN))
        assert "files modified" in boot and f"vmlinuz-{BOARD_KERNEL_RELEASE}" in boot, boot
        assert "older signed /boot" not in boot, boot  # the counter did not move
        running.press("m")
        running.wait_for_screen(MAIN, 120)
        power_off_from_main(running)

    assert signed_state(disk) == state  # nothing signed, nothing staged
    with BootPartition(disk) as part:
        assert not journal_pending(part.image)
        assert part.read(KERNEL) == bytes(evil)  # the read-write mount replayed it


def test_a_fifo_as_the_rollback_file_neither_hangs_the_start_nor_boots(
    machine: Path,
    initrd_signing: Path,  # noqa: F811
    first_boot: dict[str, str],  # noqa: F811
) -> None:
    disk = signed_disk(machine, "fifo.img")
    with BootPartition(disk) as part:
        part.remove("/kexec_rollback.txt")
        part.mkfifo("/kexec_rollback.txt")
    before = image_digest(disk)
    with start(machine, initrd_signing, disk) as running:
        early = words(running.wait_for_screen("TPM state inconsistent", FIRST_SCREEN))
        assert "/boot/kexec_rollback.txt is a FIFO" in early, early
        running.press("m")  # continue to the main menu
        menu = words(running.wait_for_screen(MAIN, 120))
        assert "TPM rollback state inconsistent" in menu, menu
        running.press("d")
        refused = words(running.wait_for_screen("Boot refused", SIGN))
        assert "kexec_rollback.txt (a FIFO)" in refused, refused
        running.press("m")
        running.wait_for_screen(MAIN, 120)
        power_off_from_main(running)
    assert image_digest(disk) == before  # refused, and nothing written
