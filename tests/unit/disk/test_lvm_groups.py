"""LVM volume groups: device-mapper names, a logical volume's group, and the
activation's arguments and failures (a stand-in lvm that records its argv:
the real one needs device-mapper, which this host's kernel lacks; the QEMU
tier activates a real group)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runtime.disk import lvm_groups
from runtime.disk.luks_devices import volume_group_of
from runtime.disk.lvm_groups import (
    activate,
    available,
    split_mapper_name,
    volume_group_of_mapping,
)
from tests.unit.disk.test_luks_devices import Tree, luks_head


def mapper_path(group: str, volume: str) -> str:
    """lvm's name for a logical volume's mapping: '-' inside either name doubled."""
    return f"/dev/mapper/{group.replace('-', '--')}-{volume.replace('-', '--')}"


NAME = st.from_regex(r"[A-Za-z0-9+_.][A-Za-z0-9+_.-]{0,30}", fullmatch=True)


def test_mapper_names_split_where_lvm_joins_them() -> None:
    assert split_mapper_name("osvg-cryptvault") == ("osvg", "cryptvault")
    assert split_mapper_name("my--vg-root--fs") == ("my-vg", "root-fs")
    assert split_mapper_name("a---b") == ("a-", "b")
    assert mapper_path("my-vg", "root") == "/dev/mapper/my--vg-root"


def test_names_that_are_no_logical_volumes_give_none() -> None:
    for name in ("", "novolume", "-vg-lv", "vg-", "vg--", "vg-.", "a b-c", "vg-lv/x"):
        assert split_mapper_name(name) is None, name


@given(NAME, NAME)
def test_a_logical_volumes_name_splits_back_into_its_group_and_volume(
    group: str, volume: str
) -> None:
    if {group, volume} & {".", ".."}:
        return  # names lvm refuses
    name = mapper_path(group, volume).removeprefix("/dev/mapper/")
    assert split_mapper_name(name) == (group, volume)


def test_only_an_lvm_mapping_has_a_volume_group() -> None:
    assert volume_group_of_mapping("LVM-Abc123\n", "osvg-cryptvault\n") == "osvg"
    assert volume_group_of_mapping("CRYPT-LUKS2-abc-x", "osvg-cryptvault") == ""
    assert volume_group_of_mapping(None, "osvg-cryptvault") == ""
    assert volume_group_of_mapping("LVM-Abc", None) == ""
    assert volume_group_of_mapping("LVM-Abc", "nodash") == ""


def test_a_logical_volume_without_its_mapper_node_is_not_offered(tmp_path: Path) -> None:
    """dm-N is no name to sign (it changes with what else is active), and
    LVM's hidden layers (a longer dm uuid) may carry the volume's own bytes;
    the QEMU tier finds a real volume by its /dev/mapper node."""
    tree = Tree(tmp_path)
    tree.add("dm-3", luks_head(), extra={"dm/uuid": "LVM-Abc\n", "dm/name": "osvg-cryptvault\n"})
    layer = {"dm/uuid": "LVM-" + "a" * 64 + "-real\n", "dm/name": "osvg-root-real\n"}
    tree.add("dm-4", luks_head(), extra=layer)
    tree.add("dm-5", luks_head(), extra={"dm/uuid": "LVM-Abc\n"})  # no name: no group
    assert [d.path for d in tree.found()] == [str(tree.dev / "dm-5")]


def test_volume_group_of_a_path_that_is_no_block_device_is_empty(tmp_path: Path) -> None:
    plain = tmp_path / "file"
    plain.write_bytes(b"x")
    assert volume_group_of(str(plain)) == ""
    assert volume_group_of(str(tmp_path / "missing")) == ""


def stand_in(tmp_path: Path, status: int, stderr: str = "") -> tuple[Path, Path]:
    """An lvm that writes its arguments, one per line, and exits with ``status``."""
    argv = tmp_path / "argv"
    program = tmp_path / "lvm"
    program.write_text(
        f'#!/bin/sh\nprintf "%s\\n" "$@" > {argv}\nprintf "%s\\n" "{stderr}" >&2\nexit {status}\n'
    )
    program.chmod(0o755)
    return program, argv


FIXED = ("/dev/vda5", "/dev/nvme0n1p3")


def test_activation_names_the_group_and_waits_for_no_udev(tmp_path: Path) -> None:
    program, argv = stand_in(tmp_path, 0)
    assert available(str(program))
    assert activate("osvg", FIXED, str(program)) == ""
    args = argv.read_text().splitlines()
    assert args[:4] == ["vgchange", "--sysinit", "--activate", "y"]
    config = args[args.index("--config") + 1]
    assert args[-1] == "osvg" and "udev_sync = 0" in config
    assert "metadata_read_only = 1" in config and 'hints = "none"' in config
    assert activate(None, FIXED, str(program)) == ""
    assert argv.read_text().splitlines()[-1] != "osvg"  # every group


def test_only_the_physical_volumes_on_fixed_disks_are_read(tmp_path: Path) -> None:
    """A stick's groups are neither parsed nor activated: lvm's filter accepts
    the listed paths exactly and rejects everything else."""
    program, argv = stand_in(tmp_path, 0)
    assert activate("osvg", ("/dev/vda5", "/dev/md0.x+1", '/dev/sd"b'), str(program)) == ""
    config = argv.read_text().splitlines()[5]
    assert 'global_filter = [ "a|^/dev/vda5$|", "a|^/dev/md0[.]x[+]1$|", "r|.*|" ]' in config
    argv.unlink()
    said = activate("osvg", ('/dev/sd"b',), str(program))
    assert (
        said == "No LVM physical volume on a fixed disk: the LVM volume group osvg stayed closed."
    )
    assert not argv.exists()


def test_a_failed_activation_says_why_in_one_printable_line(tmp_path: Path) -> None:
    program, _ = stand_in(tmp_path, 5, "  Volume group \\033[31mosvg\\033 not found")
    said = activate("osvg", FIXED, str(program))
    assert said.startswith("The LVM volume group osvg could not be activated: Volume group")
    assert "\033" not in said and said.endswith(".")


def test_a_bad_name_or_a_missing_program_is_refused_in_words(tmp_path: Path) -> None:
    assert "not an LVM volume group name" in activate("-x", FIXED, str(tmp_path / "none"))
    assert "LVM could not start" in activate("osvg", FIXED, str(tmp_path / "none"))
    assert not available(str(tmp_path / "none"))
    (tmp_path / "notexec").write_text("")
    assert not available(str(tmp_path / "notexec"))


def test_a_hung_lvm_is_stopped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    program = tmp_path / "lvm"
    program.write_text("#!/bin/sh\nexec sleep 30\n")
    program.chmod(0o755)
    monkeypatch.setattr(lvm_groups, "ACTIVATE_TIMEOUT", 0.5)
    assert "did not finish" in activate("osvg", FIXED, str(program))
