"""Which programs a board's image gets (build_initrd.image_programs), and the
size report's component for lvm, without building an image."""

from __future__ import annotations

import tomllib

import pytest

import build_initrd
from runtime.config.board import BoardConfig, parse_board, parse_board_table
from tests.conftest import REPO_ROOT

BOARD_FILE = REPO_ROOT / "etc" / "boards" / "qemu-swtpm" / "board.toml"


def _board(disk: dict[str, object] | None) -> BoardConfig:
    table = tomllib.loads(BOARD_FILE.read_text())
    table.pop("disk", None)
    if disk is not None:
        table["disk"] = disk
    return parse_board_table(table)


@pytest.mark.parametrize("disk", [None, {}, {"lvm": False}], ids=["absent", "empty", "false"])
def test_a_board_without_lvm_gets_no_lvm(disk: dict[str, object] | None) -> None:
    programs = build_initrd.image_programs(_board(disk))
    assert build_initrd.LVM not in programs
    assert programs == list(build_initrd.PROGRAMS)


def test_a_board_with_lvm_gets_sbin_lvm() -> None:
    programs = build_initrd.image_programs(_board({"lvm": True}))
    assert build_initrd.LVM == "sbin/lvm"  # the runtime calls /sbin/lvm
    assert programs == [*build_initrd.PROGRAMS, "sbin/lvm"]


def test_lvm_is_not_among_the_programs_every_board_gets() -> None:
    assert build_initrd.LVM not in build_initrd.PROGRAMS


def test_the_qemu_board_asks_for_lvm() -> None:
    assert build_initrd.LVM in build_initrd.image_programs(parse_board(BOARD_FILE.read_text()))


@pytest.mark.parametrize(
    "origin",
    ["lvm2 2.03.16-2", "libdevmapper-event1.02.1 2:1.02.185-2", "libsystemd0 252.39-1~deb12u2"],
)
def test_lvm_and_the_libraries_only_it_needs_are_reported_as_lvm(origin: str) -> None:
    assert build_initrd.component_of(origin) == "lvm"


def test_libraries_lvm_shares_stay_where_they_were() -> None:
    # cryptsetup's libdevmapper, gpg's libgcrypt: not lvm's cost
    assert build_initrd.component_of("libdevmapper1.02.1 2:1.02.185-2") == "other libraries"
    assert build_initrd.component_of("libgcrypt20 1.10.1-3+deb12u1") == "other libraries"
