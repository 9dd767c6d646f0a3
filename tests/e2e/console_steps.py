"""Steps the QEMU tests share: what a user does at the serial console (sign,
read a screen) and what the test OS reports once booted."""

from __future__ import annotations

import base64
import hashlib
import re
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

from runtime.tpm.pcr_math import Bank, extend_all, measure_string
from tests.support.soft_token_process import start_soft_token
from tools.board_console import Boot

MAIN = "boot menu"  # the main menu's title ends so
SIGN = 400  # seconds: hashing a 10 MB kernel and gpg under TCG
TARGET = 300  # seconds: from kexec to the test OS's last line
TEST_KEY_PIN = "1234"  # the test key has no passphrase: gpg takes any PIN


def words(screen: str) -> str:
    """The screen's text with the line wrapping undone."""
    return " ".join(screen.split())


def type_line(running: Boot, text: str) -> None:
    running.press(text, settle=0.1)
    running.press("enter", settle=1.0)


def power_off(running: Boot) -> None:
    """Power off from the screen shown (p), and answer the question (y)."""
    running.press("p")
    running.wait_for_screen("Power off now?", 60)
    running.press("y")


def sign(running: Boot, first: bool = False, owner_passphrase: str = "") -> str:
    """Answer the signing's questions; returns the "signed" page."""
    if first:
        # the counter comes first: /boot will be bound to it
        running.wait_for_screen("A rollback counter is needed", SIGN)
        type_line(running, owner_passphrase)
    running.wait_for_screen("Owner key PIN", SIGN)
    type_line(running, TEST_KEY_PIN)
    return running.wait_for_screen("/boot signed", SIGN)


def enrol_secret(running: Boot, owner_passphrase: str, token_pin: str | None) -> bytes:
    """From the first boot's "TOTP code cannot be shown": reset the TPM with a
    new owner passphrase typed, not generated (No is the question's first
    answer), seal a secret and program the token (None: the image has no
    token). Returns the secret as read off the screen for typing."""
    screen = running.screen_text()
    assert "No TOTP secret has been sealed" in screen, screen
    running.press("g")
    running.wait_for_screen("The TPM has no owner yet", 60)
    running.press("enter")
    question = running.wait_for_screen("Reset the TPM?", 60)
    assert "> n  No" in question, question
    running.press("y")
    running.wait_for_screen("New TPM owner passphrase", 60)
    running.press("t")  # type my own: a generated one is the default
    running.wait_for_screen("Your own TPM owner passphrase", 60)
    type_line(running, owner_passphrase)  # must pass the strength rule (12+ characters)
    type_line(running, owner_passphrase)  # the confirmation
    running.wait_for_screen("The TPM was reset", 120)
    running.press("enter")
    running.wait_for_screen("Seal a new TOTP/HOTP secret?", 60)
    running.press("y")
    if token_pin is not None:
        running.wait_for_screen("HOTP token PIN", 60)
        type_line(running, token_pin)
    running.wait_for_screen("Scan this with your phone", 120)
    # The serial line is slow: a page is complete once its footer is drawn.
    qr = running.wait_for_screen("Enter: next", 60)
    assert qr.count("\u2588") + qr.count("\u2580") + qr.count("\u2584") > 100
    running.press("enter")
    running.wait_for_screen("TOTP secret for typing", 60)
    running.watch(3)
    page = running.wait_for_screen("Enter or Esc: continue", 60)
    groups = re.search(r"((?:[A-Z2-7]{4} ){7}[A-Z2-7]{4})", page)
    assert groups, page
    secret = base64.b32decode(groups.group(1).replace(" ", ""))
    assert len(secret) == 20
    assert ("accepted its first" in page) is (token_pin is not None), page
    running.press("enter")
    return secret


def open_options(running: Boot) -> None:
    """Main menu > Options, drawn."""
    running.press("o")
    running.wait_for_screen("Update checksums and sign /boot", 60)


def reset_tpm_from_the_options(running: Boot, current: str, new: str) -> tuple[str, str]:
    """Main menu > Options > TPM/TOTP/HOTP options > Reset the TPM, with the
    current owner passphrase and a new one typed (not generated), then No to
    sealing a new TOTP/HOTP secret; back at the main menu. Returns the reset's
    question and its last page, in words."""
    open_options(running)
    running.press("t")
    running.wait_for_screen("TPM/TOTP/HOTP options", 60)
    running.press("T")
    question = words(running.wait_for_screen("Reset the TPM?", 60))
    running.press("y")
    running.wait_for_screen("Current TPM passphrase", 60)
    type_line(running, current)
    running.wait_for_screen("New TPM owner passphrase", 60)
    running.press("t")  # type my own: a generated one is the default
    running.wait_for_screen("Your own TPM owner passphrase", 60)
    type_line(running, new)
    type_line(running, new)  # the confirmation
    done = words(running.wait_for_screen("The TPM was reset", 120))
    running.press("enter")
    running.wait_for_screen("Seal a new TOTP/HOTP secret?", 60)
    running.press("n")
    running.wait_for_screen(MAIN, 60)
    return question, done


def set_up_disk_unlock(
    running: Boot,
    choice: Callable[[str], str],
    passphrases: tuple[str, str, str],
    timeout: float,
) -> tuple[str, str, str]:
    """Main menu > Options > TPM/TOTP/HOTP options > Disk Unlock Key, then
    back at the main menu. ``choice`` is given the menu of disks (its words)
    and returns the key that chooses; ``passphrases``: the recovery, the new
    DUK (typed twice) and the owner's; ``timeout``: the setup's own work.
    Returns the menu of disks, the signing page and the last page, in words."""
    recovery, duk, owner = passphrases
    open_options(running)
    running.press("t")
    running.wait_for_screen("Set up the Disk Unlock Key", 60)
    running.press("d")
    which = words(running.wait_for_screen("which encrypted disks?", 120))
    running.press(choice(which))
    running.wait_for_screen("Disk Recovery Key passphrase", 120)
    type_line(running, recovery)
    running.wait_for_screen("Disk Unlock Key passphrase", timeout)
    type_line(running, duk)
    type_line(running, duk)  # the confirmation
    running.wait_for_screen("TPM owner passphrase", 60)
    type_line(running, owner)
    signing = words(sign(running))
    running.press("enter")
    done = words(running.wait_for_screen("Disk Unlock Key set up", timeout))
    running.press("enter")
    running.wait_for_screen("TPM/TOTP/HOTP options", 60)
    running.press("b")
    running.wait_for_screen("Update checksums and sign /boot", 60)
    running.press("b")
    running.wait_for_screen(MAIN, 60)
    return which, signing, done


def sign_from_the_options(running: Boot, first: bool = False, owner_passphrase: str = "") -> str:
    """Main menu > Options > Update checksums and sign /boot; returns the
    "signed" page, left open."""
    open_options(running)
    running.press("u")
    update = running.wait_for_screen("Yes: hash /boot and sign it", SIGN)
    running.press("y")
    return words(update) + "\n" + sign(running, first, owner_passphrase)


def update_checksums_screen(running: Boot) -> str:
    """Main menu > Options > Update checksums and sign /boot: the words of the
    screen that says what changed, left open before anything is signed."""
    open_options(running)
    running.press("u")
    return words(running.wait_for_screen("Yes: hash /boot and sign it", SIGN))


def choose_os_menu(running: Boot) -> None:
    """Main menu > Options > Boot options > Show the OS boot menu, chosen: /boot
    is checked next, and the caller waits for the list or the refusal."""
    open_options(running)
    running.press("o")
    running.wait_for_screen("Show the OS boot menu", 60)
    running.press("m")


def make_first_entry_default(running: Boot, entry: str, disk_unlock_offer: str = "") -> str:
    """From the main menu: the OS boot menu's first entry made the default
    (signs /boot again); returns the OS menu as shown. The entry then boots.
    ``disk_unlock_offer``: the key that answers the Disk Unlock Key's offer,
    on a machine with encrypted disks."""
    open_options(running)
    running.press("o")
    running.wait_for_screen("Show the OS boot menu", 60)
    running.press("m")
    menu = running.wait_for_screen("choose what to boot", SIGN)
    running.press("1")
    running.wait_for_screen(f"Boot {entry}?", 60)
    running.press("d")
    running.wait_for_screen(f"Make {entry} the default?", 60)
    running.press("y")
    assert f"Default entry: {entry}" in words(sign(running))
    running.press("enter")
    if disk_unlock_offer:
        running.wait_for_screen("Set up a Disk Unlock Key?", 120)
        running.press(disk_unlock_offer)
    return menu


def target_report(running: Boot) -> dict[str, str]:
    """The test OS's report (command line, PCRs) once it has booted and ended."""
    running.wait_for_console(r"OS-TARGET: done", TARGET)
    console = running.console_text()
    found = dict(re.findall(r"OS-TARGET: (cmdline|pcr \d+) ([^\r\n]*)", console))
    assert "OS-TARGET: booted" in console
    found["pcr 4"] = found["pcr 4"].strip().lower()
    running.wait_exit(120)
    return found


def image_digest(path: Path) -> str:
    """A disk image's SHA-256: /boot is probed read-only (ext4 `noload`), so a
    refused boot must leave every byte of it as it was."""
    with path.open("rb") as image:
        return hashlib.file_digest(image, "sha256").hexdigest()


def extended(pcr: str, *events: str) -> str:
    """A SHA-256 PCR after the runtime's string events (as Heads measures them)."""
    bank = Bank.SHA256
    digests = (measure_string(bank, event) for event in events)
    return extend_all(bank, bytes.fromhex(pcr), digests).hex()


class Token:
    """The software HOTP token process on the host (tools/soft_token.py)."""

    def __init__(self, directory: Path) -> None:
        self.state = directory / "token.json"
        self.socket = directory / "token.sock"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, *flags: str) -> None:
        self.stop()
        self.process = start_soft_token(self.state, self.socket, *flags)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(10)
        self.process = None

    def qemu_args(self) -> list[str]:
        return [
            "-chardev",
            f"socket,id=hotp,path={self.socket},server=off,reconnect=1",
            "-device",
            "isa-serial,chardev=hotp,index=1",
        ]


def runtime_pcr4(running: Boot) -> str:
    """PCR 4 as the runtime read it at its start (System information)."""
    running.press("s")
    page = running.wait_for_screen("Enter or Esc: continue", 120)
    found = re.search(r"PCR 4: ([0-9a-f]{64})", page)
    assert found, page
    running.press("enter")
    running.wait_for_screen(MAIN, 60)
    return found.group(1)
