"""Verified boot on the qemu-swtpm board, driven over the serial console as a
user would, on one machine (one TPM), against the test OS disk:

1. first boot: /boot was never signed -> Options > Update checksums and sign
   (the firmware's TPM counter is created), then the OS menu > make the first
   entry the default (signed again) -> the default boots: the target OS
   prints its command line and PCRs;
2. an OS update changes a file on /boot and leaves its package-trigger note:
   the default is refused naming both; the owner signs again (the counter
   moves on) and the default boots verified, with the first boot's PCR 4;
3. the disk as it was after boot 1 is put back (a replayed, validly signed
   /boot): refused as a rollback, in plain words; an unsafe boot then starts
   the target, whose PCR 4 differs from a verified boot's;
4. the tamper matrix, each case its own power-on from the signed disk of
   step 2: a modified kernel, initramfs or grub.cfg, an added or a removed
   file, a stranger's valid signature, a missing or a corrupted signature:
   each refused naming what changed, and nothing boots;
5. the TPM's rollback counter deleted (a TPM reset or swapped): refused in
   plain words; signing again makes a new counter and the default boots;
6. power cuts while signing leave a /boot that boots verified.

The same matrix runs against a real swtpm and gpg, without QEMU, in
tests/tpm/test_verified_boot.py.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from runtime.integrity.boot_lists import parse_rollback, signed_listing, signed_names
from runtime.integrity.package_trigger import format_trigger
from tests.e2e.conftest import BOARD, build
from tests.e2e.console_steps import (
    MAIN,
    SIGN,
    extended,
    image_digest,
    make_first_entry_default,
    open_options,
    power_off,
    runtime_pcr4,
    sign,
    sign_from_the_options,
    target_report,
    words,
)
from tools.board_console import Boot, boot
from tools.make_os_disk import BOARD_KERNEL_RELEASE, DEFAULT_CMDLINE
from tools.os_disk_edit import BootPartition
from tools.owner_key import OwnerKey
from tools.swtpm import Swtpm

pytestmark = [pytest.mark.qemu, pytest.mark.xdist_group("qemu"), pytest.mark.timeout(2400)]
FIRST_SCREEN = 400
SETTINGS = (
    b'export CONFIG_BOARD_NAME="QEMU verified boot"\n'
    # the test OS disk's root partition: /etc/os-release and /sbin/init
    b'export CONFIG_ROOT_DEV="/dev/vda2"\nexport CONFIG_ROOT_DIRLIST="sbin etc"\n'
)


@pytest.fixture(scope="module")
def initrd_signing(tmp_path_factory: pytest.TempPathFactory, owner_key: OwnerKey) -> Path:
    return build(tmp_path_factory.mktemp("build-signing"), SETTINGS, owner_key, signing=True)


def start(machine: Path, initrd: Path, disk: Path) -> Boot:
    running = boot(BOARD, machine, initrd)
    running.instance.disks = [disk]
    return running.start()


def to_main_menu(running: Boot) -> None:
    """Past the start: this machine has no TOTP secret, and the test needs none."""
    failed = "TOTP code cannot be shown"
    found, _ = running.wait_for_any((failed, MAIN), FIRST_SCREEN)
    if found == failed:
        running.press("i")
        running.wait_for_screen(MAIN, 120)


@pytest.fixture(scope="module")
def first_boot(machine: Path, initrd_signing: Path, disk: Path) -> dict[str, str]:
    with start(machine, initrd_signing, disk) as running:
        to_main_menu(running)
        firmware_pcr4 = runtime_pcr4(running)
        signed = sign_from_the_options(running, first=True)
        assert "signature missing" in signed  # what the update screen said
        assert "/boot is signed and verifies" in words(signed)
        running.press("enter")
        running.wait_for_screen(MAIN, 120)
        menu = make_first_entry_default(running, "Debian GNU/Linux")
        assert f"vmlinuz-{BOARD_KERNEL_RELEASE}" in menu
        report = target_report(running)
        report["firmware pcr 4"] = firmware_pcr4
    snapshot = machine / "disk-after-first-boot.img"
    shutil.copyfile(disk, snapshot)
    return report


def test_first_signing_and_the_default_boot(first_boot: dict[str, str]) -> None:
    assert first_boot["cmdline"].endswith(DEFAULT_CMDLINE), first_boot["cmdline"]
    # Heads' boot-mode marker, extended once before kexec
    assert first_boot["pcr 4"] == extended(first_boot["firmware pcr 4"], "generic")


@pytest.fixture(scope="module")
def second_boot(
    machine: Path, initrd_signing: Path, disk: Path, first_boot: dict[str, str]
) -> dict[str, str]:
    """An OS update changed a file on /boot and left its package-trigger note:
    the default is refused, naming the file and the update; the owner signs
    again and the default boots verified."""
    config = f"/config-{BOARD_KERNEL_RELEASE}"
    with BootPartition(disk) as part:
        part.write(config, part.read(config) + b"# CONFIG_UPDATED_BY_THE_OS=y\n")
        note = format_trigger([f".{config}"], f"linux-image-{BOARD_KERNEL_RELEASE}")
        part.write("/kexec_package_trigger_post.txt", note)
    with start(machine, initrd_signing, disk) as running:
        to_main_menu(running)
        running.press("d")
        refused = words(running.wait_for_screen("Boot refused", SIGN))
        assert "files modified" in refused and "config-" in refused
        assert f"linux-image-{BOARD_KERNEL_RELEASE}" in refused
        running.press("u")
        update = words(running.wait_for_screen("Yes: hash /boot and sign it", SIGN))
        assert "config-" in update and "The OS update said" in update
        running.press("y")
        sign(running)
        running.press("enter")
        running.wait_for_screen(MAIN, 120)
        running.press("d")
        report = target_report(running)
    shutil.copyfile(disk, machine / "disk-after-second-boot.img")
    return report


def test_re_signing_moves_on_and_the_default_boots_with_the_same_pcr4(
    first_boot: dict[str, str], second_boot: dict[str, str]
) -> None:
    assert second_boot["pcr 4"] == first_boot["pcr 4"]
    assert second_boot["cmdline"] == first_boot["cmdline"]


def test_a_replayed_older_signed_boot_is_refused_and_unsafe_boot_changes_pcr4(
    machine: Path,
    initrd_signing: Path,
    disk: Path,
    first_boot: dict[str, str],
    second_boot: dict[str, str],
) -> None:
    replay = machine / "replayed.img"
    shutil.copyfile(machine / "disk-after-first-boot.img", replay)
    with start(machine, initrd_signing, replay) as running:
        to_main_menu(running)
        firmware_pcr4 = runtime_pcr4(running)
        running.press("d")
        refused = running.wait_for_screen("Boot refused", SIGN)
        assert "older signed /boot (rollback)" in words(refused)
        running.press("f")
        running.wait_for_screen("Boot without verifying /boot?", 60)
        running.press("y")
        running.wait_for_screen("Unsafe boot: choose an entry", 120)
        running.press("1")
        unsafe = target_report(running)
    assert unsafe["pcr 4"] != first_boot["pcr 4"]
    assert unsafe["pcr 4"] == extended(firmware_pcr4, "unsafe", "generic")


KERNEL = f"/vmlinuz-{BOARD_KERNEL_RELEASE}"
INITRD = f"/initrd.img-{BOARD_KERNEL_RELEASE}"
Tamper = Callable[[BootPartition, OwnerKey], None]


def flip_byte(path: str, at: int) -> Tamper:
    def tamper(part: BootPartition, stranger: OwnerKey) -> None:
        data = bytearray(part.read(path))
        data[at % len(data)] ^= 0xFF
        part.write(path, bytes(data))

    return tamper


def append_line(path: str, line: bytes) -> Tamper:
    def tamper(part: BootPartition, stranger: OwnerKey) -> None:
        part.write(path, part.read(path) + line)

    return tamper


def add_file(part: BootPartition, stranger: OwnerKey) -> None:
    part.write("/extra-module.ko", b"not signed by the owner\n")


def remove_file(part: BootPartition, stranger: OwnerKey) -> None:
    part.remove(f"/config-{BOARD_KERNEL_RELEASE}")


def remove_signature(part: BootPartition, stranger: OwnerKey) -> None:
    part.remove("/kexec.sig")


def strangers_signature(part: BootPartition, stranger: OwnerKey) -> None:
    """A valid signature over the very same lists, by a key that is not the owner's."""
    lists = {n: part.read(f"/{n}") for n in signed_names(part.names("/"))}
    signed = subprocess.run(
        ["gpg", "--homedir", str(stranger.home), "--batch", "--detach-sign", "-a"],
        input=signed_listing(lists),
        check=True,
        capture_output=True,
        timeout=120,
    )
    part.write("/kexec.sig", signed.stdout)


TAMPERS: dict[str, tuple[Tamper, tuple[str, ...]]] = {
    "modified kernel": (flip_byte(KERNEL, 4096), ("files modified", "vmlinuz-")),
    "modified initrd": (flip_byte(INITRD, -100), ("files modified", "initrd.img-")),
    "modified grub.cfg": (
        append_line("/grub/grub.cfg", b"menuentry 'evil' { linux /vmlinuz init=/bin/sh }\n"),
        ("files modified", "grub/grub.cfg"),
    ),
    "added file": (add_file, ("files added", "extra-module.ko")),
    "removed file": (remove_file, ("files removed", "config-")),
    "stranger's signature": (strangers_signature, ("signed by a key that is not the owner's",)),
    "missing signature": (remove_signature, ("signature missing",)),
    "corrupted signature": (flip_byte("/kexec.sig", 200), ("signature",)),
}


@pytest.mark.parametrize("case", list(TAMPERS))
def test_a_tampered_boot_is_refused_naming_why_and_nothing_boots(
    machine: Path,
    initrd_signing: Path,
    second_boot: dict[str, str],
    stranger: OwnerKey,
    case: str,
) -> None:
    tamper, reasons = TAMPERS[case]
    tampered = machine / "tampered.img"
    shutil.copyfile(machine / "disk-after-second-boot.img", tampered)
    with BootPartition(tampered) as part:
        tamper(part, stranger)
    before = image_digest(tampered)
    with start(machine, initrd_signing, tampered) as running:
        to_main_menu(running)
        running.press("d")
        refused = words(running.wait_for_screen("Boot refused", SIGN))
        for reason in reasons:
            assert reason in refused, refused
        power_off(running)
        running.wait_exit(120)
        assert "OS-TARGET" not in running.console_text()
    assert image_digest(tampered) == before  # refused, and nothing written


@pytest.fixture
def machine_copy(machine: Path) -> Iterator[Path]:
    """The same machine's TPM and firmware variables, to change without
    spoiling the module's machine."""
    copy = Path(tempfile.mkdtemp(prefix="board-", dir="/tmp"))
    shutil.copytree(machine / "tpm", copy / "tpm")
    shutil.copyfile(machine / "OVMF_VARS.fd", copy / "OVMF_VARS.fd")
    yield copy
    shutil.rmtree(copy, ignore_errors=True)


def delete_counter(machine: Path, disk: Path) -> int:
    """Remove /boot's rollback counter from the machine's TPM, as a TPM reset
    or a swapped TPM would (the owner passphrase of this TPM is empty)."""
    from runtime.tpm import nv
    from runtime.tpm.connection import Tpm

    with BootPartition(disk) as part:
        index = parse_rollback(part.read("/kexec_rollback.txt")).nv_index
    with Swtpm(machine / "tpm") as swtpm, Tpm.connect(swtpm.tcti) as tpm:
        nv.undefine(tpm, index, b"")
    return index


def test_a_deleted_counter_is_refused_then_signing_again_makes_a_new_one(
    machine: Path,
    machine_copy: Path,
    initrd_signing: Path,
    second_boot: dict[str, str],
) -> None:
    disk = machine_copy / "os-disk.img"
    shutil.copyfile(machine / "disk-after-second-boot.img", disk)
    old_index = delete_counter(machine_copy, disk)
    with start(machine_copy, initrd_signing, disk) as running:
        # the start already notices: the TPM and /boot disagree
        early = words(running.wait_for_screen("TPM state inconsistent", FIRST_SCREEN))
        assert "no longer holds the rollback counter" in early, early
        assert f"{old_index:08x}" not in early, early  # the NV index is for the log
        assert "reset or replaced" in early, early
        running.press("m")
        running.wait_for_screen(MAIN, 120)
        running.press("d")
        refused = words(running.wait_for_screen("Boot refused", SIGN))
        assert "TPM rollback counter missing" in refused, refused
        assert "reset or replaced" in refused, refused
        running.press("u")
        running.wait_for_screen("Yes: hash /boot and sign it", SIGN)
        running.press("y")
        sign(running, first=True)
        running.press("enter")
        running.wait_for_screen(MAIN, 120)
        running.press("d")
        report = target_report(running)
    assert report["pcr 4"] == second_boot["pcr 4"]
    with BootPartition(disk) as part:
        assert parse_rollback(part.read("/kexec_rollback.txt")).nv_index != old_index


@pytest.mark.parametrize("cut_at", ["writing", "incrementing the rollback counter"])
def test_a_power_cut_while_signing_leaves_a_signed_boot(
    machine: Path,
    initrd_signing: Path,
    disk: Path,
    first_boot: dict[str, str],
    second_boot: dict[str, str],
    cut_at: str,
) -> None:
    """QEMU killed (the guest's page cache dies with it) once the signing
    names a step; the next power-on finds the old or the new signed state,
    finishes or drops the interrupted change, and boots the default verified."""
    with start(machine, initrd_signing, disk) as running:
        to_main_menu(running)
        open_options(running)
        running.press("u")
        running.wait_for_screen("Yes: hash /boot and sign it", SIGN)
        running.press("y")
        running.wait_for_screen("Owner key PIN", SIGN)
        running.press("1234", settle=0.1)
        running.press("enter", settle=0.0)
        running.wait_for_console(re.escape(cut_at), SIGN)  # a step may show only briefly
        running.close()  # the power cut
    with start(machine, initrd_signing, disk) as again:
        to_main_menu(again)
        again.press("d")
        report = target_report(again)
    assert report["pcr 4"] == first_boot["pcr 4"]


def test_the_root_file_system_list_is_signed_with_boot_and_checked(
    machine: Path,
    machine_copy: Path,
    initrd_signing: Path,
    second_boot: dict[str, str],
) -> None:
    """CONFIG_ROOT_DEV: the root partition is mounted read-only in the guest,
    hashed, the list signed with /boot after the review, then checked
    against the signed copy."""
    disk = machine_copy / "os-disk.img"
    shutil.copyfile(machine / "disk-after-second-boot.img", disk)
    with start(machine_copy, initrd_signing, disk) as running:
        to_main_menu(running)
        open_options(running)
        running.press("a")
        running.wait_for_screen("Verify the root file system now", 60)
        running.press("c")
        review = words(running.wait_for_screen("Yes: hash /boot and sign it", SIGN))
        assert "A new root hash list of 2 files" in review, review
        running.press("y")
        sign(running)
        running.press("enter")
        running.wait_for_screen("Verify the root file system now", 120)
        running.press("v")
        checked = words(running.wait_for_screen("The root file system matches", SIGN))
        assert "All 2 files match" in checked, checked
        running.press("enter")
        running.wait_for_screen("Verify the root file system now", 60)
        running.press("b")
        running.wait_for_screen("Update checksums and sign /boot", 60)
        running.press("b")
        menu = words(running.wait_for_screen(MAIN, 60))
        assert "Root file system: matches your signed list (2 files)" in menu, menu
        power_off(running)
        running.wait_exit(120)
    with BootPartition(disk) as part:
        assert b"  etc/os-release\n" in part.read("/kexec_root_hashes.txt")
