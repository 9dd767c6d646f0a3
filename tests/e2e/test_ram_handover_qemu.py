"""Nothing secret is left in RAM for the next kernel: kexec hands the whole
RAM over without clearing it, so whatever the firmware's processes held and
did not wipe, the booted OS could read.

One machine, four power-ons, each ending in a boot of the test OS. The OS
powers off; QEMU keeps the machine stopped, and its RAM is dumped and
searched for every form of the TOTP secret and for the owner passphrases:

1. factory-new: the secret is enrolled (the owner passphrase typed twice),
   /boot is signed (the passphrase again, for the TPM counter), and the
   default entry boots, all in the same power-on;
2. an ordinary power-on: the secret is unsealed for the TOTP, the default boots;
3. the recovery shell first (the owner's signature over a challenge), then
   the default boots in the same power-on;
4. "Reset the TPM" with a new owner passphrase, then No to sealing a secret:
   the passphrase was kept for sealing and must be gone; an unsafe boot
   (the reset removed /boot's counter) starts the OS.

The search first proves itself each time: a canary word on the firmware
kernel's command line, which that kernel keeps and never frees, is found.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.e2e.conftest import BOARD, build
from tests.e2e.console_steps import (
    MAIN,
    SIGN,
    enrol_secret,
    make_first_entry_default,
    reset_tpm_from_the_options,
    sign_from_the_options,
    target_report,
)
from tests.e2e.guest_ram import Needles, dump_after_power_off, found_in, places, qemu_args
from tests.leakcheck import secret_forms
from tools.board_console import Boot, boot
from tools.owner_key import OwnerKey

pytestmark = [pytest.mark.qemu, pytest.mark.xdist_group("qemu"), pytest.mark.timeout(2400)]
FIRST_SCREEN = 400
SETTINGS = b'export CONFIG_BOARD_NAME="QEMU RAM hand-over"\n'
#: Random-looking, so that any 12 bytes of one found in RAM are this passphrase
#: (a piece is what a reused kernel input buffer would keep).
OWNER_PASSPHRASE = "Kq7vXw2rPz9mTb4nLc6hRj"
NEW_OWNER_PASSPHRASE = "Wd3kYs8fNq5tGx2pVb7mHc"


@pytest.fixture(scope="module")
def initrd_signing(tmp_path_factory: pytest.TempPathFactory, owner_key: OwnerKey) -> Path:
    return build(tmp_path_factory.mktemp("build-ram"), SETTINGS, owner_key, signing=True)


@dataclass
class Scan:
    """What one power-on left in RAM for the next kernel."""

    canary_found: bool
    leaks: dict[str, list[bytes]] = field(default_factory=dict)


@dataclass
class Machine:
    directory: Path
    initrd: Path
    disk: Path
    secret: bytes = b""
    #: One per machine: the command line is measured (PCR 9), and the secret
    #: is sealed to it.
    canary: str = field(default_factory=lambda: "canary" + secrets.token_hex(12))

    def start(self) -> tuple[Boot, str]:
        running = boot(BOARD, self.directory, self.initrd)
        running.instance.disks = [self.disk]
        running.instance.extra_cmdline = f"test.canary={self.canary}"
        running.instance.extra_args = qemu_args(self.directory / "qmp.sock")
        return running.start(), self.canary

    def scan_after_target(self, running: Boot, canary: str, *passphrases: str) -> Scan:
        """Once the test OS has run and powered off: search the RAM it was given."""
        running.wait_for_console(r"OS-TARGET: done", 300)
        ram = dump_after_power_off(self.directory / "qmp.sock", self.directory / "ram.elf")
        (self.directory / "ram.elf").unlink()
        target_report(running)
        needles = Needles()
        for i, form in enumerate(secret_forms(self.secret)):
            needles.pieced[f"secret form {i}"] = form
        for n, passphrase in enumerate(passphrases):
            needles.pieced[f"passphrase {n}"] = passphrase.encode()
            needles.pieced[f"passphrase {n} (UTF-16)"] = passphrase.encode("utf-16-le")
        return Scan(bool(places(ram, canary.encode())), found_in(ram, needles))


def assert_nothing_left(scan: Scan) -> None:
    assert scan.canary_found, "the scan does not see the old kernel's RAM"
    assert scan.leaks == {}


@pytest.fixture(scope="module")
def ram_machine(machine: Path, initrd_signing: Path, disk: Path) -> Machine:
    return Machine(machine, initrd_signing, disk)


@pytest.fixture(scope="module")
def enrolled_and_booted(ram_machine: Machine) -> Scan:
    running, canary = ram_machine.start()
    with running:
        running.wait_for_screen("TOTP code cannot be shown", FIRST_SCREEN)
        ram_machine.secret = enrol_secret(running, OWNER_PASSPHRASE, None)
        running.wait_for_screen(MAIN, 120)
        signed = sign_from_the_options(running, first=True, owner_passphrase=OWNER_PASSPHRASE)
        assert "/boot is signed and verifies" in " ".join(signed.split()), signed
        running.press("enter")
        running.wait_for_screen(MAIN, 120)
        make_first_entry_default(running, "Debian GNU/Linux")
        return ram_machine.scan_after_target(running, canary, OWNER_PASSPHRASE)


@pytest.fixture(scope="module")
def ordinary_power_on(ram_machine: Machine, enrolled_and_booted: Scan) -> Scan:
    running, canary = ram_machine.start()
    with running:
        running.wait_for_screen("TOTP: ", FIRST_SCREEN)
        running.wait_for_screen(MAIN, 120)
        running.press("d")
        return ram_machine.scan_after_target(running, canary, OWNER_PASSPHRASE)


@pytest.fixture(scope="module")
def after_recovery(ram_machine: Machine, owner_key: OwnerKey, ordinary_power_on: Scan) -> Scan:
    running, canary = ram_machine.start()
    with running:
        running.wait_for_screen(MAIN, FIRST_SCREEN)
        running.press("o")
        running.wait_for_screen("Options", 30)
        running.press("x")
        running.wait_for_screen("Open the recovery shell?", 30)
        running.press("y")
        challenge = running.wait_for_console(r"(heads-runtime recovery(?: [0-9a-f]{8}){4})", 120)
        for line in owner_key.clearsign(challenge.group(1)).splitlines():
            running.press(line, settle=0.05)
            running.press("enter", settle=0.05)
        running.wait_for_console(r"built-in shell \(ash\)[\s\S]*/ # ", 120)
        running.press("exit\r")
        running.wait_for_screen("TOTP code cannot be shown", FIRST_SCREEN)
        running.press("i")
        running.wait_for_screen(MAIN, 60)
        running.press("d")
        return ram_machine.scan_after_target(running, canary, OWNER_PASSPHRASE)


@pytest.fixture(scope="module")
def reset_then_no(ram_machine: Machine, after_recovery: Scan) -> Scan:
    running, canary = ram_machine.start()
    with running:
        running.wait_for_screen(MAIN, FIRST_SCREEN)
        reset_tpm_from_the_options(running, OWNER_PASSPHRASE, NEW_OWNER_PASSPHRASE)
        running.press("d")
        running.wait_for_screen("Boot refused", SIGN)
        running.press("f")
        running.wait_for_screen("Boot without verifying /boot?", 60)
        running.press("y")
        running.wait_for_screen("Unsafe boot: choose an entry", 120)
        running.press("1")
        return ram_machine.scan_after_target(
            running, canary, OWNER_PASSPHRASE, NEW_OWNER_PASSPHRASE
        )


def test_enrol_sign_and_boot_in_one_power_on_leave_nothing(enrolled_and_booted: Scan) -> None:
    assert_nothing_left(enrolled_and_booted)


def test_an_ordinary_power_on_leaves_nothing(ordinary_power_on: Scan) -> None:
    assert_nothing_left(ordinary_power_on)


def test_a_boot_after_the_recovery_shell_leaves_nothing(after_recovery: Scan) -> None:
    assert_nothing_left(after_recovery)


def test_a_tpm_reset_without_sealing_leaves_no_passphrase(reset_then_no: Scan) -> None:
    assert_nothing_left(reset_then_no)
