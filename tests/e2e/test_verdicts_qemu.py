"""The verdict at the top of the main menu, on the qemu-swtpm board, one
power-on per verdict, each asserting the exact word and headline a user reads.

The module's machine is owned once (the TPM reset with an owner passphrase, a
TOTP secret sealed, no HOTP token, no automatic boot); /boot is then signed
from the options. Then, each its own power-on:

- the signed disk:                VERIFIED (green) "compare the TOTP code ..."
- grub.cfg changed after signing: CHANGED, naming grub/grub.cfg, in the menu
                                  and in the integrity report
- a stranger's valid signature:   TAMPERED? "... signed by a key that is not yours"
- a /boot never signed:           NOT SIGNED YET "... sign it now"
- no disk at all:                 NO DISK, and Default boot says there is nothing
                                  to boot (not that someone changed /boot)
- no TPM:                         NO TPM; the drivers still load, the disk is
                                  found, and an unverified boot starts the OS
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import BOARD, build
from tests.e2e.console_steps import (
    MAIN,
    SIGN,
    enrol_secret,
    power_off,
    sign_from_the_options,
    target_report,
    words,
)
from tests.e2e.test_verified_boot_qemu import strangers_signature
from tools.board_console import Boot, boot
from tools.os_disk_edit import BootPartition
from tools.owner_key import OwnerKey

pytestmark = [pytest.mark.qemu, pytest.mark.xdist_group("qemu"), pytest.mark.timeout(2400)]
FIRST_SCREEN = 400
OWNER_PASSPHRASE = "verdict owner 1"
SETTINGS = b'export CONFIG_BOARD_NAME="QEMU verdicts"\n'


@pytest.fixture(scope="module")
def initrd_verdicts(tmp_path_factory: pytest.TempPathFactory, owner_key: OwnerKey) -> Path:
    return build(tmp_path_factory.mktemp("build-verdicts"), SETTINGS, owner_key, signing=True)


def start(machine: Path, initrd: Path, disk: Path | None, with_tpm: bool = True) -> Boot:
    running = boot(BOARD, machine, initrd)
    running.instance.disks = [disk] if disk is not None else []
    running.instance.with_tpm = with_tpm
    return running.start()


def main_menu_verdict(running: Boot) -> tuple[str, str]:
    """(the title line with its tone word, the verdict line) of the main menu."""
    running.wait_for_screen(MAIN, FIRST_SCREEN)
    running.wait_for_screen("Power off", 60)
    screen = running.screen_text()
    lines = [line.rstrip() for line in screen.splitlines()]
    title = next(line for line in lines if MAIN in line)
    verdict = next(line for line in lines if re.match(r"^[A-Z /?]+: ", line))
    return title, verdict


def power_off_unbooted(running: Boot) -> None:
    """Power off (and answer the question); nothing was booted."""
    power_off(running)
    running.wait_exit(120)
    assert "OS-TARGET" not in running.console_text()


def refused_default(running: Boot, title: str) -> str:
    """Default boot, refused under ``title``: the refusal's words, then m (the
    main menu, Heads' letter)."""
    running.press("d")
    refused = words(running.wait_for_screen(title, SIGN))
    running.press("m")
    running.wait_for_screen(MAIN, 60)
    return refused


@pytest.fixture(scope="module")
def signed_disk(machine: Path, initrd_verdicts: Path, disk: Path) -> Iterator[Path]:
    """First power-on: own the TPM, seal a TOTP secret, sign /boot. The disk as
    signed is kept aside for the cases."""
    with start(machine, initrd_verdicts, disk) as running:
        running.wait_for_screen("TOTP code cannot be shown", FIRST_SCREEN)
        enrol_secret(running, OWNER_PASSPHRASE, None)
        running.wait_for_screen(MAIN, 120)
        signed = sign_from_the_options(running, first=True, owner_passphrase=OWNER_PASSPHRASE)
        assert "/boot is signed and verifies" in words(signed)
        running.press("enter")
        power_off_unbooted(running)
    kept = machine / "disk-signed.img"
    shutil.copyfile(disk, kept)
    yield kept


def case_disk(machine: Path, signed_disk: Path, name: str) -> Path:
    copy = machine / name
    shutil.copyfile(signed_disk, copy)
    return copy


def test_a_signed_boot_is_verified(machine: Path, initrd_verdicts: Path, signed_disk: Path) -> None:
    with start(machine, initrd_verdicts, case_disk(machine, signed_disk, "v.img")) as running:
        title, verdict = main_menu_verdict(running)
        assert title.endswith("OK"), title
        assert verdict == "VERIFIED: compare the TOTP code with your phone"
        assert re.search(r"TOTP: \d{6}", running.screen_text())
        power_off_unbooted(running)


def test_a_changed_grub_cfg_is_changed_naming_the_file(
    machine: Path, initrd_verdicts: Path, signed_disk: Path
) -> None:
    changed = case_disk(machine, signed_disk, "grub.img")
    with BootPartition(changed) as part:
        part.write("/grub/grub.cfg", part.read("/grub/grub.cfg") + b"# changed\n")
    with start(machine, initrd_verdicts, changed) as running:
        title, verdict = main_menu_verdict(running)
        assert title.endswith("WARNING"), title
        assert verdict.startswith("CHANGED: /boot changed since you signed it"), verdict
        assert "grub/grub.cfg" in verdict, verdict
        running.press("o")
        running.wait_for_screen("Investigate integrity", 60)
        running.press("i")
        report = words(running.wait_for_screen("Integrity report", 120))
        assert "CHANGED" in report and "grub/grub.cfg" in report, report
        running.press("b")
        running.wait_for_screen("Investigate integrity", 60)
        running.press("esc")
        running.wait_for_screen(MAIN, 60)
        power_off_unbooted(running)


def test_a_strangers_signature_is_tampered(
    machine: Path, initrd_verdicts: Path, signed_disk: Path, stranger: OwnerKey
) -> None:
    resigned = case_disk(machine, signed_disk, "stranger.img")
    with BootPartition(resigned) as part:
        strangers_signature(part, stranger)
    with start(machine, initrd_verdicts, resigned) as running:
        title, verdict = main_menu_verdict(running)
        assert title.endswith("ERROR"), title
        assert verdict == "TAMPERED?: /boot is signed by a key that is not yours"
        refused = refused_default(running, "Boot refused")
        assert "signed by another key" in refused, refused
        assert "update checksums" not in refused.lower(), refused  # no re-sign offered
        power_off_unbooted(running)


def test_a_boot_never_signed_is_not_signed_yet(
    machine: Path, initrd_verdicts: Path, os_disk: Path
) -> None:
    fresh = machine / "fresh.img"
    shutil.copyfile(os_disk, fresh)
    with start(machine, initrd_verdicts, fresh) as running:
        title, verdict = main_menu_verdict(running)
        assert title.endswith("WARNING"), title
        assert verdict == "NOT SIGNED YET: /boot was never signed: sign it now"
        refused = refused_default(running, "not signed yet")
        assert "Sign /boot now" in refused, refused
        assert "someone else" not in refused, refused
        power_off_unbooted(running)


def test_no_disk_is_no_disk_not_an_attack(
    machine: Path, initrd_verdicts: Path, signed_disk: Path
) -> None:
    with start(machine, initrd_verdicts, None) as running:
        problem = running.wait_for_screen("no /boot partition found", FIRST_SCREEN)
        assert "Retry" in problem, problem
        running.press("m")
        title, verdict = main_menu_verdict(running)
        assert title.endswith("WARNING"), title
        assert verdict == "NO DISK: no disk was found: there is nothing to boot"
        refused = refused_default(running, "Nothing to boot")
        assert "someone else" not in refused and "not what you signed" not in refused, refused
        power_off_unbooted(running)


def test_without_a_tpm_the_disk_is_found_and_boots_unverified(
    machine: Path,
    initrd_verdicts: Path,
    signed_disk: Path,
) -> None:
    with start(
        machine, initrd_verdicts, case_disk(machine, signed_disk, "no-tpm.img"), with_tpm=False
    ) as running:
        running.wait_for_screen("ERROR: no TPM", FIRST_SCREEN)
        running.press("c")
        title, verdict = main_menu_verdict(running)
        assert title.endswith("ERROR"), title
        assert verdict == "NO TPM: nothing on this boot can be verified"
        assert "/boot: /dev/vda" in running.screen_text()
        running.press("o")
        running.wait_for_screen("Boot options", 60)
        running.press("o")
        running.wait_for_screen("Boot anyway, unverified", 60)
        running.press("f")
        question = running.wait_for_screen("Boot without verifying /boot?", 120)
        assert "> n  No" in question, question
        running.press("y")
        running.wait_for_screen("Unsafe boot: choose an entry", 120)
        running.press("1")
        report = target_report(running)
    assert report["cmdline"]
