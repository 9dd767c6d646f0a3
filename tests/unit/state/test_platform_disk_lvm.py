"""Before a boot measures the Disk Unlock Key's headers, the volume group
/boot names (kexec_key_lvm.txt) is activated, as Heads does; a stand-in lvm
records what it was asked (the real one needs device-mapper, which this
host's kernel lacks; the QEMU tier activates a real group)."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.disk import lvm_groups
from runtime.disk.key_lists import KEY_DEVICES_FILE, KEY_LVM_FILE
from runtime.state.platform_disk import DiskSide, measure_headers_once


@pytest.fixture
def lvm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The stand-in's argv file (absent until it runs)."""
    argv = tmp_path / "argv"
    program = tmp_path / "lvm"
    program.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {argv}\n')
    program.chmod(0o755)
    monkeypatch.setattr(lvm_groups, "LVM", str(program))
    return argv


def _boot(tmp_path: Path, lvm_file: bytes | None) -> Path:
    boot = tmp_path / "boot"
    boot.mkdir()
    (boot / KEY_DEVICES_FILE).write_bytes(b"/dev/mapper/osvg-cryptvault 1234-abcd\n")
    if lvm_file is not None:
        (boot / KEY_LVM_FILE).write_bytes(lvm_file)
    return boot


def test_the_named_group_is_activated_before_its_headers_are_measured(
    tmp_path: Path, lvm: Path
) -> None:
    row = measure_headers_once(DiskSide(), None, str(_boot(tmp_path, b"osvg\n")))
    assert lvm.read_text().splitlines()[-1] == "osvg"
    # the stand-in made no mapping: the listed device is named as not measured
    assert "/dev/mapper/osvg-cryptvault" in row


def test_no_group_named_activates_nothing(tmp_path: Path, lvm: Path) -> None:
    measure_headers_once(DiskSide(), None, str(_boot(tmp_path, None)))
    assert not lvm.exists()


def test_a_bad_group_file_is_said_and_nothing_activated(tmp_path: Path, lvm: Path) -> None:
    row = measure_headers_once(DiskSide(), None, str(_boot(tmp_path, b"-x\n")))
    assert f"{KEY_LVM_FILE} on /boot is unusable" in row and not lvm.exists()


def test_without_lvm_tools_the_row_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lvm_groups, "LVM", str(tmp_path / "none"))
    row = measure_headers_once(DiskSide(), None, str(_boot(tmp_path, b"osvg\n")))
    assert "names the LVM volume group osvg, but this firmware has no LVM tools" in row
