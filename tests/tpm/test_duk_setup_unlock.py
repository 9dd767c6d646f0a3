"""The Disk Unlock Key from setup to the next boot's key cpio, on LUKS
images attached to loop devices and a real TPM (swtpm): the key the cpio
carries opens every container through the DUK's slot; a changed header, a
wrong owner passphrase or a recovery passphrase that opens nothing stop it."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from runtime.disk import cryptsetup_ops
from runtime.disk.duk_policy import PcrFacts, duk_pcrs
from runtime.disk.duk_setup import SetupRefused, check_devices, set_up
from runtime.disk.duk_store import load
from runtime.disk.duk_unlock import (
    HeadersChanged,
    KeyGone,
    NeedsLvm,
    NotSetUp,
    key_cpio,
    prepare,
)
from runtime.disk.header_measure import HeaderMeasurement, measure_headers
from runtime.disk.key_lists import (
    KEY_DEVICES_FILE,
    KEY_LVM_FILE,
    LUKS_HEADER_HASH_FILE,
    KeyListError,
)
from runtime.tpm import pcrs
from runtime.tpm.connection import Tpm
from runtime.tpm.errors import WrongPassphrase
from tests.support.luks_images import loop_devices, luks_format
from tests.tpm.conftest import OWNER
from tools.swtpm import Swtpm

RECOVERY = bytearray(b"disk recovery passphrase")
DUK_PASSPHRASE = bytearray(b"disk unlock passphrase")
SEAL_PCRS, MODULES_PCR = (0, 1, 2, 3, 4, 7), 5


@pytest.fixture
def disks(tmp_path: Path) -> Iterator[list[str]]:
    images = [tmp_path / "root.img", tmp_path / "data.img"]
    for image in images:
        luks_format(image, 2, bytes(RECOVERY))
    with loop_devices(images) as attached:
        yield attached


def _facts(tpm: Tpm) -> PcrFacts:
    pcr_list = duk_pcrs(SEAL_PCRS, MODULES_PCR)
    return PcrFacts(
        current=pcrs.read_pcrs(tpm, pcr_list),
        firmware=None,
        runtime_extended=frozenset(m.pcr for m in tpm.log.entries),
        module_digests=(),
    )


def _set_up(tpm: Tpm, disks: list[str], boot: Path, wipe_used_slots: bool = False) -> None:
    checks = check_devices(disks, RECOVERY)
    result = set_up(
        tpm,
        checks,
        RECOVERY,
        DUK_PASSPHRASE,
        OWNER,
        _facts(tpm),
        SEAL_PCRS,
        MODULES_PCR,
        lambda _: None,
        wipe_used_slots=wipe_used_slots,
        work_dir=str(boot.parent),
    )
    boot.mkdir(exist_ok=True)
    for name, content in result.boot_files.items():
        (boot / name).write_bytes(content)


@contextmanager
def _next_boot(
    swtpm: Swtpm, disks: list[str], work: Path
) -> Iterator[tuple[Tpm, HeaderMeasurement]]:
    """A power cycle and a new runtime's connection, its headers measured."""
    swtpm.power_cycle()
    with Tpm.connect(swtpm.tcti) as tpm:
        tpm.startup()
        yield tpm, measure_headers(tpm, disks, str(work))


def _signed(boot: Path) -> dict[str, bytes]:
    """The kexec*.txt files as the verification of /boot hands them on."""
    return {f.name: f.read_bytes() for f in boot.iterdir() if f.name.startswith("kexec")}


def _secret_key(cpio: bytearray, into: Path) -> bytes:
    into.mkdir()
    subprocess.run(["cpio", "-id", "--quiet"], input=bytes(cpio), cwd=into, check=True, timeout=30)
    return (into / "secret.key").read_bytes()


def test_the_key_in_the_cpio_opens_every_disk_through_the_duk_slot(
    swtpm: Swtpm, tpm: Tpm, disks: list[str], tmp_path: Path
) -> None:
    boot = tmp_path / "boot"
    _set_up(tpm, disks, boot)
    assert (boot / KEY_DEVICES_FILE).read_text().split() == [
        disks[0],
        cryptsetup_ops.luks_uuid(disks[0]),
        disks[1],
        cryptsetup_ops.luks_uuid(disks[1]),
    ]
    with _next_boot(swtpm, disks, tmp_path) as (again, measured):
        duk = prepare(again, _signed(boot), measured)
        cpio = key_cpio(again, duk, DUK_PASSPHRASE)
    key = _secret_key(cpio, tmp_path / "cpio")
    assert len(key) == 128
    for disk in disks:
        assert cryptsetup_ops.slot_opened_by(disk, key) == 31
        assert cryptsetup_ops.slot_opened_by(disk, RECOVERY) == 0  # untouched
    assert b"/secret.key luks,discard" in (tmp_path / "cpio" / "etc" / "crypttab").read_bytes()


def test_a_header_changed_after_setup_is_refused_naming_the_device(
    swtpm: Swtpm, tpm: Tpm, disks: list[str], tmp_path: Path
) -> None:
    boot = tmp_path / "boot"
    _set_up(tpm, disks, boot)
    # a new key slot on the second disk: its header is another one now
    cryptsetup_ops.add_key(
        disks[1], RECOVERY, b"another", 5, pbkdf=cryptsetup_ops.Pbkdf("pbkdf2", iterations=1000)
    )
    with (
        _next_boot(swtpm, disks, tmp_path) as (again, measured),
        pytest.raises(HeadersChanged) as refused,
    ):
        prepare(again, _signed(boot), measured)
    assert disks[1] in str(refused.value) and disks[0] not in str(refused.value)


def test_a_wrong_owner_passphrase_changes_no_disk(
    tpm: Tpm, disks: list[str], tmp_path: Path
) -> None:
    checks = check_devices(disks, RECOVERY)
    with pytest.raises(WrongPassphrase):
        set_up(
            tpm,
            checks,
            RECOVERY,
            DUK_PASSPHRASE,
            b"not the owner passphrase",
            _facts(tpm),
            SEAL_PCRS,
            MODULES_PCR,
            lambda _: None,
            work_dir=str(tmp_path),
        )
    assert all(cryptsetup_ops.used_slots(d) == {0} for d in disks)
    assert load(tpm) is None


def test_a_recovery_passphrase_that_opens_nothing_is_refused(disks: list[str]) -> None:
    with pytest.raises(SetupRefused, match="does not open"):
        check_devices(disks, bytearray(b"not the recovery passphrase"))


def test_a_used_duk_slot_is_wiped_only_when_allowed(
    tpm: Tpm, disks: list[str], tmp_path: Path
) -> None:
    boot = tmp_path / "boot"
    _set_up(tpm, disks, boot)
    again = check_devices(disks, RECOVERY)
    assert all(c.duk_slot_used for c in again)
    with pytest.raises(SetupRefused, match="in use"):
        _set_up(tpm, disks, boot)
    _set_up(tpm, disks, boot, wipe_used_slots=True)
    assert all(cryptsetup_ops.used_slots(d) == {0, 31} for d in disks)


def test_without_the_tpm_blob_the_boot_finds_no_duk(
    swtpm: Swtpm, tpm: Tpm, disks: list[str], tmp_path: Path
) -> None:
    """Slots added and /boot written, but the TPM lost the key (a reset, or a
    power cut before the NV write): not set up, and the disks still open with
    the recovery passphrase."""
    from runtime.disk.duk_store import remove

    boot = tmp_path / "boot"
    _set_up(tpm, disks, boot)
    assert remove(tpm, OWNER)
    with _next_boot(swtpm, disks, tmp_path) as (again, measured), pytest.raises(KeyGone):
        prepare(again, _signed(boot), measured)
    assert all(cryptsetup_ops.slot_opened_by(d, RECOVERY) == 0 for d in disks)


def test_no_signed_files_is_not_set_up(tpm: Tpm) -> None:
    with pytest.raises(NotSetUp, match=KEY_DEVICES_FILE):
        prepare(tpm, {}, None)
    listed = {KEY_DEVICES_FILE: b"/dev/vda2 1234-abcd\n"}
    with pytest.raises(NotSetUp, match=LUKS_HEADER_HASH_FILE):
        prepare(tpm, listed, None)


def test_a_volume_group_without_lvm_tools_is_named_as_what_this_firmware_cannot_open(
    tpm: Tpm,
) -> None:
    signed = {KEY_DEVICES_FILE: b"/dev/vg0/root 1234-abcd\n", KEY_LVM_FILE: b"vg0\n"}
    with pytest.raises(NeedsLvm, match="volume group vg0"):
        prepare(tpm, signed, None, lvm_tools=False)


def test_with_lvm_tools_a_volume_group_goes_on_to_the_header_check(tpm: Tpm) -> None:
    """The group was activated before the headers were measured: what decides
    is the measurement, as for any other disk."""
    signed = {
        KEY_DEVICES_FILE: b"/dev/mapper/vg0-root 1234-abcd\n",
        KEY_LVM_FILE: b"vg0\n",
        LUKS_HEADER_HASH_FILE: b"0" * 64 + b"  /tmp/lukshdr-_dev_mapper_vg0-root\n",
    }
    with pytest.raises(HeadersChanged, match="not measured"):
        prepare(tpm, signed, None, lvm_tools=True)
    with pytest.raises(KeyListError):
        prepare(tpm, {**signed, KEY_LVM_FILE: b"-bad\n"}, None, lvm_tools=True)


def test_a_setup_cut_before_the_tpm_write_leaves_the_recovery_passphrase_working(
    tpm: Tpm, disks: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A power cut after the key slots but before the sealed key was stored:
    the disks open with the recovery passphrase, the TPM holds no key, /boot
    got no file, and the next setup replaces the orphaned slots."""
    from runtime.disk import duk_setup

    def cut(*_: object) -> None:
        raise SetupRefused("power cut (simulated)")

    monkeypatch.setattr(duk_setup, "store", cut)
    boot = tmp_path / "boot"
    with pytest.raises(SetupRefused):
        _set_up(tpm, disks, boot)
    assert not boot.exists() and load(tpm) is None
    assert all(cryptsetup_ops.slot_opened_by(d, RECOVERY) == 0 for d in disks)
    assert all(cryptsetup_ops.used_slots(d) == {0, 31} for d in disks)
    monkeypatch.undo()
    _set_up(tpm, disks, boot, wipe_used_slots=True)
    assert load(tpm) is not None


def test_luks1_and_luks2_together_each_get_their_versions_slot(
    swtpm: Swtpm, tpm: Tpm, tmp_path: Path
) -> None:
    """Heads refuses to mix them; here each container gets its own version's slot."""
    images = [tmp_path / "root2.img", tmp_path / "data1.img"]
    luks_format(images[0], 2, bytes(RECOVERY))
    luks_format(images[1], 1, bytes(RECOVERY))
    boot = tmp_path / "boot"
    with loop_devices(images) as mixed:
        _set_up(tpm, mixed, boot)
        with _next_boot(swtpm, mixed, tmp_path) as (again, measured):
            cpio = key_cpio(again, prepare(again, _signed(boot), measured), DUK_PASSPHRASE)
        key = _secret_key(cpio, tmp_path / "cpio")
        assert [cryptsetup_ops.slot_opened_by(d, key) for d in mixed] == [31, 7]


def test_without_the_event_log_setup_stops_before_any_disk_changes(
    tpm: Tpm, disks: list[str], tmp_path: Path
) -> None:
    """The modules PCR was extended this boot and nothing says what it held
    before: the key could never be predicted, so no slot is touched."""
    pcrs.extend(tpm, MODULES_PCR, b"a module", "module", "module")
    checks = check_devices(disks, RECOVERY)
    with pytest.raises(SetupRefused, match=f"PCR {MODULES_PCR}"):
        set_up(
            tpm,
            checks,
            RECOVERY,
            DUK_PASSPHRASE,
            OWNER,
            _facts(tpm),
            SEAL_PCRS,
            MODULES_PCR,
            lambda _: None,
            work_dir=str(tmp_path),
        )
    assert all(cryptsetup_ops.used_slots(d) == {0} for d in disks)


def test_disks_in_a_volume_group_have_it_named_for_the_boot_and_two_groups_are_refused(
    tpm: Tpm, disks: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The host has no device-mapper, so no logical volume: which group a disk is
    in is what sysfs would say (runtime.disk.luks_devices.volume_group_of)."""
    from runtime.disk import duk_setup

    groups = {disks[0]: "osvg", disks[1]: "othervg"}
    monkeypatch.setattr(duk_setup, "volume_group_of", lambda device: groups[device])
    with pytest.raises(SetupRefused, match="2 LVM volume groups"):
        check_devices(disks, RECOVERY)
    assert not {31} & cryptsetup_ops.used_slots(disks[0])  # nothing changed
    groups[disks[1]] = "osvg"
    boot = tmp_path / "boot"
    _set_up(tpm, disks, boot)
    assert (boot / KEY_LVM_FILE).read_bytes() == b"osvg\n"
    groups.update({disks[0]: "", disks[1]: ""})
    _set_up(tpm, disks, boot / "again", wipe_used_slots=True)
    assert not (boot / "again" / KEY_LVM_FILE).exists()
