"""The qemu-swtpm board boots to the runtime's menu, is driven by keys, powers
off, and a one-byte change of the initramfs changes PCR 9 so the TOTP secret
sealed to the original refuses to unseal.

Two boots in all (this tier shares boots): the first covers the menu, the
navigation and power off; the second the tampered image, on the same TPM.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime.secrets.totp import totp_code
from tools.board_console import Boot, boot
from tools.provision_board import predicted_pcr9, seal_totp

pytestmark = [pytest.mark.qemu, pytest.mark.xdist_group("qemu"), pytest.mark.timeout(900)]
BOARD = "qemu-swtpm"


@pytest.fixture(scope="module")
def machine() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="board-", dir="/tmp"))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def secret(machine: Path, initrd_a: Path, board_cmdline: str) -> bytes:
    value = os.urandom(20)
    seal_totp(machine / "tpm", initrd_a.read_bytes(), board_cmdline, value)
    return value


@pytest.fixture(scope="module")
def first_boot(machine: Path, initrd_a: Path, secret: bytes) -> Iterator[Boot]:
    with boot(BOARD, machine, initrd_a) as running:
        yield running


def test_cold_boot_reaches_the_menu_with_a_valid_totp(
    first_boot: Boot, secret: bytes, initrd_a: Path, board_cmdline: str
) -> None:
    screen = first_boot.wait_for_screen("4  Power off", timeout=400)
    assert "1  System information" in screen
    found = re.search(r"TOTP (\d{6})", screen)
    assert found, screen
    now = time.time()
    assert found.group(1) in {totp_code(secret, now + d) for d in (-60, -30, 0, 30)}
    # The window turns: the runtime unseals again and shows the next code.
    deadline = time.monotonic() + 45
    while time.monotonic() < deadline:
        first_boot.watch(1.0)
        later = re.search(r"TOTP (\d{6})  \((\s?\d+) s left\)", first_boot.screen_text())
        if later and later.group(1) != found.group(1):
            break
    else:
        raise AssertionError("the TOTP code did not change within 45 s")
    now = time.time()
    assert later.group(1) in {totp_code(secret, now + d) for d in (-30, 0, 30)}
    # The firmware measured exactly this initramfs and command line into PCR 9.
    assert first_boot.pcr(9) == predicted_pcr9(initrd_a.read_bytes(), board_cmdline).hex()
    assert "menu-shown" in first_boot.stages()


def test_the_menu_is_navigable_by_keys(first_boot: Boot) -> None:
    first_boot.wait_for_screen("4  Power off")
    first_boot.press("enter")
    info = first_boot.wait_for_screen("Esc or q: back", timeout=30)
    assert "System information" in info
    assert "PCR 9" in info
    assert "User configuration: in the image" in info  # the build placed it
    first_boot.press("q")
    first_boot.wait_for_screen("4  Power off", timeout=30)
    first_boot.press("down", "enter")
    # The check runs beside the menu; an open page shows its result when it comes.
    measurements = first_boot.wait_for_screen("PCR 9: matches the logs", timeout=120)
    assert "PCRs match the firmware event log and the runtime's extends" in measurements
    first_boot.press("esc", settle=1.0)
    menu = first_boot.wait_for_screen("4  Power off", timeout=30)
    assert "> 2  Measurements" in menu  # focus came back where it was
    assert "Loading drivers" not in menu  # the background work has finished


def test_power_off_powers_off(first_boot: Boot) -> None:
    first_boot.press("4")
    first_boot.wait_exit(timeout=120)
    stages = first_boot.stages()
    assert stages["choice"][1] == "value=power-off"
    # Logged while the menu was up, printed on the way out.
    assert stages["eventlog-checked"][1] == "match=True"
    assert stages["modules-loaded"][1].endswith("failed=0")


def test_a_one_byte_change_of_the_initramfs_is_measured_and_refused(
    machine: Path, initrd_a: Path, initrd_b: Path, board_cmdline: str, first_boot: Boot
) -> None:
    # Same machine, same TPM state as the first boot; only the initramfs differs.
    first_boot.close()  # the order of tests is not guaranteed under xdist: end it here
    with boot(BOARD, machine, initrd_b) as tampered:
        screen = tampered.wait_for_screen("4  Power off", timeout=400)
        assert "TOTP secret refused: PCR 9 changed" in screen
        assert not re.search(r"TOTP \d{6}", screen)
        pcr9 = tampered.pcr(9)
        assert pcr9 != predicted_pcr9(initrd_a.read_bytes(), board_cmdline).hex()
        assert pcr9 == predicted_pcr9(initrd_b.read_bytes(), board_cmdline).hex()
        tampered.press("4")
        tampered.wait_exit(timeout=120)


def test_a_machine_without_a_tpm_gets_a_plain_message(initrd_a: Path) -> None:
    directory = Path(tempfile.mkdtemp(prefix="board-", dir="/tmp"))
    try:
        running = boot(BOARD, directory, initrd_a)
        running.instance.with_tpm = False
        with running:
            screen = running.wait_for_screen("4  Power off", timeout=400)
            assert "No TPM" in screen
            assert "Traceback" not in running.console_text()
            running.press("1")
            info = running.wait_for_screen("Esc or q: back", timeout=30)
            assert "Board:" in info
            running.press("q", "4")
            running.wait_exit(timeout=120)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
