"""A verified boot's Disk Unlock Key through the platform (runtime/state/
platform_disk.unlock) on a real TPM: the key is offered only with the TPM
storage key /boot was saved with, since the unseal's session is salted by
it (another key is a bus interposer's, or another TPM's), and only with the
headers this run measured."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime.integrity.boot_lists import PRIMARY_HANDLE_HASH_FILE
from runtime.integrity.boot_report import BootReport
from runtime.integrity.primary_handle import format_primary_hash, primary_handle_bytes
from runtime.state.boot_side import BootSide
from runtime.state.platform import DiskUnlock
from runtime.state.platform_disk import DiskSide, unlock
from runtime.tpm.connection import Tpm
from tests.support.board import TEST_BOARD
from tests.support.luks_images import loop_devices, luks_format
from tests.tpm.conftest import OWNER
from tests.tpm.test_duk_setup_unlock import (
    DUK_PASSPHRASE,
    RECOVERY,
    _next_boot,
    _set_up,
    _signed,
)
from tools.swtpm import Swtpm


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[str]:
    image = tmp_path / "root.img"
    luks_format(image, 2, bytes(RECOVERY))
    with loop_devices([image]) as attached:
        yield attached[0]


def _boot_side(trusted: dict[str, bytes]) -> BootSide:
    return BootSide(last_report=BootReport(trusted_state=trusted))


def test_the_duk_is_offered_only_with_the_storage_key_boot_was_saved_with(
    swtpm: Swtpm, tpm: Tpm, disk: str, tmp_path: Path
) -> None:
    boot = tmp_path / "boot"
    _set_up(tpm, [disk], boot)
    with _next_boot(swtpm, [disk], tmp_path) as (again, measured):
        signed = _signed(boot)
        ours = format_primary_hash(primary_handle_bytes(again))
        side = DiskSide(measured=measured)
        ready = unlock(side, again, _boot_side({**signed, PRIMARY_HANDLE_HASH_FILE: ours}))
        assert ready.state is DiskUnlock.READY, ready.problem
        assert side.ready is not None

        other = format_primary_hash(b"another TPM's storage key")
        refused = unlock(side, again, _boot_side({**signed, PRIMARY_HANDLE_HASH_FILE: other}))
        assert refused.state is DiskUnlock.UNAVAILABLE
        assert "not the one" in refused.problem
        assert side.ready is None  # nothing left for a later unseal to use

        unbound = unlock(side, again, _boot_side(signed))  # no storage key on /boot
        assert unbound.state is DiskUnlock.UNAVAILABLE and side.ready is None

        unmeasured = DiskSide()  # PCR 6 not measured by this run
        stale = unlock(unmeasured, again, _boot_side({**signed, PRIMARY_HANDLE_HASH_FILE: ours}))
        assert stale.state is DiskUnlock.REFUSED and unmeasured.ready is None


def test_a_duk_set_up_with_no_default_saved_names_its_storage_key(
    swtpm: Swtpm, tpm: Tpm, disk: str, tmp_path: Path
) -> None:
    """/boot's storage-key file is written by a default's saving, and the DUK
    may be set up before any: its own files carry it, or it could never be used."""
    from runtime.state.platform_disk import check, set_up

    side = DiskSide()
    assert not check(side, (disk,), bytearray(RECOVERY)).problem
    secrets = (bytearray(RECOVERY), bytearray(DUK_PASSPHRASE), bytearray(OWNER))
    facts = set_up(side, tpm, TEST_BOARD, None, secrets, (disk,), False, lambda _: None)
    assert not facts.problem, facts.problem
    files = dict(side.boot_files or {})
    assert files[PRIMARY_HANDLE_HASH_FILE] == format_primary_hash(primary_handle_bytes(tpm))
    # in this power-on: "from the next one" once /boot was signed with it, else unfinished
    assert unlock(side, tpm, _boot_side(files)).state is DiskUnlock.LATER
    unsigned = unlock(side, tpm, _boot_side({}))
    assert unsigned.state is DiskUnlock.UNAVAILABLE and "not finished" in unsigned.problem
    with _next_boot(swtpm, [disk], tmp_path) as (again, measured):
        ready = unlock(DiskSide(measured=measured), again, _boot_side(files))
    assert ready.state is DiskUnlock.READY, ready.problem


def test_a_copy_of_a_key_disks_header_elsewhere_keeps_the_key_back(
    swtpm: Swtpm, tpm: Tpm, disk: str, tmp_path: Path
) -> None:
    """The OS finds its disks by LUKS UUID; a stick carrying a copy of the key
    disk's header has the same UUID (and its own key slots), so the OS could
    open the stick's container with the key as its root. The firmware measured
    the listed disk only: it keeps the key back while the copy is attached."""
    boot = tmp_path / "boot"
    _set_up(tpm, [disk], boot)
    copy = tmp_path / "stick.img"
    with open(disk, "rb") as real:
        header = real.read(16 << 20)
    copy.write_bytes(header + bytes(1 << 20))
    with _next_boot(swtpm, [disk], tmp_path) as (again, measured):
        signed = {
            **_signed(boot),
            PRIMARY_HANDLE_HASH_FILE: format_primary_hash(primary_handle_bytes(again)),
        }
        with loop_devices([copy]) as (stick,):
            side = DiskSide(measured=measured)
            refused = unlock(side, again, _boot_side(signed))
            assert refused.state is DiskUnlock.UNAVAILABLE, refused.problem
            assert f"same UUID as {stick}" in refused.problem and side.ready is None
        ready = unlock(DiskSide(measured=measured), again, _boot_side(signed))
        assert ready.state is DiskUnlock.READY, ready.problem
