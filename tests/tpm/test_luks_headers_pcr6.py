"""Every boot measures the LUKS headers into PCR 6 as Heads does before the
DUK's unseal (runtime/disk/header_measure.py): real cryptsetup on LUKS1 and
LUKS2 image files, a real TPM (swtpm)."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

from runtime.disk.cryptsetup_ops import CRYPTSETUP
from runtime.disk.duk_policy import BANK, LUKS_HEADER_PCR
from runtime.disk.header_measure import measure_headers
from runtime.tpm import pcrs
from runtime.tpm.connection import Tpm
from runtime.tpm.pcr_math import extend
from tests.support.luks_images import loop_devices, luks_format

PASSPHRASE = b"recovery passphrase"


def _by_hand(device: str, folder: Path) -> str:
    """The digest of the backup Heads makes with cryptsetup itself."""
    backup = folder / f"backup-{Path(device).name}"
    subprocess.run(
        [CRYPTSETUP, "luksHeaderBackup", "--header-backup-file", str(backup), device],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return hashlib.sha256(backup.read_bytes()).hexdigest()


def test_pcr_6_holds_the_hash_of_heads_header_list(tpm: Tpm, tmp_path: Path) -> None:
    images = [tmp_path / "luks1.img", tmp_path / "luks2.img"]
    luks_format(images[0], 1, PASSPHRASE)
    luks_format(images[1], 2, PASSPHRASE)
    work = tmp_path / "work"
    work.mkdir()
    with loop_devices(images) as disks:
        before = pcrs.read_pcrs(tpm, [LUKS_HEADER_PCR])[LUKS_HEADER_PCR]
        measured = measure_headers(tpm, disks, str(work))
        hand = {d: _by_hand(d, tmp_path) for d in disks}
    assert measured.problems == ()
    # Heads' lines: sha256sum over /tmp/lukshdr-<path with / as _>, in name order
    names = sorted((d.replace("/", "_"), d) for d in disks)
    expected = "".join(f"{hand[d]}  /tmp/lukshdr-{name}\n" for name, d in names).encode()
    assert measured.text == expected
    after = pcrs.read_pcrs(tpm, [LUKS_HEADER_PCR])[LUKS_HEADER_PCR]
    assert after == extend(BANK, before, BANK.hash(expected))
    assert list(work.iterdir()) == []  # the backups are gone


def test_a_device_that_is_not_luks_is_named_and_left_out(tpm: Tpm, tmp_path: Path) -> None:
    good, plain = tmp_path / "good.img", tmp_path / "plain.img"
    luks_format(good, 2, PASSPHRASE)
    plain.write_bytes(bytes(1 << 20))
    with loop_devices([good, plain]) as (good_device, plain_device):
        measured = measure_headers(tpm, [good_device, plain_device], str(tmp_path))
    assert measured.devices == (good_device,)
    assert len(measured.problems) == 1 and plain_device in measured.problems[0]


def test_nothing_to_measure_leaves_pcr_6_alone(tpm: Tpm, tmp_path: Path) -> None:
    before = pcrs.read_pcrs(tpm, [LUKS_HEADER_PCR])
    measured = measure_headers(tpm, [], str(tmp_path))
    assert measured.text == b"" and pcrs.read_pcrs(tpm, [LUKS_HEADER_PCR]) == before
