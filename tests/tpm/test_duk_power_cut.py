"""Power cuts during the Disk Unlock Key's setup: whatever step it stops at,
the next boot opens the disks with the recovery passphrase, and the DUK
either works or the runtime finds it not set up.

The setup's order is: the key slots (cryptsetup), the TPM (one NV write),
/boot (the signing). A cut inside cryptsetup is a SIGKILL at points spread
over a real luksAddKey, on LUKS1 and LUKS2 images on loop devices: it stops
the process between any two of its writes (a cut of the power could also
tear one sector, which LUKS2's second header copy covers and LUKS1 does not
claim to). The TPM's write is atomic (tests/tpm/test_nv_*); a cut between
its define and its write leaves an index never written, read as no key."""

from __future__ import annotations

import os
import signal
import subprocess
import time
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
#: where, as a share of a whole luksAddKey's time, the process is killed
CUT_POINTS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


@contextmanager
def _fresh(image: Path, version: int) -> Iterator[str]:
    """A new LUKS image of ``version``, on a loop device."""
    image.unlink(missing_ok=True)
    luks_format(image, version, bytes(RECOVERY))
    with loop_devices([image]) as attached:
        yield attached[0]


def _add_key(
    device: str, version: int, key_file: Path, recovery_file: Path
) -> subprocess.Popen[bytes]:
    """The luksAddKey the setup runs (runtime/disk/cryptsetup_ops.add_key),
    its secrets in files here so that nothing ties it to this process."""
    return subprocess.Popen(
        [
            CRYPTSETUP,
            "luksAddKey",
            "--batch-mode",
            f"--type=luks{version}",
            f"--key-file={recovery_file}",
            f"--key-slot={DUK_SLOT[version]}",
            *DUK_PBKDF.args(version),
            device,
            str(key_file),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.mark.parametrize("version", [1, 2])
def test_cryptsetup_killed_while_adding_the_duk_slot_leaves_the_recovery_passphrase(
    tmp_path: Path, version: int
) -> None:
    key_file, recovery_file = tmp_path / "new.key", tmp_path / "recovery"
    key_file.write_bytes(os.urandom(128))
    recovery_file.write_bytes(bytes(RECOVERY))
    image, slot = tmp_path / f"luks{version}.img", DUK_SLOT[version]
    with _fresh(image, version) as device:
        started = time.monotonic()
        assert _add_key(device, version, key_file, recovery_file).wait(timeout=120) == 0
        whole = time.monotonic() - started
    cuts_inside = 0
    for share in CUT_POINTS:
        with _fresh(image, version) as device:
            running = _add_key(device, version, key_file, recovery_file)
            time.sleep(whole * share)
            running.send_signal(signal.SIGKILL)
            cuts_inside += running.wait(timeout=120) != 0
            # the header still reads, and the recovery passphrase opens its own slot
            assert cryptsetup_ops.is_luks(device) == version, share
            assert cryptsetup_ops.slot_opened_by(device, RECOVERY) == 0, share
            used = cryptsetup_ops.used_slots(device)
            assert used <= {0, slot}, (share, used)
            if slot in used:
                # a slot the cut left behind is whole, and the next setup may
                # wipe it (it asks first: duk_setup's wipe_used_slots)
                assert cryptsetup_ops.slot_opened_by(device, key_file.read_bytes()) == slot
                cryptsetup_ops.kill_slot(device, slot, RECOVERY)
            assert cryptsetup_ops.used_slots(device) == {0}, share
    assert cuts_inside > 0, "no kill landed inside cryptsetup: the test proves nothing"


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
