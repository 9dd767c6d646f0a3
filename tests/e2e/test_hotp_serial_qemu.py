"""The software token through QEMU, with the exact arguments tools/soft_token.py
documents: a guest kernel's 8250 UART as /dev/ttyS1, the host token on a Unix
socket. The guest runs SerialToken, enrol_token and verify_with_token.

Needs QEMU, the board kernel (from the package cache) and a built initramfs
(build/qemu-swtpm, `build_initrd.py --board qemu-swtpm`); this change's
modules are added on top of it as a second cpio archive.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tools.initrd.cpio import Entry, write_archive
from tools.socket_wait import wait_for_listener
from tools.soft_token import SoftToken, TokenState

pytestmark = [pytest.mark.qemu, pytest.mark.xdist_group("qemu"), pytest.mark.timeout(600)]

GUEST = """
import time
from runtime.secrets.hotp import enrol_token, verify_with_token
from runtime.secrets.hotp.serial_token import SerialToken

class Store:
    value = 100
    def read(self):
        return self.value
    def advance_to(self, value):
        assert value >= self.value
        self.value = value

secret = bytearray(b"12345678901234567890")
store = Store()
with SerialToken("/dev/ttyS1") as token:
    started = time.monotonic()
    present = token.present()
    print("HOTP present", present, f"{time.monotonic() - started:.2f}", token.lookahead,
          flush=True)
    if present:
        pin = bytearray(b"12345678")
        print("HOTP enrol", enrol_token(secret, store, token, pin).result, store.value)
        print("HOTP verify", verify_with_token(secret, store, token).result, store.value)
        wrong = verify_with_token(bytearray(20), store, token).result
        print("HOTP wrong", wrong, store.value, flush=True)
    else:
        print("HOTP absent", token.why_absent().result, flush=True)
"""
INIT = """#!/bin/sh
export PATH=/bin:/usr/bin LC_ALL=C.UTF-8
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
/usr/bin/python3.11 -I /hotp_guest.py
poweroff -f
"""


@pytest.fixture(scope="module")
def machine(tmp_path_factory: pytest.TempPathFactory, initrd_a: Path) -> tuple[Path, Path]:
    if shutil.which("qemu-system-x86_64") is None:
        pytest.skip("qemu-system-x86_64 is not installed")
    from tools.qemu_board import board_files

    kernel = board_files("qemu-swtpm").kernel
    overlay = [
        Entry.file("hotp_init", INIT.encode(), executable=True),
        # the runtime's modules are the frozen interpreter's own
        Entry.file("hotp_guest.py", GUEST.encode()),
    ]
    archive = io.BytesIO()
    write_archive(archive, overlay, 0)
    base = initrd_a.read_bytes()  # the session's build (tests/e2e/conftest.py)
    initrd = tmp_path_factory.mktemp("hotp-qemu") / "initrd"
    # The kernel unpacks concatenated archives in order: the overlay's files win.
    initrd.write_bytes(base + bytes(-len(base) % 4) + archive.getvalue())
    return kernel, initrd


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="hotp-", dir="/tmp"))  # short: socket paths
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def boot(kernel: Path, initrd: Path, sock: Path) -> list[str]:
    argv = [
        "qemu-system-x86_64",
        "-machine",
        "q35",
        "-accel",
        "tcg",
        "-m",
        "512",
        "-display",
        "none",
        "-monitor",
        "none",
        "-no-reboot",
        "-nic",
        "none",
        "-chardev",
        "stdio,id=console,signal=off",
        "-serial",
        "chardev:console",
        "-kernel",
        str(kernel),
        "-initrd",
        str(initrd),
        "-append",
        "console=ttyS0 quiet panic=-1 rdinit=/hotp_init",
        # As tools/soft_token.py documents them:
        "-chardev",
        f"socket,id=hotp,path={sock},server=off,reconnect=1",
        "-device",
        "isa-serial,chardev=hotp,index=1",
    ]
    done = subprocess.run(
        argv, capture_output=True, timeout=400, stdin=subprocess.DEVNULL, check=False
    )
    lines = done.stdout.decode(errors="replace").splitlines()
    return [line.strip() for line in lines if line.startswith("HOTP ")]


def test_the_guest_enrols_and_verifies_through_ttys1(
    machine: tuple[Path, Path], socket_dir: Path
) -> None:
    sock = socket_dir / "token.sock"
    token = SoftToken(state=TokenState())
    stop = threading.Event()
    server = threading.Thread(target=token.serve_unix, args=(str(sock), stop), daemon=True)
    server.start()
    try:
        wait_for_listener(sock, 10, what="the software token")
        lines = boot(*machine, sock)
    finally:
        stop.set()
        server.join(5)
    assert lines[0].startswith("HOTP present True") and lines[0].endswith(" 10"), lines
    assert lines[1:] == [
        "HOTP enrol success 101",
        "HOTP verify success 102",
        "HOTP wrong invalid 102",
    ]
    assert token.state.counter == 102


def test_without_the_token_the_guest_says_absent_in_a_second(
    machine: tuple[Path, Path], socket_dir: Path
) -> None:
    lines = boot(*machine, socket_dir / "nobody.sock")
    assert lines[0].startswith("HOTP present False"), lines
    assert float(lines[0].split()[3]) < 1.0
    assert lines[1] == "HOTP absent absent"
