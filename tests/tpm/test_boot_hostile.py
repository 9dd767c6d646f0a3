"""/boot written by an attacker who has the disk but not the owner's key: each
way found to boot unsigned code, to get the owner to sign the attacker's
change, or to stop the start, reproduced against a real swtpm counter and the
real gpg, and shown refused (or shown to the owner and not adopted)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from runtime.integrity.boot_lists import LINKS_FILE, parse_links
from runtime.integrity.boot_paths import BootPathError
from runtime.integrity.boot_view import BootView, Signed
from runtime.integrity.gpg_signer import GpgSigner
from runtime.integrity.sign_boot import SigningError
from runtime.integrity.tpm_counter import TpmCounter
from runtime.integrity.verify_boot import BootReport, Problem
from runtime.kexec import ram_copy
from runtime.kexec.errors import KexecError
from runtime.state.boot_side import BootSide
from runtime.state.platform import BootOption
from runtime.state.platform_boot import options, verified_files_problem
from runtime.tpm.connection import Tpm
from tests.hang_guard import within
from tests.support.signed_boot import (
    heads_hash_check,
    owner_signs,
    owner_verifies,
    problems,
)
from tests.tpm.conftest import OWNER
from tools.owner_key import OwnerKey

GRUB = "menuentry 'Debian' {\n linux /vmlinuz root=/dev/vda2 ro\n initrd /initrd.img-6.1\n}\n"
HANG = 20  # seconds: a call on hostile /boot that takes longer is taken as hung


@pytest.fixture
def boot(tmp_path: Path) -> Path:
    root = tmp_path / "boot"
    (root / "grub").mkdir(parents=True)
    (root / "grub" / "grub.cfg").write_text(GRUB)
    (root / "vmlinuz-6.1").write_bytes(b"signed new kernel" + os.urandom(50_000))
    (root / "vmlinuz-6.0").write_bytes(b"signed OLD vulnerable kernel" + os.urandom(50_000))
    (root / "initrd.img-6.1").write_bytes(os.urandom(80_000))
    os.symlink("vmlinuz-6.1", root / "vmlinuz")
    return root


def _signed(tpm: Tpm, boot: Path, owner_key: OwnerKey) -> tuple[TpmCounter, BootReport]:
    counter = TpmCounter(tpm, OWNER)
    report = owner_signs(boot, owner_key, counter)
    assert report.ok, report.findings
    return counter, report


def _state(boot: Path) -> dict[str, bytes]:
    return {
        p.name: p.read_bytes()
        for p in boot.iterdir()
        if p.name.startswith("kexec") and p.is_file() and not p.is_symlink()
    }


def _option(line: str) -> BootOption:
    return BootOption(1, line, "x", "", "")


# --- 1. unsigned code booted as verified: the kexec.d symlink trick ---------------


def _plant_kexec_d(boot: Path) -> None:
    (boot / "kexec.d").mkdir()
    os.symlink("../grub", boot / "kexec.d" / "lnk")
    (boot / "kexec.d" / "vmlinuz-6.1").write_bytes(b"ATTACKER KERNEL")
    (boot / "kexec.d" / "grub.cfg").write_text(
        "menuentry 'Evil' {\n linux /kexec.d/lnk/../vmlinuz-6.1 root=/dev/vda2\n}\n"
    )


def test_kexec_area_with_symlink_trick_is_refused_and_never_offered(
    tpm: Tpm, boot: Path, owner_key: OwnerKey
) -> None:
    counter, signed_report = _signed(tpm, boot, owner_key)
    _plant_kexec_d(boot)
    report = owner_verifies(boot, owner_key, counter)
    assert Problem.UNEXPECTED in problems(report) and not report.ok
    assert "kexec.d" in " ".join(str(f) for f in report.findings)
    # even a view made from the earlier good check never offers or loads it
    side = BootSide(boot_dir=str(boot), device="/dev/test", last_report=signed_report)
    names = [o.name for o in options(side).options]
    assert "Evil" not in names and names
    evil = "Evil|elf|kernel /kexec.d/lnk/../vmlinuz-6.1|append root=/dev/vda2"
    assert "signed-state area" in verified_files_problem(side, _option(evil))
    view = BootView(str(boot), signed_report.signed())
    for path in ("/kexec.d/lnk/../vmlinuz-6.1", "/kexec.d/vmlinuz-6.1", "/kexec.d/grub.cfg"):
        with pytest.raises(BootPathError):
            view.check_bootable(path)
        assert view.read_text(path) is None
    # the unverified view (unsafe boot) does not read there either
    assert BootView(str(boot), None).read_text("/kexec.d/grub.cfg") is None


def test_a_file_swapped_after_the_check_is_never_loaded(
    tpm: Tpm, boot: Path, owner_key: OwnerKey, tmp_path: Path
) -> None:
    _, report = _signed(tpm, boot, owner_key)
    view = BootView(str(boot), report.signed())
    from runtime.boot_configs.heads_line import parse_heads_line

    entry = parse_heads_line("D|elf|kernel /vmlinuz|initrd /initrd.img-6.1").entry
    good = tmp_path / "good"
    good.mkdir()
    staged = ram_copy.stage_entry(view, entry, str(good))
    assert Path(staged.paths["/vmlinuz"]).read_bytes() == (boot / "vmlinuz-6.1").read_bytes()
    # the disk answers a second read differently: the copy is refused
    (boot / "vmlinuz-6.1").write_bytes(b"unsigned" + os.urandom(100))
    bad = tmp_path / "bad"
    bad.mkdir()
    with pytest.raises(KexecError, match="read differently"):
        ram_copy.stage_entry(view, entry, str(bad))
    assert not (bad / "0-kernel").exists()


# --- 2. the owner signs only what the owner was shown -----------------------------


def test_a_change_after_the_check_is_not_signed(tpm: Tpm, boot: Path, owner_key: OwnerKey) -> None:
    counter, _ = _signed(tpm, boot, owner_key)
    (boot / "config-6.1").write_text("an update the owner made\n")
    shown = owner_verifies(boot, owner_key, counter)
    assert shown.added == ["./config-6.1"]
    before = _state(boot)
    # what a replayed journal does when /boot is remounted read-write to sign
    with (boot / "vmlinuz-6.1").open("r+b") as f:
        f.write(b"ATTACKER")
    with pytest.raises(SigningError, match=r"vmlinuz-6\.1") as err:
        owner_signs(boot, owner_key, counter, shown=shown)
    assert "config-6.1" not in str(err.value)
    assert _state(boot) == before


def test_a_pending_ext4_journal_is_refused_at_signing(
    tpm: Tpm, boot: Path, owner_key: OwnerKey, tmp_path: Path
) -> None:
    """The attack as it happens: the probe's ro,noload mount shows the signed
    kernel, the read-write mount for signing replays the attacker's journal."""
    from runtime.devices.boot_device import remount, unmount
    from tools import ext4_journal

    losetup = shutil.which("losetup", path="/usr/sbin:/sbin:/usr/bin")
    if os.geteuid() != 0 or losetup is None:
        pytest.skip("a loop device needs root and losetup")
    os.unlink(boot / "vmlinuz")  # make_ext4_image takes regular files
    files = {"/" + str(p.relative_to(boot)): p.read_bytes() for p in boot.rglob("*") if p.is_file()}
    image = tmp_path / "boot.ext4"
    ext4_journal.make_ext4_image(image, files)
    done = subprocess.run(
        [losetup, "--find", "--show", str(image)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if done.returncode:
        pytest.skip(f"no loop device here: {done.stderr.strip()}")
    device, mnt = done.stdout.strip(), tmp_path / "mnt"
    mnt.mkdir()
    counter = TpmCounter(tpm, OWNER)
    try:
        # the owner signs /boot as it is; then the attacker, offline, leaves a journal
        subprocess.run(["mount", device, str(mnt)], check=True, timeout=30)
        assert owner_signs(mnt, owner_key, counter).ok
        unmount(str(mnt))
        kernel = files["/vmlinuz-6.1"]
        ext4_journal.make_pending_journal(image, "/vmlinuz-6.1", kernel[:-8] + b"ATTACKER")
        subprocess.run(["mount", "-o", "ro,noload", device, str(mnt)], check=True, timeout=30)
        shown = owner_verifies(mnt, owner_key, counter)
        assert shown.ok, shown.findings  # the old, signed kernel is what is seen
        before = _state(mnt)
        assert remount(device, str(mnt), writable=True, replay_journal=True) == ""
        with pytest.raises(SigningError, match=r"vmlinuz-6\.1"):
            owner_signs(mnt, owner_key, counter, shown=shown)
        assert _state(mnt) == before  # nothing was signed
        assert (mnt / "vmlinuz-6.1").read_bytes().endswith(b"ATTACKER")
        assert not owner_verifies(mnt, owner_key, counter).ok  # and the next check says so
    finally:
        unmount(str(mnt))
        subprocess.run([losetup, "-d", device], timeout=30, check=False)


# --- 3. re-signing adopts nothing the attacker planted ----------------------------


def test_planted_default_is_not_trusted_nor_carried_into_a_new_signature(
    tpm: Tpm, boot: Path, owner_key: OwnerKey
) -> None:
    counter, _ = _signed(tpm, boot, owner_key)
    (boot / "kexec_default.1.txt").write_text("Evil|elf|kernel /vmlinuz-6.0|append init=/bin/sh\n")
    shown = owner_verifies(boot, owner_key, counter)
    assert Problem.SIGNATURE_BAD in problems(shown) and shown.trusted_state == {}
    side = BootSide(boot_dir=str(boot), device="/dev/test", last_report=shown)
    from runtime.state.platform_boot import saved_default

    assert saved_default(side).option is None
    report = owner_signs(boot, owner_key, counter, shown=shown)
    assert report.ok
    assert not (boot / "kexec_default.1.txt").exists()


def test_symlinked_state_file_is_named_and_removed_never_copied(
    tpm: Tpm, boot: Path, owner_key: OwnerKey, tmp_path: Path
) -> None:
    counter, _ = _signed(tpm, boot, owner_key)
    outside = tmp_path / "elsewhere.txt"
    outside.write_bytes(b"bytes from outside /boot\n")
    os.symlink(outside, boot / "kexec_evil.txt")
    os.symlink("/dev/zero", boot / "kexec_zero.txt")
    shown = within(lambda: owner_verifies(boot, owner_key, counter), HANG)
    assert problems(shown) == {Problem.UNEXPECTED}
    text = " ".join(str(f) for f in shown.findings)
    assert "kexec_evil.txt" in text and "kexec_zero.txt" in text
    assert owner_signs(boot, owner_key, counter, shown=shown).ok
    assert not os.path.lexists(boot / "kexec_evil.txt")
    assert not os.path.lexists(boot / "kexec_zero.txt")
    assert outside.read_bytes() == b"bytes from outside /boot\n"
    assert all(b"from outside" not in data for data in _state(boot).values())


# --- 4. the rollback counter cannot be reset (more in test_rollback_counter_retire) --


def test_older_copy_signed_before_a_new_counter_never_verifies(
    tpm: Tpm, boot: Path, owner_key: OwnerKey, tmp_path: Path
) -> None:
    counter, _ = _signed(tpm, boot, owner_key)
    old = tmp_path / "old"
    shutil.copytree(boot, old, symlinks=True)
    (boot / "kexec_rollback.txt").unlink()
    shown = owner_verifies(boot, owner_key, counter)
    assert owner_signs(boot, owner_key, counter, shown=shown).ok
    shutil.rmtree(boot)
    shutil.copytree(old, boot, symlinks=True)
    assert Problem.COUNTER_MISSING in problems(owner_verifies(boot, owner_key, counter))


# --- 5. files that hang or crash the start ----------------------------------------


def test_fifo_rollback_file_and_signature_do_not_hang(
    tpm: Tpm, boot: Path, owner_key: OwnerKey
) -> None:
    counter, _ = _signed(tpm, boot, owner_key)
    for name in ("kexec_rollback.txt", "kexec.sig"):
        (boot / name).unlink()
        os.mkfifo(boot / name)
    report = within(lambda: owner_verifies(boot, owner_key, counter), HANG)
    assert not report.ok
    assert "FIFO" in " ".join(str(f) for f in report.findings)
    from runtime.integrity.preflight import CounterView, preflight

    assert "FIFO" in within(lambda: preflight(str(boot), lambda _: CounterView(None)), HANG)


def test_unlistable_state_name_is_a_finding_not_a_crash(
    tpm: Tpm, boot: Path, owner_key: OwnerKey
) -> None:
    counter, _ = _signed(tpm, boot, owner_key)
    (boot / "kexec\\x.txt").write_text("odd\n")
    (boot / "kexec\nnl.txt").write_text("odd\n")
    report = owner_verifies(boot, owner_key, counter)
    assert problems(report) == {Problem.UNEXPECTED}
    assert "kexec\\\\x.txt" in str(report.findings[0]) or "kexec\\x.txt" in str(report.findings[0])
    assert "\n" not in str(report.findings[0])  # a name cannot break the screen's lines
    assert owner_signs(boot, owner_key, counter, shown=report).ok
    assert not (boot / "kexec\\x.txt").exists()


# --- 6. symlink targets are signed ------------------------------------------------


def test_retargeted_symlink_to_an_older_signed_kernel_is_refused(
    tpm: Tpm, boot: Path, owner_key: OwnerKey
) -> None:
    counter, _ = _signed(tpm, boot, owner_key)
    assert parse_links((boot / LINKS_FILE).read_bytes()) == {"./vmlinuz": "vmlinuz-6.1"}
    # Heads' own check still accepts the signed state with the extra file
    heads_hash_check(boot, "kexec_hashes.txt")
    os.unlink(boot / "vmlinuz")
    os.symlink("vmlinuz-6.0", boot / "vmlinuz")
    report = owner_verifies(boot, owner_key, counter)
    assert problems(report) == {Problem.LINKS_CHANGED}
    assert "vmlinuz -> vmlinuz-6.0" in str(report.findings[0])


def test_symlink_without_a_signed_target_is_never_followed(
    tpm: Tpm, boot: Path, owner_key: OwnerKey
) -> None:
    """A /boot signed by Heads records no symlink target: the verified boot
    then follows no symlink at all."""
    _, report = _signed(tpm, boot, owner_key)
    signed = report.signed()
    assert signed is not None
    as_heads = BootView(str(boot), Signed(signed.digests, signed.tree, None))
    with pytest.raises(BootPathError, match="symbolic link"):
        as_heads.open("/vmlinuz")
    rel, fd = BootView(str(boot), signed).open("/vmlinuz")
    os.close(fd)
    assert rel == "./vmlinuz-6.1"


def test_signing_replaces_a_fifo_state_file_and_keeps_the_new_one(
    tpm: Tpm, boot: Path, owner_key: OwnerKey
) -> None:
    counter, _ = _signed(tpm, boot, owner_key)
    (boot / "kexec_rollback.txt").unlink()
    os.mkfifo(boot / "kexec_rollback.txt")
    shown = within(lambda: owner_verifies(boot, owner_key, counter), HANG)
    text = " ".join(str(f) for f in shown.findings)
    assert "is not there" not in text and "FIFO" in text
    report = within(lambda: owner_signs(boot, owner_key, counter, shown=shown), HANG)
    assert report.ok, report.findings
    assert (boot / "kexec_rollback.txt").is_file()


# --- found by attacking the first version of these fixes ---------------------------


def test_an_unsigned_rollback_file_never_picks_the_counter(
    tpm: Tpm, boot: Path, owner_key: OwnerKey, tmp_path: Path
) -> None:
    from runtime.integrity.boot_lists import ROLLBACK_FILE, format_sum_line
    from runtime.secrets.hotp.counter import TpmCounterStore
    from runtime.tpm import handles

    hotp = TpmCounterStore.open_or_create(tpm, OWNER)
    hotp_before = hotp.read()
    counter, _ = _signed(tpm, boot, owner_key)
    assert owner_signs(boot, owner_key, counter).ok
    old = tmp_path / "old"
    shutil.copytree(boot, old, symlinks=True)
    (boot / ROLLBACK_FILE).unlink()
    shown = owner_verifies(boot, owner_key, counter)
    # what a replayed journal writes once /boot is writable: the HOTP counter's index
    hotp_id = f"{handles.HOTP_COUNTER_NV:x}"
    (boot / ROLLBACK_FILE).write_text(format_sum_line("0" * 64, f"/tmp/counter-{hotp_id}"))
    report = owner_signs(boot, owner_key, counter, shown=shown)
    assert report.ok
    assert hotp.read() == hotp_before  # never moved by a signing
    assert not owner_verifies(old, owner_key, counter).ok  # the older copy stays refused
    # and a /boot naming the HOTP counter is refused as such
    (boot / ROLLBACK_FILE).write_text(format_sum_line("0" * 64, f"/tmp/counter-{hotp_id}"))
    findings = owner_verifies(boot, owner_key, counter).findings
    assert "not a rollback counter" in " ".join(map(str, findings))


def _heads_signed(boot: Path, owner_key: OwnerKey, counter: TpmCounter) -> None:
    """/boot signed as Heads signs it: no record of where a symlink points."""
    from runtime.integrity import boot_lists as bl
    from runtime.integrity.boot_scan import hash_files, scan_boot

    report = owner_signs(boot, owner_key, counter)
    (boot / bl.LINKS_FILE).unlink()
    scan = scan_boot(str(boot))
    state = {n: (boot / n).read_bytes() for n in bl.signed_names(os.listdir(boot))}
    state[bl.HASHES_FILE] = bl.format_hashes(hash_files(str(boot), scan.files))
    for name, data in state.items():
        (boot / name).write_bytes(data)
    signature = GpgSigner(str(owner_key.home)).sign(bl.signed_listing(state))
    (boot / bl.SIGNATURE_FILE).write_bytes(signature)
    assert report.ok


def test_symlink_targets_heads_never_signed_are_shown_before_signing(
    tpm: Tpm, boot: Path, owner_key: OwnerKey
) -> None:
    counter = TpmCounter(tpm, OWNER)
    _heads_signed(boot, owner_key, counter)
    os.unlink(boot / "vmlinuz")
    os.symlink("vmlinuz-6.0", boot / "vmlinuz")
    report = owner_verifies(boot, owner_key, counter)
    assert problems(report) == {Problem.LINKS_UNSIGNED}
    assert "vmlinuz -> vmlinuz-6.0" in str(report.findings[0])


def test_every_changed_path_reaches_the_signing_screen(
    tpm: Tpm, boot: Path, owner_key: OwnerKey
) -> None:
    from runtime.state.platform_boot import _check_of

    counter, _ = _signed(tpm, boot, owner_key)
    names = [f"aaa-{i:02}" for i in range(20)]
    for name in names:
        (boot / name).write_text("new")
    (boot / "vmlinuz-6.1").write_bytes(b"EVIL")
    check = _check_of(owner_verifies(boot, owner_key, counter))
    assert set(names) | {"vmlinuz-6.1"} <= set(check.changed)


def test_an_interrupted_owner_signing_is_finished_so_its_signature_cannot_come_back(
    tpm: Tpm, boot: Path, owner_key: OwnerKey
) -> None:
    from runtime.integrity.boot_lists import PENDING_DIR
    from runtime.integrity.sign_boot import settle_interrupted

    counter, _ = _signed(tpm, boot, owner_key)
    (boot / "config-6.1").write_text("an update\n")

    class CutBeforeIncrement(TpmCounter):
        def increment(self, index: int) -> int:
            raise OSError("power cut")

    shown = owner_verifies(boot, owner_key, counter)
    value = shown.counter
    with pytest.raises(OSError, match="power cut"):
        owner_signs(boot, owner_key, CutBeforeIncrement(tpm, OWNER), shown=shown)
    assert (boot / PENDING_DIR / "COMMIT").exists()
    said = settle_interrupted(str(boot), counter, str(owner_key.public))
    assert "completed" in said
    report = owner_verifies(boot, owner_key, counter)
    assert report.ok and report.counter == (value or 0) + 1
    assert "./config-6.1" in report.digests


def test_a_staging_not_signed_by_the_owner_is_dropped_and_moves_nothing(
    tpm: Tpm, boot: Path, owner_key: OwnerKey, stranger: OwnerKey
) -> None:
    from runtime.integrity.boot_lists import ROLLBACK_FILE, parse_rollback
    from runtime.integrity.sign_boot import settle_interrupted
    from runtime.integrity.signed_state_commit import NewState, stage

    counter, report = _signed(tpm, boot, owner_key)
    now = report.counter or 0
    state = _state(boot)
    index = parse_rollback(state[ROLLBACK_FILE]).nv_index
    from runtime.integrity.boot_lists import format_rollback, signed_listing

    files = {**state, ROLLBACK_FILE: format_rollback(f"{index:x}", now + 1)}
    files.pop("kexec.sig")
    files["kexec.sig"] = GpgSigner(str(stranger.home)).sign(signed_listing(files))
    stage(str(boot), NewState(files, [], now + 1))
    said = settle_interrupted(str(boot), counter, str(owner_key.public))
    assert "dropped" in said
    assert counter.value(index) == now and owner_verifies(boot, owner_key, counter).ok


def test_control_characters_and_escapes_in_names_never_reach_a_screen(
    tpm: Tpm, boot: Path, owner_key: OwnerKey
) -> None:
    counter, _ = _signed(tpm, boot, owner_key)
    (boot / "kexec_\x01.txt").write_text("x")
    (boot / "\x1b[2J\x9bVERIFIED").write_text("x")
    report = owner_verifies(boot, owner_key, counter)
    text = " ".join(map(str, report.findings))
    assert not any(c in text for c in "\x1b\x9b\x01")
    assert Problem.UNEXPECTED in problems(report)
    assert owner_signs(boot, owner_key, counter, shown=report).ok
    assert not os.path.lexists(boot / "kexec_\x01.txt")


def test_many_hard_links_to_a_sparse_state_file_are_refused_without_reading(
    tpm: Tpm, boot: Path, owner_key: OwnerKey
) -> None:
    counter, _ = _signed(tpm, boot, owner_key)
    with open(boot / "kexec_pad0.txt", "wb") as f:
        f.truncate(32 << 20)
    for i in range(1, 200):
        os.link(boot / "kexec_pad0.txt", boot / f"kexec_pad{i}.txt")
    report = within(lambda: owner_verifies(boot, owner_key, counter), HANG)
    assert not report.ok and Problem.LIST_DAMAGED in problems(report)
