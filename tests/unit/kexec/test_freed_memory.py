"""Whether the firmware kernel zeroes freed memory, as the hand-over needs."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.kexec.freed_memory import freed_memory_zeroed, handover_line, zeroed_by

SAID_ON = "6,1,0,-;mem auto-init: stack:off, heap alloc:on, heap free:on\n"
SAID_OFF = "6,1,0,-;mem auto-init: stack:all(zero), heap alloc:off, heap free:off\n"


@pytest.mark.parametrize(
    ("cmdline", "log", "zeroed"),
    [
        ("quiet", [SAID_ON], True),
        ("quiet init_on_free=1", [SAID_OFF], False),  # the kernel's own word wins
        ("quiet init_on_free=1", [], True),
        ("init_on_free=1 init_on_free=0", [], False),  # the last word on the line wins
        ("init_on_free=0 init_on_free=1", [], True),
        ("quiet", ["6,2,0,-;something else\n"], None),
        ("", [], None),
        # a device's name quoted by the kernel, or a record from user space: not the line
        ("", ["6,901,2,-;usb 1-1: Product: mem auto-init: heap free:on\n"], None),
        ("", ["14,902,2,-;mem auto-init: stack:off, heap alloc:off, heap free:on\n"], None),
        ("quiet -- init_on_free=1", [], None),  # after --: init's argument
        ("init_on_free=Y", [], True),
        ("init_on_free=off", [], False),
    ],
)
def test_what_the_kernel_said_decides(cmdline: str, log: list[str], zeroed: bool | None) -> None:
    assert zeroed_by(cmdline, log) is zeroed


def test_without_a_kernel_log_the_command_line_is_read(tmp_path: Path) -> None:
    cmdline = tmp_path / "cmdline"
    cmdline.write_bytes(b"console=ttyS0 x=\xff init_on_free=1\n")  # not UTF-8: no crash
    assert freed_memory_zeroed(str(cmdline), str(tmp_path / "no-kmsg")) is True
    assert freed_memory_zeroed(str(tmp_path / "none"), str(tmp_path / "no-kmsg")) is None


def test_each_answer_says_what_it_means() -> None:
    assert "zeroed" in handover_line(True)
    assert "NOT zeroed" in handover_line(False) and "init_on_free=1" in handover_line(False)
    assert "did not say" in handover_line(None)
