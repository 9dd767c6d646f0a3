"""Nothing secret is left in RAM for the next kernel: kexec hands the whole
RAM over without clearing it, so whatever the firmware's processes held and
did not wipe, the booted OS can read.

One power-on of a factory-new machine: the TOTP secret is enrolled (the owner
passphrase typed twice), /boot is signed (the passphrase again, for the TPM
counter) and the default entry boots. The test OS powers off; QEMU keeps the
machine stopped, and its RAM is dumped and searched for every form of the
secret and for the owner passphrase. The search first proves itself: a
canary word on the firmware kernel's command line, which the old kernel keeps
and never frees, must be found.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from tests.e2e.conftest import BOARD, build
from tests.e2e.console_steps import (
    MAIN,
    enrol_secret,
    make_first_entry_default,
    sign_from_the_options,
    target_report,
)
from tests.e2e.guest_ram import dump_after_power_off, places, qemu_args
from tests.leakcheck import secret_forms
from tools.board_console import Boot, boot
from tools.owner_key import OwnerKey

pytestmark = [pytest.mark.qemu, pytest.mark.xdist_group("qemu"), pytest.mark.timeout(1800)]
FIRST_SCREEN = 400
SETTINGS = b'export CONFIG_BOARD_NAME="QEMU RAM hand-over"\n'
#: Long and unlike anything else in RAM, so a find is this passphrase.
OWNER_PASSPHRASE = "ram-scan owner passphrase 7Qx"


@pytest.fixture(scope="module")
def initrd_signing(tmp_path_factory: pytest.TempPathFactory, owner_key: OwnerKey) -> Path:
    return build(tmp_path_factory.mktemp("build-ram"), SETTINGS, owner_key, signing=True)


def start(machine: Path, initrd: Path, disk: Path, canary: str) -> Boot:
    running = boot(BOARD, machine, initrd)
    running.instance.disks = [disk]
    running.instance.extra_cmdline = f"test.canary={canary}"
    running.instance.extra_args = qemu_args(machine / "qmp.sock")
    return running.start()


def found_in(ram: bytes, needles: dict[str, bytes]) -> dict[str, list[bytes]]:
    """Each needle found, with the bytes around each place: what held it."""
    return {name: [ram[max(0, at - 48):at + len(needle) + 48] for at in hits]
            for name, needle in needles.items() if (hits := places(ram, needle))}


def test_enrol_sign_and_boot_leave_no_secret_in_ram(
        machine: Path, initrd_signing: Path, disk: Path) -> None:
    canary = "canary" + secrets.token_hex(12)
    with start(machine, initrd_signing, disk, canary) as running:
        running.wait_for_screen("TOTP code cannot be shown", FIRST_SCREEN)
        secret = enrol_secret(running, OWNER_PASSPHRASE, None)
        running.wait_for_screen(MAIN, 120)
        signed = sign_from_the_options(running, first=True, owner_passphrase=OWNER_PASSPHRASE)
        assert "/boot is signed and verifies" in " ".join(signed.split()), signed
        running.press("enter")
        running.wait_for_screen(MAIN, 120)
        make_first_entry_default(running, "Debian GNU/Linux")
        running.wait_for_console(r"OS-TARGET: done", 300)
        ram = dump_after_power_off(machine / "qmp.sock", machine / "ram.elf")
        target_report(running)
    assert places(ram, canary.encode()), "the scan does not see the old kernel's RAM"
    needles = {f"secret form {i}": form for i, form in enumerate(secret_forms(secret))}
    needles["owner passphrase"] = OWNER_PASSPHRASE.encode()
    needles["owner passphrase (UTF-16)"] = OWNER_PASSPHRASE.encode("utf-16-le")
    assert found_in(ram, needles) == {}
