"""The Disk Unlock Key on a LUKS container inside an LVM logical volume, on
the qemu-swtpm board, over the serial console, with the LVM test OS disk
(tools/make_os_disk.py luks=True, lvm=True: the LUKS disk's two containers
and a LUKS2 container "cryptvault" in logical volume osvg/cryptvault, whose
OS initrd activates the volume group before it opens what its crypttab names).

1. An owned machine (TOTP enrolled, /boot signed, a default entry): the OS
   activates osvg and asks for the recovery passphrase of each container.
2. The setup from the TPM options finds the container inside the volume group
   (the firmware activated it), named /dev/mapper/osvg-cryptvault with its
   group, and sets the key up on it alone; the owner signs /boot with the
   key's files, kexec_key_lvm.txt among them.
3. After a power cycle (the firmware activates osvg before it measures the
   headers) the DUK passphrase is asked and the OS opens cryptvault through
   the DUK's slot 31 without asking, and asks for the other two as before.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.e2e.conftest import BOARD, build
from tests.e2e.console_steps import (
    MAIN,
    TARGET,
    enrol_secret,
    make_first_entry_default,
    power_off,
    set_up_disk_unlock,
    sign_from_the_options,
    type_line,
)
from tools import make_os_disk as osd
from tools.board_console import Boot, boot
from tools.owner_key import OwnerKey

pytestmark = [pytest.mark.qemu, pytest.mark.xdist_group("qemu"), pytest.mark.timeout(1800)]
FIRST_SCREEN = 400
OWNER_PASSPHRASE = "lvm owner passphrase 1"
DUK_PASSPHRASE = "Wq4nTz8kRm2xPv6cLb3sHd"
SETTINGS = b'export CONFIG_BOARD_NAME="QEMU disk unlock on LVM"\n'
#: the firmware's setup: one key slot added, one 16 MiB header backup hashed
SETUP = 600
VAULT = "/dev/mapper/osvg-cryptvault"


@pytest.fixture(scope="module")
def initrd_lvm(tmp_path_factory: pytest.TempPathFactory, owner_key: OwnerKey) -> Path:
    return build(tmp_path_factory.mktemp("build-lvm"), SETTINGS, owner_key, signing=True)


@pytest.fixture(scope="module")
def lvm_disk(machine: Path) -> Path:
    return osd.make_os_disk(machine / "lvm-disk.img", luks=True, lvm=True).image


def start(machine: Path, initrd: Path, disk: Path) -> Boot:
    running = boot(BOARD, machine, initrd)
    running.instance.disks = [disk]
    return running.start()


def os_run(running: Boot, passphrase: str) -> tuple[dict[str, str], str]:
    """The OS answered ``passphrase`` at each question until it is done:
    {crypttab name: key slot} it opened, and its console."""
    asked = 0
    while True:
        found = running.wait_for_console(
            rf"(?:OS-TARGET: passphrase for \S+[\s\S]*?){{{asked + 1}}}|OS-TARGET: done", TARGET
        )
        if "OS-TARGET: done" in found.group(0):
            break
        asked += 1
        type_line(running, passphrase)
    console = running.console_text()
    running.wait_exit(120)
    return dict(re.findall(r"OS-TARGET: opened (\S+) slot (\d+)", console)), console


@pytest.fixture(scope="module")
def owned(machine: Path, initrd_lvm: Path, lvm_disk: Path) -> tuple[dict[str, str], str]:
    with start(machine, initrd_lvm, lvm_disk) as first:
        first.wait_for_screen("TOTP code cannot be shown", FIRST_SCREEN)
        enrol_secret(first, OWNER_PASSPHRASE, None)
        first.wait_for_screen(MAIN, 120)
        sign_from_the_options(first, first=True, owner_passphrase=OWNER_PASSPHRASE)
        first.press("enter")
        first.wait_for_screen(MAIN, 120)
        make_first_entry_default(first, "Debian GNU/Linux", disk_unlock_offer="n")
        return os_run(first, osd.DISK_RECOVERY_PASSPHRASE)


def test_the_os_opens_the_container_inside_lvm_with_the_recovery_passphrase(
    owned: tuple[dict[str, str], str],
) -> None:
    slots, console = owned
    assert "OS-TARGET: lvm osvg active" in console, console[-2000:]
    assert slots.get("cryptvault") == "0", slots


@pytest.fixture(scope="module")
def set_up(machine: Path, initrd_lvm: Path, lvm_disk: Path, owned: object) -> tuple[str, str]:
    """The setup on the container inside LVM: the menu of disks, the last page."""
    with start(machine, initrd_lvm, lvm_disk) as running:
        running.wait_for_screen(MAIN, FIRST_SCREEN)

        def the_vault(which: str) -> str:
            choice = re.search(rf"(\d)\s+{re.escape(VAULT)}", which)
            assert choice, which
            return choice.group(1)

        passphrases = (osd.DISK_RECOVERY_PASSPHRASE, DUK_PASSPHRASE, OWNER_PASSPHRASE)
        which, signing, done = set_up_disk_unlock(running, the_vault, passphrases, SETUP)
        power_off(running)
        running.wait_exit(120)
    return which, signing + " " + done


def test_the_setup_offers_the_container_inside_lvm_with_its_group(
    set_up: tuple[str, str],
) -> None:
    which, done = set_up
    assert f"{VAULT} (LUKS2" in which and "LVM group osvg" in which, which
    assert "Sealed to PCRs" in done, done


def test_after_a_power_cycle_the_duk_opens_the_container_inside_lvm(
    machine: Path, initrd_lvm: Path, lvm_disk: Path, set_up: tuple[str, str]
) -> None:
    with start(machine, initrd_lvm, lvm_disk) as running:
        running.wait_for_screen(MAIN, FIRST_SCREEN)
        running.press("d")
        running.wait_for_screen("DUK passphrase", 300)
        type_line(running, DUK_PASSPHRASE)
        slots, console = os_run(running, osd.DISK_RECOVERY_PASSPHRASE)
    assert slots.get("cryptvault") == "31", slots
    assert "OS-TARGET: passphrase for cryptvault" not in console
    # the other containers were not set up: the OS asked for them as before
    assert sorted(v for k, v in slots.items() if k != "cryptvault") == ["0", "0"], slots
