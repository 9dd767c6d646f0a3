"""The LUKS test OS disk's target on its own (tools/make_os_disk.py --luks): the
board's Debian kernel booted directly by QEMU (no firmware, no runtime) with the
target's initrd and the LUKS disk, the key cpio appended the way the runtime
will append it at kexec (runtime.disk.key_cpio + crypttab.default_crypttabs,
the initrd padded to runtime.kexec.plan.INITRD_ALIGN).

1. With Heads' key cpio: /secret.key opens the LUKS2 container through key
   slot 31 and the LUKS1 one through slot 7, each once although both crypttab
   files name it, and nothing asks for a passphrase.
2. Without it: the OS's own crypttab (key file none) asks for each
   container's passphrase on the console (echo off); a wrong one is asked
   again; the recovery passphrase opens key slot 0.
3. A key cpio with another key opens nothing and asks nothing.
4. Nobody typing: each prompt gives up after ostarget.passphrase_timeout.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from runtime.disk.crypttab import default_crypttabs
from runtime.disk.key_cpio import build_key_cpio
from runtime.kexec.plan import INITRD_ALIGN
from tools import make_os_disk as osd
from tools.qemu_board import kvm_works

pytestmark = [pytest.mark.qemu, pytest.mark.xdist_group("qemu"), pytest.mark.timeout(1200)]

#: Heads' DUK is 128 random bytes; a fixed one here, in the disk's DUK slots.
DUK = hashlib.sha512(b"test OS disk DUK").digest() * 2
OTHER_KEY = hashlib.sha512(b"not the DUK").digest() * 2
#: Under TCG on a busy host: from QEMU's start to the target's first prompt or
#: its end (about 8 s when the host is idle).
BOOT_S = 300
#: One cryptsetup open under TCG (about 0.5 s when the host is idle).
OPEN_S = 120
CMDLINE = "console=ttyS0,115200 quiet"


@pytest.fixture(scope="module")
def luks_disk(tmp_path_factory: pytest.TempPathFactory) -> osd.OsDisk:
    directory = tmp_path_factory.mktemp("luks-os-disk")
    return osd.make_os_disk(directory / "os-disk.img", luks=True, extra_key=DUK)


@pytest.fixture(scope="module")
def target_initrd() -> bytes:
    return osd.luks_target_initrd()


def with_key_cpio(initrd: bytes, key: bytes, disk: osd.OsDisk) -> bytes:
    """The OS initrd as the runtime hands it to kexec with the DUK: padded to
    INITRD_ALIGN, then the uncompressed key cpio."""
    cpio = build_key_cpio(bytearray(key), default_crypttabs([c.uuid for c in disk.luks]))
    return initrd + bytes(-len(initrd) % INITRD_ALIGN) + bytes(cpio)


class Target:
    """One direct boot of the board's kernel with the target: the console
    through pexpect, every byte kept in `transcript`."""

    def __init__(self, child: pexpect.spawn, log: io.BytesIO) -> None:
        self.child = child
        self.log = log
        self.started = time.monotonic()

    def wait(self, pattern: str, timeout: float) -> float:
        """Seconds since QEMU started when ``pattern`` (a regex) arrived."""
        try:
            self.child.expect(re.compile(pattern.encode()), timeout=timeout)
        except (pexpect.TIMEOUT, pexpect.EOF) as err:
            kind = "QEMU exited" if isinstance(err, pexpect.EOF) else f"{timeout} s passed"
            raise AssertionError(
                f"{pattern!r} never came ({kind}); console:\n{self.console()[-4000:]}"
            ) from None
        return time.monotonic() - self.started

    def type_line(self, text: str) -> None:
        self.child.send(text + "\r")  # Enter on a serial terminal

    def finish(self) -> str:
        """The console once the target has powered the machine off."""
        self.wait(r"OS-TARGET: done", BOOT_S)
        self.child.expect(pexpect.EOF, timeout=60)
        self.child.close()
        assert self.child.exitstatus == 0, self.console()[-4000:]
        return self.console()

    def console(self) -> str:
        # a serial console ends lines with \r\r\n or \r\n
        return self.log.getvalue().decode("utf-8", "replace").replace("\r", "")


@contextlib.contextmanager
def booted(
    directory: Path, initrd: bytes, disk: osd.OsDisk, extra_cmdline: str = ""
) -> Iterator[Target]:
    qemu = shutil.which("qemu-system-x86_64")
    if qemu is None:
        pytest.fail("qemu-system-x86_64 is not installed (Debian package qemu-system-x86)")
    initrd_file = directory / "initrd.img"
    initrd_file.write_bytes(initrd)
    accel = ["-accel", "kvm", "-cpu", "host"] if kvm_works() else ["-accel", "tcg", "-cpu", "max"]
    argv = [
        "-machine",
        "q35",
        *accel,
        "-m",
        "512",
        "-display",
        "none",
        "-monitor",
        "none",
        "-serial",
        "stdio",
        "-no-reboot",
        "-nic",
        "none",
        "-kernel",
        str(osd.kernel_files().vmlinuz),
        "-initrd",
        str(initrd_file),
        "-append",
        f"{CMDLINE} {extra_cmdline}".strip(),
        "-drive",
        f"if=none,id=disk0,format=raw,file={disk.image}",
        "-device",
        "virtio-blk-pci,drive=disk0",
    ]
    log = io.BytesIO()
    child = pexpect.spawn(qemu, argv, timeout=BOOT_S, echo=False)
    child.logfile_read = log
    try:
        yield Target(child, log)
    finally:
        if child.isalive():
            child.terminate(force=True)


def target_lines(console: str) -> list[str]:
    return re.findall(r"^OS-TARGET: (.*)$", console, re.MULTILINE)


def test_key_cpio_opens_both_containers_through_the_duk_slots(
    tmp_path: Path, luks_disk: osd.OsDisk, target_initrd: bytes
) -> None:
    root, data = (f"luks-{c.uuid}" for c in luks_disk.luks)
    initrd = with_key_cpio(target_initrd, DUK, luks_disk)
    with booted(tmp_path, initrd, luks_disk) as target:
        times = {}
        for name in (root, data):
            times[f"{name} key"] = target.wait(rf"OS-TARGET: keyfile {name} present", BOOT_S)
            times[f"{name} open"] = target.wait(rf"OS-TARGET: opened {name} slot", OPEN_S)
        console = target.finish()
    print(
        f"boot to the first key file {times[f'{root} key']:.1f} s; cryptsetup open: "
        f"LUKS2 {times[f'{root} open'] - times[f'{root} key']:.2f} s, "
        f"LUKS1 {times[f'{data} open'] - times[f'{data} key']:.2f} s"
    )
    lines = target_lines(console)
    assert "secret.key 128 bytes" in lines
    assert lines.count("crypttab /cryptroot/crypttab") == 1
    assert lines.count("crypttab /etc/crypttab") == 1
    # Both files hold the same lines: each container is opened once.
    assert [line for line in lines if line.startswith(("keyfile", "opened", "not opened"))] == [
        f"keyfile {root} present",
        f"opened {root} slot {osd.LUKS_ROOT.duk_slot}",
        f"keyfile {data} present",
        f"opened {data} slot {osd.LUKS_DATA.duk_slot}",
    ]
    # The payload after each header: LUKS2's takes 16 MiB, LUKS1's 2 MiB here.
    assert f"mapped {root} {osd.LUKS_ROOT.size - (16 << 20)} bytes" in lines
    assert f"mapped {data} {osd.LUKS_DATA.size - (2 << 20)} bytes" in lines
    assert not any(line.startswith("passphrase for") for line in lines)
    assert not any(line.startswith("insmod") for line in lines), lines


def test_without_key_cpio_it_asks_for_each_passphrase(
    tmp_path: Path, luks_disk: osd.OsDisk, target_initrd: bytes
) -> None:
    passphrase = osd.DISK_RECOVERY_PASSPHRASE
    with booted(tmp_path, target_initrd, luks_disk) as target:
        target.wait(r"OS-TARGET: passphrase for cryptroot", BOOT_S)
        target.type_line("not the passphrase")
        target.wait(r"OS-TARGET: wrong passphrase for cryptroot", OPEN_S)
        target.wait(r"OS-TARGET: passphrase for cryptroot", OPEN_S)
        target.type_line(passphrase)
        target.wait(r"OS-TARGET: opened cryptroot slot 0", OPEN_S)
        target.wait(r"OS-TARGET: passphrase for cryptdata", OPEN_S)
        target.type_line(passphrase)
        target.wait(r"OS-TARGET: opened cryptdata slot 0", OPEN_S)
        console = target.finish()
    lines = target_lines(console)
    assert [line for line in lines if line.startswith(("keyfile", "opened", "not opened"))] == [
        "keyfile cryptroot none",
        "opened cryptroot slot 0",
        "keyfile cryptdata none",
        "opened cryptdata slot 0",
    ]
    assert lines.count("passphrase for cryptroot") == 2
    assert lines.count("passphrase for cryptdata") == 1
    assert not any(line.startswith("secret.key") for line in lines)
    assert "crypttab /etc/crypttab" not in lines  # the OS's initrd has only cryptroot's
    # Typed with echo off: neither passphrase reached the console.
    assert passphrase not in console
    assert "not the passphrase" not in console


def test_key_cpio_with_another_key_opens_nothing(
    tmp_path: Path, luks_disk: osd.OsDisk, target_initrd: bytes
) -> None:
    initrd = with_key_cpio(target_initrd, OTHER_KEY, luks_disk)
    with booted(tmp_path, initrd, luks_disk) as target:
        console = target.finish()
    lines = target_lines(console)
    for container in luks_disk.luks:
        name = f"luks-{container.uuid}"
        assert f"keyfile {name} present" in lines
        assert f"not opened {name} wrong key" in lines
    assert not any(line.startswith(("opened", "passphrase for")) for line in lines), lines


def test_nobody_typing_gives_up_after_the_timeout(
    tmp_path: Path, luks_disk: osd.OsDisk, target_initrd: bytes
) -> None:
    with booted(tmp_path, target_initrd, luks_disk, "ostarget.passphrase_timeout=2") as target:
        console = target.finish()
    lines = target_lines(console)
    assert "not opened cryptroot no passphrase" in lines
    assert "not opened cryptdata no passphrase" in lines
    assert not any(line.startswith("opened") for line in lines), lines
