"""Basic mode (CONFIG_BASIC=y) and the serial recovery listener
(CONFIG_BOOT_RECOVERY_SERIAL) on the qemu-swtpm board.

1. Basic mode: a factory-new machine goes straight to a main menu that says
   BASIC MODE (no TOTP, no HOTP, /boot not checked), nothing boots by itself
   although a countdown is configured, and the owner's choice boots
   unverified: no question, no red console, PCR 4 extended first as for every
   unverified boot.
2. The listener: Enter on the guest's third serial line (a socket here), while
   the menus run on the console, opens the recovery gate there: the owner's
   signature over a fresh challenge, then a shell on that line, with PCR 4
   extended for it. A wrong answer opens nothing.
3. The keyboard layout (CONFIG_KEYBOARD_KEYMAP, German here): keys pressed on
   the virtual keyboard through QEMU's QMP arrive on the first virtual
   terminal mapped (the key labelled Y on a US keyboard types z), read from
   the shell of step 2.
"""

from __future__ import annotations

import re
import shutil
import socket
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import BOARD, build
from tests.e2e.console_steps import (
    MAIN,
    extended,
    power_off,
    runtime_pcr4,
    target_report,
    words,
)
from tests.e2e.guest_ram import Qmp
from tools.board_console import boot
from tools.owner_key import OwnerKey
from tools.socket_wait import connect_unix

pytestmark = [pytest.mark.qemu, pytest.mark.xdist_group("qemu"), pytest.mark.timeout(1200)]
FIRST_SCREEN = 400
COUNTDOWN_S = 3
RECOVERY_LINE = "/dev/ttyS2"
SETTINGS = (
    b'export CONFIG_BASIC="y"\nexport CONFIG_BOARD_NAME="QEMU basic"\n'
    b'export CONFIG_AUTO_BOOT_TIMEOUT="%d"\n'
    % COUNTDOWN_S
    + b'export CONFIG_BOOT_RECOVERY_SERIAL="%s"\n' % RECOVERY_LINE.encode()
    + b'export CONFIG_KEYBOARD_KEYMAP="/usr/lib/kbd/keymaps/i386/qwertz/de-latin1.map"\n'
)


@pytest.fixture(scope="module")
def initrd_basic(tmp_path_factory: pytest.TempPathFactory, owner_key: OwnerKey) -> Path:
    return build(tmp_path_factory.mktemp("build-basic"), SETTINGS, owner_key)


@pytest.fixture(scope="module")
def basic_disk(machine: Path, os_disk: Path) -> Path:
    disk = machine / "basic-disk.img"
    shutil.copyfile(os_disk, disk)
    return disk


def test_basic_mode_checks_nothing_and_boots_the_owners_choice(
    machine: Path, initrd_basic: Path, basic_disk: Path
) -> None:
    running = boot(BOARD, machine, initrd_basic)
    running.instance.disks = [basic_disk]
    with running.start() as on:
        menu = words(on.wait_for_screen(MAIN, FIRST_SCREEN))
        assert "BASIC MODE" in menu and "CONFIG_BASIC" in menu, menu
        assert "TOTP code cannot be shown" not in on.console_text()
        on.watch(COUNTDOWN_S + 3)
        assert "Automatic boot" not in on.console_text()
        firmware_pcr4 = runtime_pcr4(on)
        on.press("d")
        on.wait_for_screen("Basic mode: choose an entry to boot", 120)
        on.press("1")
        report = target_report(on)
    assert "Boot without verifying /boot?" not in on.console_text()
    assert report["pcr 4"] == extended(firmware_pcr4, "unsafe", "generic")
    assert "vt.default_red" not in report["cmdline"]  # the owner's mode, not a forced boot


class SerialLine:
    """The guest's third serial port, served by QEMU on a Unix socket."""

    def __init__(self, path: Path) -> None:
        self.path, self.seen = path, b""
        self.sock: socket.socket | None = None

    def qemu_args(self) -> list[str]:
        return [
            "-chardev",
            f"socket,id=recovery,path={self.path},server=on,wait=off",
            "-device",
            "isa-serial,chardev=recovery,index=2",
        ]

    def connect(self, timeout: float = 60) -> None:
        self.sock = connect_unix(self.path, timeout, what="QEMU's recovery serial line")

    def _connected(self) -> socket.socket:
        assert self.sock is not None, "the serial line is not connected"
        return self.sock

    def send(self, data: bytes) -> None:
        self._connected().sendall(data)
        time.sleep(0.05)

    def expect(self, pattern: bytes, timeout: float) -> re.Match[bytes]:
        sock = self._connected()
        deadline = time.monotonic() + timeout
        while (found := re.search(pattern, self.seen)) is None:
            left = deadline - time.monotonic()
            assert left > 0, f"not seen on the serial line: {pattern!r}\n{self.seen[-1500:]!r}"
            sock.settimeout(min(left, 1.0))
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            assert chunk, "the serial line closed"
            self.seen += chunk
        return found

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()


def test_enter_on_the_recovery_line_opens_the_gate_and_a_shell_there(
    machine: Path, initrd_basic: Path, basic_disk: Path, owner_key: OwnerKey
) -> None:
    line = SerialLine(machine / "recovery.sock")
    running = boot(BOARD, machine, initrd_basic)
    running.instance.disks = [basic_disk]
    running.instance.extra_args = [
        *line.qemu_args(),
        "-qmp",
        f"unix:{machine / 'qmp.sock'},server=on,wait=off",
    ]
    with running.start() as on:
        line.connect()
        try:
            on.wait_for_screen(MAIN, FIRST_SCREEN)
            # a wrong answer first: no shell, and the listener asks again
            line.send(b"\r")
            line.expect(rb"Paste\s+the\s+whole", 120)
            line.send(b"\r")  # nothing pasted
            line.expect(rb"Not accepted:\s+nothing\s+was\s+pasted[\s\S]*> ", 120)
            line.send(b"\r")  # and leave
            # the gate's account comes last
            line.expect(rb"Recovery shell requested:\s+asked\s+on\s+/dev/ttyS2", 120)
            line.expect(rb"Owner\s+authentication\s+failed", 120)
            assert b"built-in shell" not in line.seen
            line.seen = b""
            line.expect(rb"Press Enter on this line for the recovery shell", 180)
            time.sleep(1)  # the listener reads the line again
            # the owner's signature over a fresh challenge
            line.send(b"\r")
            challenge = line.expect(rb"(heads-runtime recovery(?: [0-9a-f]{8}){4})", 120)
            line.expect(rb"Paste\s+the\s+whole", 60)
            for text in owner_key.clearsign(challenge.group(1).decode()).splitlines():
                line.send(text.encode() + b"\r")
            line.expect(rb"Owner\s+authenticated", 180)
            line.expect(rb"# ", 60)
            line.send(b"cat /sys/class/tpm/tpm0/pcr-sha256/4; echo SHELL-$((6*7))\r")
            line.expect(rb"SHELL-42", 60)
            # the layout: the keys labelled Y and Z (US), then Enter, on the VT
            line.send(b"printf 'KEYS=%s.\\n' \"$(head -c 2 </dev/tty1)\"\r")
            time.sleep(2)  # head has opened the terminal
            qmp = Qmp(machine / "qmp.sock")
            try:
                for key in ("y", "z", "ret"):
                    qmp.command("send-key", keys=[{"type": "qcode", "data": key}])
            finally:
                qmp.close()
            line.expect(rb"KEYS=zy\.", 60)
        finally:
            line.close()
        assert MAIN in on.screen_text()  # the menus went on, on their console
        power_off(on)
        on.wait_exit(120)


def test_the_recovery_key_at_power_on_stops_the_runtime_before_it_takes_the_console(
    machine: Path, initrd_basic: Path, basic_disk: Path, owner_key: OwnerKey
) -> None:
    """The runtime starts during /init's half-second window for the recovery
    key; the key kills it before it touched the console or the TPM, and the
    gate opens. After the shell, the runtime starts again as usual."""
    running = boot(BOARD, machine, initrd_basic)
    running.instance.disks = [basic_disk]
    with running.start() as on:
        on.wait_for_console(r"press r within half a second for the recovery shell", FIRST_SCREEN)
        on.press("r", settle=0)
        challenge = on.wait_for_console(r"(heads-runtime recovery(?: [0-9a-f]{8}){4})", 180)
        before_gate = on.console_text()
        assert "stage=recovery-window-closed" not in before_gate
        assert "stage=ui-up" not in before_gate
        for text in owner_key.clearsign(challenge.group(1)).splitlines():
            on.press(text, settle=0.05)
            on.press("enter", settle=0.05)
        on.wait_for_console(r"built-in shell \(ash\)[\s\S]*# ", 180)
        # the runtime started in the window is gone (its argv: /init's run_runtime)
        on.press("ps | grep -c '[m] runtime$'; echo PS-DONE\r")
        assert on.wait_for_console(r"\n(\d+)\s*\r?\nPS-DONE", 60).group(1) == "0"
        on.press("exit\r")
        on.wait_for_console(r"the runtime starts again", 60)
        menu = words(on.wait_for_screen(MAIN, FIRST_SCREEN))
        assert "BASIC MODE" in menu
        power_off(on)
        on.wait_exit(120)
