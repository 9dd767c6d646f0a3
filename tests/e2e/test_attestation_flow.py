"""The user's story on the qemu-swtpm board, driven over the serial console as
a user would, on one machine (one TPM) from factory-new:

1. first boot: no secret -> the TOTP failure screen -> generate: the TPM is
   reset (new owner passphrase), the secret sealed and the software HOTP token
   programmed; the QR code and base32 appear and the test reads the base32;
2. reboot: the main menu shows the code pyotp computes from that base32, and
   HOTP Success; the console log holds no form of the secret; a token with
   another secret is shown as an invalid HOTP code; then the recovery shell,
   opened only with the owner's signature over the challenge: PCR 4 changed,
   nothing of the secret in RAM files; leaving it, the TOTP is refused;
3. an initramfs differing in one byte of the owner settings: PCR 9 changed,
   the secret is refused in plain words;
4. a machine without a TPM gets a plain message and still reaches the menu.

Four boots in all; the tests share the machine, and the enrolment boot is a
module fixture, so the others find a sealed secret in whatever order xdist
runs them.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from runtime.secrets.totp import totp_code
from tests.e2e.conftest import BOARD
from tests.e2e.console_steps import Token, enrol_secret, power_off
from tests.leakcheck import secret_forms
from tools.board_console import Boot, boot
from tools.owner_key import OwnerKey
from tools.provision_board import predicted_pcr9

pytestmark = [pytest.mark.qemu, pytest.mark.xdist_group("qemu"), pytest.mark.timeout(1500)]
OWNER_PASSPHRASE = "owner passphrase 1"
TOKEN_PIN = "12345678"  # the software token's factory admin PIN
MAIN = "boot menu"
FIRST_SCREEN_TIMEOUT = 400


def start(machine: Path, initrd: Path, token: Token, disk: Path) -> Boot:
    running = boot(BOARD, machine, initrd)
    running.instance.disks = [disk]
    running.instance.extra_args = token.qemu_args()
    return running.start()


def totp_on(screen: str) -> str:
    match = re.search(r"TOTP: (\d{6})", screen)
    assert match, screen
    return match.group(1)


def assert_current_code(code: str, secret: bytes) -> None:
    now = time.time()
    assert code in {totp_code(secret, now + d) for d in (-60, -30, 0)}


@pytest.fixture(scope="module")
def enrolled(machine: Path, initrd_a: Path, token: Token, os_disk: Path) -> bytes:
    """The first boot of a factory-new machine enrols a secret; returns it as
    the test read it off the screen."""
    with start(machine, initrd_a, token, os_disk) as first:
        first.wait_for_screen("TOTP code cannot be shown", FIRST_SCREEN_TIMEOUT)
        secret = enrol_secret(first, OWNER_PASSPHRASE, TOKEN_PIN)
        menu = first.wait_for_screen(MAIN, 120)
        first.watch(2)
        menu = first.screen_text()
        assert_current_code(totp_on(menu), secret)
        assert "HOTP: Success" in menu
        power_off(first)
        first.wait_exit(120)
    return secret


def test_first_boot_enrols_a_new_secret(enrolled: bytes) -> None:
    assert len(enrolled) == 20  # the fixture's boot checked each screen on the way


def test_reboot_attests_with_totp_and_hotp_then_recovery_needs_the_owner(
    machine: Path, initrd_a: Path, token: Token, os_disk: Path, owner_key: OwnerKey, enrolled: bytes
) -> None:
    secret = enrolled
    token.start()  # the token as enrolled (another test may have swapped it)
    with start(machine, initrd_a, token, os_disk) as again:
        menu = again.wait_for_screen("HOTP: Success", FIRST_SCREEN_TIMEOUT)
        assert_current_code(totp_on(menu), secret)
        assert "NOT SIGNED YET" in menu and "/boot: /dev/vda1" in menu

        # A token holding another secret: the code is refused and shown so.
        token.start("--wrong-secret")
        again.press("r")
        refused = again.wait_for_screen("HOTP code invalid", 120)
        assert "ERROR" in refused
        again.press("i")
        menu = again.wait_for_screen("HOTP: Invalid code", 60)
        assert "TAMPERED?" in menu

        # The recovery shell: confirmed, then the owner's signature.
        again.press("o")
        again.wait_for_screen("Options", 30)
        again.press("x")
        again.wait_for_screen("Open the recovery shell?", 30)
        again.press("y")
        # four whole groups of 8: a line still arriving does not match
        challenge = again.wait_for_console(r"(heads-runtime recovery(?: [0-9a-f]{8}){4})", 120)
        signed = owner_key.clearsign(challenge.group(1))
        for line in signed.splitlines():
            again.press(line, settle=0.05)
            again.press("enter", settle=0.05)
        again.wait_for_console(r"built-in shell \(ash\)[\s\S]*/ # ", 120)
        pcr4_before = again.pcr(4)
        again.press("cat /sys/class/tpm/tpm0/pcr-sha256/4; echo PCR4-DONE\r", settle=1.0)
        after = again.wait_for_console(r"\n([0-9A-Fa-f]{64})\s*\r?\nPCR4-DONE", 60).group(1)
        recovery = hashlib.sha256(b"recovery").digest()
        assert after.lower() == hashlib.sha256(bytes.fromhex(pcr4_before) + recovery).hexdigest()
        # No form of the secret in any file in RAM, and /tmp/secret is empty.
        forms = [f.decode() for f in secret_forms(secret) if f.isascii() and f.isalnum()]
        needles = " ".join(f"-e {f}" for f in forms[:4])
        typed_at = len(again.raw)  # from here the console echoes what the test types
        again.press(
            f"grep -r -l -F {needles} /run /tmp /etc /root 2>/dev/null; "
            "echo FILES=$(ls -A /tmp/secret | grep -c .) LEAK-DONE\r",
            settle=2.0,
        )
        result = again.wait_for_console(r"FILES=(\d+) LEAK-DONE", 120)
        answered_at = len(again.raw)
        assert result.group(1) == "0"
        # grep -l prints the name of every file holding the secret: there is none.
        output = bytes(again.raw[typed_at:answered_at]).decode(errors="replace")
        # Only bare paths: the echoed command line (wrapped at 80 columns) is not one.
        listed = [
            line.strip()
            for line in output.splitlines()
            if re.fullmatch(r"/[\w./+-]+", line.strip())
        ]
        assert listed == [], listed
        again.press("exit\r")
        refused = again.wait_for_screen("TOTP code cannot be shown", FIRST_SCREEN_TIMEOUT)
        assert "recovery shell was opened" in refused
        again.press("i")
        menu = again.wait_for_screen(MAIN, 60)
        # the user's own recovery shell is said as such, never as tampering
        assert "RECOVERY SHELL OPENED" in menu and "TAMPERED" not in menu, menu
        power_off(again)
        again.wait_exit(120)
        # Not one form of the secret reached the console in this boot (but for
        # the test's own grep command line, echoed by the shell).
        console = bytes(again.raw[:typed_at] + again.raw[answered_at:])
        for form in secret_forms(secret):
            assert form not in console


def test_a_one_byte_change_of_the_owner_settings_is_refused(
    machine: Path,
    initrd_a: Path,
    initrd_b: Path,
    board_cmdline: str,
    token: Token,
    os_disk: Path,
    enrolled: bytes,
) -> None:
    token.start()
    with start(machine, initrd_b, token, os_disk) as tampered:
        screen = tampered.wait_for_screen("TOTP code cannot be shown", FIRST_SCREEN_TIMEOUT)
        assert "PCR 9 changed" in screen and "a measurement changed" in screen
        tampered.press("i")
        menu = tampered.wait_for_screen(MAIN, 60)
        assert "TAMPERED?" in menu
        power_off(tampered)
        tampered.wait_exit(120)
        pcr9 = tampered.pcr(9)
    assert pcr9 != predicted_pcr9(initrd_a.read_bytes(), board_cmdline).hex()
    assert pcr9 == predicted_pcr9(initrd_b.read_bytes(), board_cmdline).hex()


def test_a_machine_without_a_tpm_gets_a_plain_message_and_still_finds_its_disk(
    initrd_a: Path, os_disk: Path
) -> None:
    directory = Path(tempfile.mkdtemp(prefix="board-", dir="/tmp"))
    try:
        running = boot(BOARD, directory, initrd_a)
        running.instance.with_tpm = False
        running.instance.disks = [os_disk]
        with running:
            screen = running.wait_for_screen("ERROR: no TPM", FIRST_SCREEN_TIMEOUT)
            assert "No TPM" in screen or "no TPM" in screen
            running.press("c")
            # the drivers load without a TPM (unmeasured), so the disk is found
            menu = running.wait_for_screen(MAIN, 120)
            assert "TOTP: NO TPM" in menu and "NO TPM" in menu
            assert "/boot: /dev/vda1" in menu
            running.press("s")
            info = running.wait_for_screen("System information", 30)
            assert "Board:" in info
            running.press("q")
            running.wait_for_screen(MAIN, 30)
            power_off(running)
            running.wait_exit(120)
            assert "Traceback" not in running.console_text()
    finally:
        shutil.rmtree(directory, ignore_errors=True)
