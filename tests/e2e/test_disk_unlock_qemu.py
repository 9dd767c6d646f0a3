"""The Disk Unlock Key's story on the qemu-swtpm board, over the serial
console, with the LUKS test OS disk (tools/make_os_disk.py luks=True: a LUKS2
container at /dev/vda3 and a LUKS1 one at /dev/vda4, the recovery passphrase
in slot 0, and an OS initrd that opens what its crypttab names, Debian
cryptroot's way, asking on the console for a key file "none").

1. An owned machine (TOTP enrolled, /boot signed, a default entry) whose OS
   asks for the recovery passphrase at each boot.
2. The DUK set up from the TPM options (both disks, the recovery passphrase,
   the DUK passphrase twice, the owner passphrase, /boot signed with its
   files); after a power cycle the DUK passphrase is asked and the OS opens
   both containers through the DUK's slots (31 and 7) without asking.
3. Wrong DUK passphrases: three, then the way forward, and the OS asks for
   the recovery passphrase, which opens slot 0.
4. The LUKS2 container's header replaced by another container's: the key
   stays sealed and the screen names /dev/vda3 (the boot may go on without
   it: the OS then asks for the recovery passphrase).
5. Other owner settings in the image (PCR 9 differs): the key stays sealed
   naming PCR 9 before any passphrase is asked, and the recovery passphrase
   opens the disks.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import BOARD, build
from tests.e2e.console_steps import (
    MAIN,
    TARGET,
    enrol_secret,
    make_first_entry_default,
    open_options,
    power_off,
    sign,
    sign_from_the_options,
    type_line,
    words,
)
from tools import make_os_disk as osd
from tools.board_console import Boot, boot
from tools.owner_key import OwnerKey

pytestmark = [pytest.mark.qemu, pytest.mark.xdist_group("qemu"), pytest.mark.timeout(2400)]
FIRST_SCREEN = 400
OWNER_PASSPHRASE = "disk owner passphrase 1"
DUK_PASSPHRASE = "disk unlock passphrase 1"
SETTINGS = b'export CONFIG_BOARD_NAME="QEMU disk unlock"\n'
#: the firmware's setup: two key slots added, two 16 MiB header backups hashed
SETUP = 600


@pytest.fixture(scope="module")
def initrd_duk(tmp_path_factory: pytest.TempPathFactory, owner_key: OwnerKey) -> Path:
    return build(tmp_path_factory.mktemp("build-duk"), SETTINGS, owner_key, signing=True)


@pytest.fixture(scope="module")
def luks_disk(machine: Path) -> Path:
    return osd.make_os_disk(machine / "luks-disk.img", luks=True).image


def start(machine: Path, initrd: Path, disk: Path) -> Boot:
    running = boot(BOARD, machine, initrd)
    running.instance.disks = [disk]
    return running.start()


def answer_the_os(running: Boot, passphrase: str) -> None:
    """The OS asks for each container's passphrase in turn (its own crypttab)."""
    for _ in osd.LUKS_CONTAINERS:
        running.wait_for_console(r"OS-TARGET: passphrase for \S+", TARGET)
        type_line(running, passphrase)


def opened(running: Boot) -> dict[str, str]:
    """{crypttab name: key slot} as the OS reports them once it is done."""
    running.wait_for_console(r"OS-TARGET: done", TARGET)
    console = running.console_text()
    running.wait_exit(120)
    return dict(re.findall(r"OS-TARGET: opened (\S+) slot (\d+)", console))


@pytest.fixture(scope="module")
def owned(machine: Path, initrd_duk: Path, luks_disk: Path) -> dict[str, str]:
    with start(machine, initrd_duk, luks_disk) as first:
        first.wait_for_screen("TOTP code cannot be shown", FIRST_SCREEN)
        enrol_secret(first, OWNER_PASSPHRASE, None)
        first.wait_for_screen(MAIN, 120)
        sign_from_the_options(first, first=True, owner_passphrase=OWNER_PASSPHRASE)
        first.press("enter")
        first.wait_for_screen(MAIN, 120)
        # saving a default offers the DUK (the disks are encrypted): not now
        make_first_entry_default(first, "Debian GNU/Linux", disk_unlock_offer="n")
        answer_the_os(first, osd.DISK_RECOVERY_PASSPHRASE)
        return opened(first)


def test_without_a_duk_the_os_asks_for_the_recovery_passphrase(owned: dict[str, str]) -> None:
    assert sorted(owned.values()) == ["0", "0"], owned


@pytest.fixture(scope="module")
def duk_set_up(machine: Path, initrd_duk: Path, luks_disk: Path, owned: dict[str, str]) -> str:
    """The setup's last page, in words."""
    with start(machine, initrd_duk, luks_disk) as running:
        running.wait_for_screen(MAIN, FIRST_SCREEN)
        open_options(running)
        running.press("t")
        running.wait_for_screen("Set up the Disk Unlock Key", 60)
        running.press("d")
        which = running.wait_for_screen("which encrypted disks?", 120)
        assert "/dev/vda3" in which and "/dev/vda4" in which, which
        running.press("a")
        running.wait_for_screen("Disk Recovery Key passphrase", 120)
        type_line(running, osd.DISK_RECOVERY_PASSPHRASE)
        running.wait_for_screen("Disk Unlock Key passphrase", SETUP)
        type_line(running, DUK_PASSPHRASE)
        type_line(running, DUK_PASSPHRASE)  # the confirmation
        running.wait_for_screen("TPM owner passphrase", 60)
        type_line(running, OWNER_PASSPHRASE)
        sign(running)
        running.press("enter")
        done = words(running.wait_for_screen("Disk Unlock Key set up", SETUP))
        running.press("enter")
        running.wait_for_screen("TPM/TOTP/HOTP options", 60)
        running.press("b")
        running.wait_for_screen("Update checksums and sign /boot", 60)
        running.press("b")
        running.wait_for_screen(MAIN, 60)
        power_off(running)
        running.wait_exit(120)
    return done


def test_setup_seals_to_the_firmware_modules_and_header_pcrs(duk_set_up: str) -> None:
    assert "Sealed to PCRs 0, 1, 2, 3, 4, 5, 6, 7, 9" in duk_set_up, duk_set_up


def test_the_duk_passphrase_opens_the_disks_without_the_os_asking(
    machine: Path, initrd_duk: Path, luks_disk: Path, duk_set_up: str
) -> None:
    with start(machine, initrd_duk, luks_disk) as running:
        running.wait_for_screen(MAIN, FIRST_SCREEN)
        running.press("d")
        prompt = words(running.wait_for_screen("DUK passphrase", 300))
        assert "TOTP:" in prompt and "Attempt 1 of 3" in prompt, prompt
        type_line(running, DUK_PASSPHRASE)
        slots = opened(running)
        console = running.console_text()
    assert sorted(slots.values()) == ["31", "7"], slots
    assert "OS-TARGET: passphrase for" not in console
    assert "OS-TARGET: secret.key" in console
    # the key itself is nowhere on the console
    assert DUK_PASSPHRASE not in console


def test_wrong_duk_passphrases_leave_the_recovery_passphrase(
    machine: Path, initrd_duk: Path, luks_disk: Path, duk_set_up: str
) -> None:
    with start(machine, initrd_duk, luks_disk) as running:
        running.wait_for_screen(MAIN, FIRST_SCREEN)
        running.press("d")
        for attempt in (1, 2, 3):
            running.wait_for_screen(f"Attempt {attempt} of 3", 300)
            type_line(running, f"not the passphrase {attempt}")
        choice = words(running.wait_for_screen("Boot without the Disk Unlock Key?", 300))
        assert "refused 3 times" in choice, choice
        running.press("y")
        answer_the_os(running, osd.DISK_RECOVERY_PASSPHRASE)
        slots = opened(running)
    assert sorted(slots.values()) == ["0", "0"], slots


def _replace_luks2_header(disk: Path, work: Path) -> None:
    """Another LUKS2 container's header over /dev/vda3's (the same size)."""
    other = work / "other.img"
    with open(other, "wb") as f:
        f.truncate(osd.LUKS_ROOT.size)
    subprocess.run(
        [
            "/sbin/cryptsetup",
            "luksFormat",
            "--batch-mode",
            "--type=luks2",
            "--pbkdf=pbkdf2",
            "--pbkdf-force-iterations=1000",
            "--key-file=-",
            str(other),
        ],
        input=b"an attacker's passphrase",
        check=True,
        capture_output=True,
        timeout=120,
    )
    header = other.read_bytes()[: 16 << 20]
    with open(disk, "r+b") as f:
        f.seek(osd.LUKS_ROOT.offset)
        f.write(header)


def test_a_replaced_header_refuses_the_boot_naming_the_device(
    machine: Path, initrd_duk: Path, luks_disk: Path, duk_set_up: str
) -> None:
    changed = machine / "luks-disk-changed.img"
    shutil.copyfile(luks_disk, changed)
    _replace_luks2_header(changed, machine)
    with start(machine, initrd_duk, changed) as running:
        running.wait_for_screen(MAIN, FIRST_SCREEN)
        running.press("d")
        refusal = words(running.wait_for_screen("Boot without the Disk Unlock Key?", 300))
        assert "/dev/vda3" in refusal and "LUKS" in refusal, refusal
        assert "/dev/vda4" not in refusal.split("Boot without")[1], refusal
        assert "DUK passphrase" not in running.console_text()
        running.press("b")
        running.wait_for_screen(MAIN, 60)
        power_off(running)
        running.wait_exit(120)


@pytest.fixture(scope="module")
def initrd_other(tmp_path_factory: pytest.TempPathFactory, owner_key: OwnerKey) -> Path:
    """The same runtime with other owner settings: PCR 9 differs."""
    other = SETTINGS + b"# one more line in the owner's settings\n"
    return build(tmp_path_factory.mktemp("build-duk-other"), other, owner_key, signing=True)


def test_a_changed_configuration_names_the_pcr_and_leaves_the_recovery_passphrase(
    machine: Path, initrd_other: Path, luks_disk: Path, duk_set_up: str
) -> None:
    with start(machine, initrd_other, luks_disk) as running:
        running.wait_for_screen("TOTP code cannot be shown", FIRST_SCREEN)
        running.press("i")  # ignore and continue: the menu, unattested
        running.wait_for_screen(MAIN, 120)
        running.press("d")
        # known before the passphrase is asked: none is
        choice = words(running.wait_for_screen("Boot without the Disk Unlock Key?", 300))
        # PCR 9 measures the image (OVMF's PCR 4 events move with it too here)
        named = re.search(r"stays sealed: PCR ([\d, ]+) changed", choice)
        assert named and "9" in named.group(1).split(", "), choice
        assert "DUK passphrase" not in running.console_text()
        running.press("y")
        answer_the_os(running, osd.DISK_RECOVERY_PASSPHRASE)
        slots = opened(running)
    assert sorted(slots.values()) == ["0", "0"], slots
