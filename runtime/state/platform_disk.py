"""DevicePlatform's Disk Unlock Key: the containers, the setup, and at a
verified boot the checks and the unseal (runtime/disk does the work; this
turns its outcomes into the facts the steps decide on)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from runtime import bootlog
from runtime.error_detail import plain
from runtime.state.platform import (
    DiskCheckFacts,
    DiskContainer,
    DiskKeyFacts,
    DiskSetupFacts,
    DiskUnlock,
    DiskUnlockFacts,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from runtime.config import BoardConfig
    from runtime.disk.duk_setup import DeviceCheck
    from runtime.disk.duk_unlock import DukBoot
    from runtime.disk.header_measure import HeaderMeasurement
    from runtime.disk.key_lists import KeyDevice
    from runtime.state.boot_side import BootSide
    from runtime.state.platform import BootOption
    from runtime.state.platform_crypttab import Overrides
    from runtime.tpm.connection import Tpm
    from runtime.tpm.pcr_math import PcrMismatch

_MIB = 1 << 20


@dataclass
class DiskSide:
    """What the DUK's steps leave for the next: the /boot files to sign, the
    boot's checked DUK."""

    boot_files: dict[str, bytes] | None = None
    ready: DukBoot | None = None
    #: this boot's PCR 6 measurement (None: not made by this run of the runtime)
    measured: HeaderMeasurement | None = None
    #: the devices check_disks accepted (set_up_disk_unlock takes only those)
    checked: dict[str, DeviceCheck] = field(default_factory=dict)
    #: the files of a DUK set up in this power-on (this boot's PCR 6 predates
    #: its key slot): empty when none was
    set_up_now: dict[str, bytes] = field(default_factory=dict)
    #: why containers inside LVM could not all be looked into ("" when they were)
    lvm_problem: str = ""


def measure_headers_once(side: DiskSide, tpm: Tpm | None, boot_dir: str | None) -> str:
    """PCR 6, every boot (runtime/disk/header_measure.py), once per power-on:
    a restart after the recovery shell finds it measured already. The
    system information's row ("" when there was nothing to do)."""
    from runtime.disk.header_measure import EVENT_TYPE, devices_to_measure, measure_headers

    if tpm is not None and any(m.event_type == EVENT_TYPE for m in tpm.log.entries):
        return ""
    lvm = _activate_listed_group(boot_dir)
    choice = devices_to_measure(boot_dir)
    done = measure_headers(tpm, choice.devices)
    if lvm:  # the DUK's page says it with the headers it could not measure
        done = replace(done, problems=(lvm, *done.problems))
    side.measured = done
    row = f"{len(done.devices)} measured ({choice.source})" if done.devices else "none found"
    if done.problems or choice.problem:
        row += "; " + " ".join((choice.problem, *done.problems)).strip()
    return row


def _activate_listed_group(boot_dir: str | None) -> str:
    """The volume group /boot's kexec_key_lvm.txt names, activated before its
    logical volumes' headers are measured (as Heads does); read unverified,
    as the device list is: it only says where to look, the signed header
    hashes decide. A problem in words, or ""."""
    from runtime.disk import lvm_groups
    from runtime.disk.key_lists import KEY_LVM_FILE, MAX_FILE_BYTES, KeyListError, parse_key_lvm
    from runtime.disk.luks_devices import scan
    from runtime.integrity.safe_read import UnsafeFile, read_regular

    if not boot_dir:
        return ""
    try:
        group = parse_key_lvm(read_regular(f"{boot_dir}/{KEY_LVM_FILE}", MAX_FILE_BYTES))
    except FileNotFoundError:
        return ""
    except (UnsafeFile, KeyListError) as err:
        return plain("lvm", err, f"{KEY_LVM_FILE} on /boot is unusable: {err}")
    if not lvm_groups.available():
        return f"/boot names the LVM volume group {group}, but this firmware has no LVM tools."
    return lvm_groups.activate(group, scan().lvm_fixed)


def containers(side: DiskSide) -> tuple[DiskContainer, ...]:
    """The LUKS containers, those inside LVM logical volumes on fixed disks
    too (their volume groups are activated first when this image has LVM;
    what stopped that is kept for lvm_problem)."""
    from runtime.disk import lvm_groups
    from runtime.disk.luks_devices import scan

    found = scan()
    side.lvm_problem = ""
    if found.lvm_members:
        named = "LVM physical volumes: " + ", ".join(found.lvm_members) + "."
        if not lvm_groups.available():
            side.lvm_problem = (
                f"{named} An encrypted volume inside LVM cannot be offered: this firmware has "
                "no LVM tools to open the volume group."
            )
        else:
            problem = lvm_groups.activate(None, found.lvm_fixed)
            found = scan()
            if problem:
                side.lvm_problem = f"{named} {problem} What it holds may be missing here."
    return tuple(
        DiskContainer(d.path, d.version, d.size // _MIB, d.label, d.volume_group)
        for d in found.found
    )


def listed(boot: BootSide) -> bool:
    from runtime.disk.key_lists import KEY_DEVICES_FILE
    from runtime.state.platform_boot import trusted_state

    return KEY_DEVICES_FILE in trusted_state(boot)


def signed_files(
    boot: BootSide,
    default: BootOption | None,
    new_files: dict[str, bytes] | None,
    progress: Callable[[str], None],
) -> Overrides:
    """The DUK's files a signing adds or drops: ``new_files`` the setup just
    made, and the crypttab overrides when a DUK is set up (its files signed
    already, or new) and a default entry is being saved or was saved. A new
    setup drops what an earlier one signed that it does not write again."""
    from runtime.disk.key_lists import (
        CRYPTTAB_OVERRIDES_FILE,
        KEY_DEVICES_FILE,
        KEY_LVM_FILE,
        KeyListError,
        parse_key_devices,
    )
    from runtime.state.platform_boot import signed_saved_default, trusted_state, view
    from runtime.state.platform_crypttab import Overrides, overrides_for

    new = dict(new_files or {})
    stale = (CRYPTTAB_OVERRIDES_FILE, KEY_LVM_FILE) if new else ()
    unchanged = Overrides(new, tuple(n for n in stale if n not in new))
    listed = (new_files or trusted_state(boot)).get(KEY_DEVICES_FILE)
    if listed is None:
        return unchanged
    # the signed default's line, read as signed: whether it may boot with this
    # TPM's storage key is the boot's question, not the initrd's
    saved = default or signed_saved_default(boot)
    if saved is None:
        return unchanged  # no default to read: the next saving of one makes them
    try:
        devices = parse_key_devices(listed)
    except KeyListError:
        return unchanged
    found = overrides_for(view(boot), saved.line, devices, progress)
    drop = tuple(dict.fromkeys((*unchanged.drop, *found.drop)))
    extra = {**unchanged.extra, **found.extra}
    return Overrides(extra, tuple(n for n in drop if n not in extra), found.note)


def check(side: DiskSide, devices: tuple[str, ...], recovery: bytearray) -> DiskCheckFacts:
    from runtime.disk.duk_setup import SetupRefused, check_devices

    side.checked = {}
    try:
        checks = check_devices(list(devices), recovery)
    except SetupRefused as err:
        wrong = "does not open" in str(err)
        return DiskCheckFacts(problem=plain("duk-check", err, str(err)), wrong_passphrase=wrong)
    side.checked = {c.device: c for c in checks}
    in_use = tuple(f"{c.device} key slot {c.duk_slot}" for c in checks if c.duk_slot_used)
    return DiskCheckFacts(slots_in_use=in_use)


def _module_digests() -> tuple[bytes, ...]:
    """What the start extends the modules PCR with, file by file (a module
    loaded later, for a USB stick, is not part of a normal boot)."""
    from runtime.disk.duk_policy import BANK
    from runtime.measure.modules import module_list

    digests = []
    for path in module_list():
        try:
            with open(path, "rb") as f:
                digests.append(BANK.hash(f.read()))
        except OSError:
            continue  # the start skipped it too: it could not read it
    return tuple(digests)


def set_up(
    side: DiskSide,
    tpm: Tpm | None,
    board: BoardConfig | None,
    firmware: dict[int, bytes] | None,
    secrets: tuple[bytearray, bytearray, bytearray],
    devices: tuple[str, ...],
    wipe_slots: bool,
    progress: Callable[[str], None],
) -> DiskSetupFacts:
    from runtime.disk.duk_policy import PcrFacts, duk_pcrs
    from runtime.disk.duk_setup import SetupRefused, set_up
    from runtime.integrity.boot_lists import PRIMARY_HANDLE_HASH_FILE
    from runtime.integrity.primary_handle import format_primary_hash, primary_handle_bytes
    from runtime.tpm.errors import TpmError, WrongPassphrase
    from runtime.tpm.pcrs import read_pcrs

    recovery, duk_passphrase, owner = secrets
    if tpm is None or board is None:
        return DiskSetupFacts(problem="No TPM: the Disk Unlock Key cannot be sealed.")
    checks = [side.checked[d] for d in devices if d in side.checked]
    if not devices or len(checks) != len(devices):
        return DiskSetupFacts(problem="The disks were not checked first: nothing was changed.")
    try:
        pcrs = duk_pcrs(board.seal_pcrs, board.modules_pcr)
        facts = PcrFacts(
            current=read_pcrs(tpm, pcrs),
            firmware=firmware,
            runtime_extended=frozenset(m.pcr for m in tpm.log.entries),
            module_digests=_module_digests(),
        )
        # the key is used only with the storage key it was set up with (its
        # unseal is salted by it): /boot must name it even with no default saved
        bound = {PRIMARY_HANDLE_HASH_FILE: format_primary_hash(primary_handle_bytes(tpm))}
        result = set_up(
            tpm,
            checks,
            recovery,
            duk_passphrase,
            bytes(owner),
            facts,
            board.seal_pcrs,
            board.modules_pcr,
            progress,
            wipe_used_slots=wipe_slots,
        )
    except WrongPassphrase as err:
        words = plain("duk-setup", err, err.plain())
        return DiskSetupFacts(problem=words, wrong_owner_passphrase=True)
    except (SetupRefused, ValueError) as err:  # ValueError: a file it could not write
        return DiskSetupFacts(problem=plain("duk-setup", err, str(err)))
    except TpmError as err:
        return DiskSetupFacts(
            problem=plain("duk-setup", err, "The Disk Unlock Key was not sealed. " + err.plain())
        )
    side.boot_files = {**result.boot_files, **bound}
    side.set_up_now = dict(side.boot_files)
    bootlog.stage("duk-set-up", devices=len(devices))
    return DiskSetupFacts(pcrs=result.pcrs)


def unlock(side: DiskSide, tpm: Tpm | None, boot: BootSide) -> DiskUnlockFacts:
    """Whether this verified boot can use the DUK: only from the files the
    owner's signature covers, with the TPM's storage key the one /boot was
    saved with, and PCR 6 measured by this run; a changed header is REFUSED
    (the key stays sealed, the boot may go on without it)."""
    from runtime.disk import lvm_groups
    from runtime.disk.duk_store import changed_pcrs
    from runtime.disk.duk_unlock import HeadersChanged, KeyGone, NotSetUp, prepare
    from runtime.integrity.boot_entry_checks import primary_problem
    from runtime.state.platform_boot import trusted_state
    from runtime.tpm.errors import TpmError

    side.ready = None
    if tpm is None:
        return DiskUnlockFacts(DiskUnlock.NONE)
    if side.set_up_now and any(
        trusted_state(boot).get(name) != data for name, data in side.set_up_now.items()
    ):
        return DiskUnlockFacts(
            DiskUnlock.UNAVAILABLE,
            "The Disk Unlock Key set up during this power-on was not finished: /boot was "
            "not signed with it. Set it up again (TPM/TOTP/HOTP options).",
        )
    if side.set_up_now:
        return DiskUnlockFacts(
            DiskUnlock.LATER,
            "The Disk Unlock Key set up during this power-on is used from the next one: "
            "power off and on again to use it.",
        )
    signed = trusted_state(boot)
    try:
        duk = prepare(tpm, signed, side.measured, lvm_tools=lvm_groups.available())
        # the key is unsealed through a session salted by the storage key:
        # it must be the one /boot was saved with, not a bus interposer's
        problem = primary_problem(signed, tpm) or _look_alikes(duk.devices)
        if problem:
            return DiskUnlockFacts(DiskUnlock.UNAVAILABLE, problem)
        # known before the passphrase is asked: nobody types it for nothing
        changed = changed_pcrs(tpm, duk.sealed)
        if changed:
            return DiskUnlockFacts(DiskUnlock.UNAVAILABLE, _sealed_words(changed), True)
        side.ready = duk
    except KeyGone as err:
        return DiskUnlockFacts(DiskUnlock.UNAVAILABLE, plain("duk-gone", err, str(err)), True)
    except NotSetUp:
        return DiskUnlockFacts(DiskUnlock.NONE)
    except HeadersChanged as err:
        return DiskUnlockFacts(DiskUnlock.REFUSED, plain("duk-headers", err, str(err)))
    except (ValueError, TpmError) as err:  # a list, a crypttab or a TPM blob that is unusable
        return DiskUnlockFacts(
            DiskUnlock.UNAVAILABLE,
            plain("duk-files", err, f"The Disk Unlock Key cannot be used: {err}"),
        )
    return DiskUnlockFacts(DiskUnlock.READY)


def _look_alikes(devices: Sequence[KeyDevice]) -> str:
    """What the OS could open in place of the key's disks: it finds them by
    LUKS UUID, and a copied header (on a stick, say) has the same UUID. The
    firmware measured the listed devices only. "" when nothing is in the way."""
    from runtime.disk.luks_devices import scan

    found = scan()
    for device in devices:
        others = sorted(
            f.path
            for f in found.found
            if f.uuid.lower() == device.luks_uuid.lower() and f.path != device.device
        )
        if others:
            return (
                f"The encrypted disk {device.device} has the same UUID as {', '.join(others)}: "
                "the OS, which finds its disks by UUID, could open that one with the key. Remove "
                "it (a USB stick?) and power on again."
            )
    on_sticks = sorted(set(found.lvm_members) - set(found.lvm_fixed))
    if on_sticks:
        return (
            f"LVM volumes on a removable disk are attached ({', '.join(on_sticks)}): what they "
            "hold is not checked, and the OS could open a disk there in place of yours. Remove "
            "them and power on again."
        )
    return ""


def _sealed_words(mismatches: Sequence[PcrMismatch]) -> str:
    changed = ", ".join(str(m.pcr) for m in mismatches) or "?"
    return (
        f"The Disk Unlock Key stays sealed: PCR {changed} changed since it was set up "
        "(the firmware, this runtime, its settings, the drivers or a disk header)."
    )


def key(side: DiskSide, tpm: Tpm | None, passphrase: bytearray) -> DiskKeyFacts:
    from runtime.disk.duk_unlock import key_cpio
    from runtime.tpm.errors import PcrsChanged, TpmError, WrongPassphrase

    if side.ready is None or tpm is None:
        return DiskKeyFacts(problem="The Disk Unlock Key was not checked for this boot.")
    try:
        cpio = key_cpio(tpm, side.ready, passphrase)
    except WrongPassphrase as err:
        return DiskKeyFacts(problem=plain("duk-unseal", err, err.plain()), wrong_passphrase=True)
    except PcrsChanged as err:
        return DiskKeyFacts(problem=plain("duk-unseal", err, _sealed_words(err.mismatches)))
    except (TpmError, ValueError) as err:
        return DiskKeyFacts(problem=plain("duk-unseal", err, f"The key did not unseal: {err}"))
    bootlog.stage("duk-unsealed")
    return DiskKeyFacts(key=cpio)
