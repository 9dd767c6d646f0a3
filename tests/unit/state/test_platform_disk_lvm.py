"""Before a boot measures the Disk Unlock Key's headers, the volume group
/boot names (kexec_key_lvm.txt) is activated, as Heads does; a stand-in lvm
records what it was asked (the real one needs device-mapper, which this
host's kernel lacks; the QEMU tier activates a real group)."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.disk import luks_devices, lvm_groups
from runtime.disk.key_lists import KEY_DEVICES_FILE, KEY_LVM_FILE
from runtime.disk.luks_devices import LuksScan
from runtime.state.platform_disk import DiskSide, measure_headers_once


@pytest.fixture
def lvm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The stand-in's argv file (absent until it runs); the machine's scan
    finds one physical volume on a fixed disk."""
    argv = tmp_path / "argv"
    program = tmp_path / "lvm"
    program.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {argv}\n')
    program.chmod(0o755)
    monkeypatch.setattr(lvm_groups, "LVM", str(program))
    found = LuksScan((), (), ("/dev/vda5", "/dev/sdb1"), ("/dev/vda5",))
    monkeypatch.setattr(luks_devices, "scan", lambda: found)
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
    side = DiskSide()
    row = measure_headers_once(side, None, str(_boot(tmp_path, b"osvg\n")))
    args = lvm.read_text().splitlines()
    assert args[-1] == "osvg" and '"a|^/dev/vda5$|", "r|.*|"' in args[5]  # not the stick
    # the stand-in made no mapping: the listed device is named as not measured
    assert "/dev/mapper/osvg-cryptvault" in row
    assert side.measured is not None and "/dev/mapper/osvg-cryptvault" in side.measured.problems[0]


def test_no_group_named_activates_nothing(tmp_path: Path, lvm: Path) -> None:
    measure_headers_once(DiskSide(), None, str(_boot(tmp_path, None)))
    assert not lvm.exists()


def test_a_bad_group_file_is_said_and_nothing_activated(tmp_path: Path, lvm: Path) -> None:
    row = measure_headers_once(DiskSide(), None, str(_boot(tmp_path, b"-x\n")))
    assert f"{KEY_LVM_FILE} on /boot is unusable" in row and not lvm.exists()


def test_without_lvm_tools_the_row_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lvm_groups, "LVM", str(tmp_path / "none"))
    side = DiskSide()
    row = measure_headers_once(side, None, str(_boot(tmp_path, b"osvg\n")))
    said = "names the LVM volume group osvg, but this firmware has no LVM tools"
    assert said in row
    # the DUK's page says it too, with the headers it could not measure
    assert side.measured is not None and said in side.measured.problems[0]


def test_lvm_on_a_stick_or_a_copied_uuid_keeps_the_key_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The OS activates every group and finds its disks by UUID: what the
    firmware did not measure could stand in for the key's disk."""
    from runtime.disk.key_lists import KeyDevice
    from runtime.disk.luks_devices import LuksDevice
    from runtime.state.platform_disk import _look_alikes

    vault = KeyDevice("/dev/mapper/osvg-cryptvault", "AAAA-1")
    ours = LuksDevice(vault.device, "dm-0", 2, "AAAA-1", 1 << 24, "", False, "osvg")
    stick = LuksDevice("/dev/sdb1", "sdb1", 2, "aaaa-1", 1 << 24, "", True)
    found = LuksScan((ours,), (), ("/dev/vda5",), ("/dev/vda5",))
    monkeypatch.setattr(luks_devices, "scan", lambda: found)
    assert _look_alikes([vault]) == ""
    found = LuksScan((ours, stick), (), ("/dev/vda5",), ("/dev/vda5",))
    assert "same UUID as /dev/sdb1" in _look_alikes([vault])
    found = LuksScan((ours,), (), ("/dev/vda5", "/dev/sdc1"), ("/dev/vda5",))
    assert "removable disk are attached (/dev/sdc1)" in _look_alikes([vault])
