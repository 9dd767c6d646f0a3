"""The everyday power-on on the qemu-swtpm board, driven over the serial
console: an owned machine whose TOTP and HOTP check out boots its signed
default entry by itself after a short countdown, unless a key stops it or
/boot changed.

1. factory-new: the owner enrols a TOTP/HOTP secret (the TPM is reset with an
   owner passphrase), and no countdown follows, as someone is at the keyboard;
   then signs /boot (the rollback counter is made with that passphrase) and
   makes the first entry the default, which boots;
2. power on, touch nothing: TOTP shown, HOTP Success, the countdown, and the
   default boots verified (same PCR 4 and command line as in step 1);
3. a key during the countdown: the main menu, nothing boots;
4. a changed grub.cfg: no countdown starts (the verdict is CHANGED, naming
   the file, checked before any countdown), the default boot is refused
   naming it, and nothing boots.
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import pytest

from runtime.secrets.totp import totp_code
from tests.e2e.conftest import BOARD, build
from tests.e2e.console_steps import (
    MAIN,
    SIGN,
    Token,
    enrol_secret,
    image_digest,
    make_first_entry_default,
    power_off,
    sign_from_the_options,
    target_report,
    words,
)
from tools.board_console import Boot, boot
from tools.os_disk_edit import BootPartition
from tools.owner_key import OwnerKey

pytestmark = [pytest.mark.qemu, pytest.mark.xdist_group("qemu"), pytest.mark.timeout(1800)]
FIRST_SCREEN = 400
COUNTDOWN_S = 5
OWNER_PASSPHRASE = "owner passphrase 2"
TOKEN_PIN = "12345678"  # the software token's factory admin PIN
SETTINGS = (
    b'export CONFIG_HOTPKEY=y\nexport CONFIG_HOTP_TOKEN="serial:/dev/ttyS1"\n'
    b'export CONFIG_BOARD_NAME="QEMU power-on"\n'
    b'export CONFIG_AUTO_BOOT_TIMEOUT="%d"\n' % COUNTDOWN_S
)


@pytest.fixture(scope="module")
def initrd_autoboot(tmp_path_factory: pytest.TempPathFactory, owner_key: OwnerKey) -> Path:
    """Owner settings with the HOTP token and the automatic boot; the owner's
    secret key inside, so the firmware can sign /boot."""
    return build(tmp_path_factory.mktemp("build-autoboot"), SETTINGS, owner_key, signing=True)


def start(machine: Path, initrd: Path, token: Token, disk: Path) -> Boot:
    running = boot(BOARD, machine, initrd)
    running.instance.disks = [disk]
    running.instance.extra_args = token.qemu_args()
    return running.start()


def assert_current_code(screen: str, secret: bytes) -> None:
    found = re.search(r"TOTP:? (\d{6})", screen)
    assert found, screen
    now = time.time()
    assert found.group(1) in {totp_code(secret, now + d) for d in (-60, -30, 0)}


@pytest.fixture(scope="module")
def owned(machine: Path, initrd_autoboot: Path, token: Token, disk: Path) -> dict[str, str]:
    """Step 1: enrol, sign, make a default, boot it. Returns the test OS's
    report plus the secret (hex) read off the screen."""
    with start(machine, initrd_autoboot, token, disk) as first:
        first.wait_for_screen("TOTP code cannot be shown", FIRST_SCREEN)
        secret = enrol_secret(first, OWNER_PASSPHRASE, TOKEN_PIN)
        menu = first.wait_for_screen("HOTP: Success", 120)
        first.watch(COUNTDOWN_S + 2)  # no countdown: the owner is at the keyboard
        assert "Automatic boot" not in first.console_text()
        assert MAIN in first.screen_text()
        assert_current_code(menu, secret)

        sign_from_the_options(first, first=True, owner_passphrase=OWNER_PASSPHRASE)
        first.press("enter")
        first.wait_for_screen(MAIN, 120)
        make_first_entry_default(first, "Debian GNU/Linux")
        report = target_report(first)
    report["secret"] = secret.hex()
    shutil.copyfile(disk, machine / "disk-signed.img")
    return report


def test_enrolment_is_not_followed_by_an_automatic_boot(owned: dict[str, str]) -> None:
    assert len(bytes.fromhex(owned["secret"])) == 20  # the fixture checked each screen


def test_untouched_the_default_boots_after_the_countdown(
    machine: Path,
    initrd_autoboot: Path,
    token: Token,
    disk: Path,
    owned: dict[str, str],
) -> None:
    with start(machine, initrd_autoboot, token, disk) as running:
        countdown = running.wait_for_screen("Automatic boot", FIRST_SCREEN)
        assert_current_code(countdown, bytes.fromhex(owned["secret"]))
        assert "HOTP: Success" in countdown
        report = target_report(running)  # no key pressed
    assert report["pcr 4"] == owned["pcr 4"]
    assert report["cmdline"] == owned["cmdline"]


def test_a_key_stops_the_countdown_and_nothing_boots(
    machine: Path,
    initrd_autoboot: Path,
    token: Token,
    disk: Path,
    owned: dict[str, str],
) -> None:
    with start(machine, initrd_autoboot, token, disk) as running:
        running.wait_for_screen("Automatic boot", FIRST_SCREEN)
        running.press("b")
        running.wait_for_screen(MAIN, 60)
        running.watch(COUNTDOWN_S + 2)
        assert MAIN in running.screen_text()
        power_off(running)
        running.wait_exit(120)
        assert "OS-TARGET" not in running.console_text()


def test_a_changed_boot_stops_the_automatic_boot_with_the_reason(
    machine: Path,
    initrd_autoboot: Path,
    token: Token,
    owned: dict[str, str],
) -> None:
    tampered = machine / "tampered.img"
    shutil.copyfile(machine / "disk-signed.img", tampered)
    with BootPartition(tampered) as part:
        cfg = part.read("/grub/grub.cfg")
        changed = cfg.replace(b" ro ", b" ro init=/bin/sh ", 1)
        assert changed != cfg
        part.write("/grub/grub.cfg", changed)
    before = image_digest(tampered)
    with start(machine, initrd_autoboot, token, tampered) as running:
        # /boot is checked before any countdown: none starts, the menu says why
        menu = words(running.wait_for_screen(MAIN, FIRST_SCREEN + SIGN))
        assert "CHANGED" in menu and "grub/grub.cfg" in menu, menu
        assert "Automatic boot" not in running.console_text()
        running.press("d")
        refused = words(running.wait_for_screen("Boot refused", SIGN))
        assert "files modified" in refused and "grub/grub.cfg" in refused, refused
        running.press("m")
        running.wait_for_screen(MAIN, 60)
        power_off(running)
        running.wait_exit(120)
        assert "OS-TARGET" not in running.console_text()
    assert image_digest(tampered) == before  # refused, and nothing written


def test_without_the_token_no_countdown_starts(
    machine: Path,
    initrd_autoboot: Path,
    disk: Path,
    owned: dict[str, str],
) -> None:
    """The token unplugged: the TOTP code alone never boots by itself."""
    running = boot(BOARD, machine, initrd_autoboot)
    running.instance.disks = [disk]  # no token on the second serial line
    with running.start() as on:
        on.wait_for_screen("HOTP not verified", FIRST_SCREEN)
        on.watch(COUNTDOWN_S + 2)
        on.press("i")  # Heads: ignore and continue
        menu = words(on.wait_for_screen(MAIN, 60))
        assert "No automatic boot: the HOTP check did not succeed" in menu, menu
        assert_current_code(menu, bytes.fromhex(owned["secret"]))
        on.watch(COUNTDOWN_S + 2)
        assert "Automatic boot" not in on.console_text()
        power_off(on)
        on.wait_exit(120)
        assert "OS-TARGET" not in on.console_text()
