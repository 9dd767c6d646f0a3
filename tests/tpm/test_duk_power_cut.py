"""Power cuts during the Disk Unlock Key's setup: whatever step it stops at,
the next boot opens the disks with the recovery passphrase, and the DUK
either works or the runtime finds it not set up.

The setup's order is: the key slots (cryptsetup), the TPM (one NV write),
/boot (the signing). A cut inside cryptsetup is a SIGKILL that strace
delivers as a real luksAddKey starts each of its writes in turn (LUKS1 and
LUKS2 images on loop devices), so every state between two writes is tried
(a cut of the power could also tear one sector, which LUKS2's second header
copy covers and LUKS1 does not claim to). The TPM's write is atomic
(tests/tpm/test_nv_*); a cut between its define and its write leaves an
index never written, read as no key."""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from runtime.disk import cryptsetup_ops
from runtime.disk.cryptsetup_ops import CRYPTSETUP
from runtime.disk.duk_setup import DUK_PBKDF, check_devices
from runtime.disk.duk_store import load
from runtime.disk.duk_unlock import NotSetUp, prepare
from runtime.tpm import handles, nv
from runtime.tpm.connection import Tpm
from tests.support.luks_images import loop_devices, luks_format
from tests.tpm.conftest import OWNER
from tests.tpm.test_duk_setup_unlock import RECOVERY, _set_up, _signed

#: the DUK's slot on each LUKS version (runtime/disk/key_lists.py)
DUK_SLOT = {1: 7, 2: 31}
#: both LUKS2 header copies and LUKS1's key material sit in the first 16 MiB
HEADER_BYTES = 16 << 20
#: the write system calls a cut may stop cryptsetup at
WRITES = "write,pwrite64,pwritev,pwritev2"
#: more writes than a luksAddKey makes: the loop ends at the first run not cut
MAX_CUTS = 200
STRACE = "/usr/bin/strace"


@contextmanager
def _fresh(image: Path, version: int) -> Iterator[str]:
    """A new LUKS image of ``version``, on a loop device."""
    image.unlink(missing_ok=True)
    luks_format(image, version, bytes(RECOVERY))
    with loop_devices([image]) as attached:
        yield attached[0]


def _add_key_cut(device: str, version: int, key_file: Path, recovery: Path, at: int) -> int:
    """The luksAddKey the setup runs (runtime/disk/cryptsetup_ops.add_key),
    killed by strace when it starts its ``at``-th write; its exit status."""
    return subprocess.run(
        [
            STRACE,
            "-f",
            "-qq",
            "-o",
            "/dev/null",
            "-e",
            f"trace={WRITES}",
            "-e",
            f"inject={WRITES}:signal=KILL:when={at}",
            CRYPTSETUP,
            "luksAddKey",
            "--batch-mode",
            f"--type=luks{version}",
            f"--key-file={recovery}",
            f"--key-slot={DUK_SLOT[version]}",
            *DUK_PBKDF.args(version),
            device,
            str(key_file),
        ],
        capture_output=True,
        timeout=120,
        check=False,
    ).returncode


def _header(device: str) -> bytes:
    with open(device, "rb") as f:
        return hashlib.sha256(f.read(HEADER_BYTES)).digest()


@pytest.mark.parametrize("version", [1, 2])
def test_cryptsetup_cut_at_each_of_its_writes_leaves_the_recovery_passphrase(
    tmp_path: Path, version: int
) -> None:
    key_file, recovery = tmp_path / "new.key", tmp_path / "recovery"
    key_file.write_bytes(os.urandom(128))
    recovery.write_bytes(bytes(RECOVERY))
    image, slot = tmp_path / f"luks{version}.img", DUK_SLOT[version]
    states: set[str] = set()
    for at in range(1, MAX_CUTS):
        with _fresh(image, version) as device:
            before = _header(device)
            if _add_key_cut(device, version, key_file, recovery, at) == 0:
                break  # it made fewer writes than that: every cut point was tried
            # the header still reads, and the recovery passphrase opens its own slot
            assert cryptsetup_ops.is_luks(device) == version, at
            assert cryptsetup_ops.slot_opened_by(device, RECOVERY) == 0, at
            used = cryptsetup_ops.used_slots(device)
            assert used <= {0, slot}, (at, used)
            if slot in used:
                # a slot left behind is whole, and the next setup may wipe it
                # (it asks first: duk_setup's wipe_used_slots)
                assert cryptsetup_ops.slot_opened_by(device, key_file.read_bytes()) == slot
                states.add("key slot whole")
                cryptsetup_ops.kill_slot(device, slot, RECOVERY)
            elif _header(device) != before:
                states.add("header changed, no key slot")
            else:
                states.add("untouched")
            assert cryptsetup_ops.used_slots(device) == {0}, at
    else:
        pytest.fail(f"luksAddKey made more than {MAX_CUTS} writes")
    # the cuts landed among the header writes, not only before them
    assert "header changed, no key slot" in states or "key slot whole" in states, states


def test_a_cut_before_boot_was_signed_is_not_set_up_and_a_new_setup_replaces_it(
    tpm: Tpm, tmp_path: Path
) -> None:
    """The slots were added and the key sealed in the TPM, but /boot was never
    signed with the key's files: the boot finds no DUK, the disks open with
    the recovery passphrase, and the next setup replaces the slots and key."""
    with _fresh(tmp_path / "root.img", 2) as device:
        # the files set_up made are kept aside, never signed onto /boot
        _set_up(tpm, [device], tmp_path / "first")
        first = _signed(tmp_path / "first")
        assert first and load(tpm) is not None
        with pytest.raises(NotSetUp):
            prepare(tpm, {}, None)  # what the old signed /boot holds: no kexec_key_*
        assert cryptsetup_ops.slot_opened_by(device, RECOVERY) == 0
        assert [c.duk_slot_used for c in check_devices([device], RECOVERY)] == [True]
        _set_up(tpm, [device], tmp_path / "second", wipe_used_slots=True)
        # a new key, so a new header hash
        assert _signed(tmp_path / "second") != first
        assert cryptsetup_ops.used_slots(device) == {0, DUK_SLOT[2]}


def test_a_cut_between_the_tpm_define_and_its_write_is_no_key(tpm: Tpm) -> None:
    """A first setup's NV index defined, the power gone before its one write."""
    nv.claim(tpm, handles.DUK_SEALED_NV, nv.SEALED_BLOB, OWNER)
    assert nv.exists(tpm, handles.DUK_SEALED_NV)
    assert load(tpm) is None
