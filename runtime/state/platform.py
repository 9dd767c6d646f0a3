"""Everything the boot state machine asks of the machine it runs on.

The steps (runtime.state.steps) decide; a `Platform` does: the TPM, disks,
the clock, power. runtime.state.device_platform is the real one; unit tests
give a fake, so every decision is tested without devices. Each method returns
facts or a plain-words problem and never raises for a device's failure.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from runtime.integrity.boot_report import ProblemKind, kinds_of

# Facts made by the domain modules that find them, named here with the rest.
from runtime.integrity.keyring import KeyringFacts as KeyringFacts
from runtime.secrets.enrol import EnrolFacts as EnrolFacts
from runtime.secrets.hotp import HotpCheck as HotpCheck
from runtime.secrets.hotp_check import HotpFacts as HotpFacts
from runtime.secrets.totp import TotpFailure as TotpFailure


@dataclass(frozen=True)
class StartFacts:
    board_name: str
    brand: str
    fatal: str = ""  # the runtime cannot work (no board file): the reason
    tpm_problem: str = ""  # empty: a TPM answered
    config_problems: tuple[str, ...] = ()
    auto_boot_timeout: int | None = None
    restricted: bool = False
    hotp_configured: bool = False
    clock_problem: str = ""
    #: CONFIG_AUTO_BOOT_TOTP_ONLY: the countdown may follow a TOTP code alone
    auto_boot_totp_only: bool = False
    #: CONFIG_IGNORE_ROLLBACK: /boot's rollback counter is not checked
    rollback_check_off: bool = False
    #: CONFIG_TOTP_SKIP_QRCODE: a new secret is shown as text only
    skip_qr_code: bool = False
    #: CONFIG_BASIC (and restricted boot off): no attestation, /boot not verified
    basic: bool = False
    #: CONFIG_HAVE_GPG_KEY_BACKUP=y and no owner key: the recovery gate refuses
    recovery_needs_missing_key: bool = False
    #: CONFIG_ROOT_DEV is set: the root file system's hashes can be made and checked
    root_hashing: bool = False
    #: CONFIG_ROOT_CHECK_AT_BOOT: checked once /boot verified, before the first menu
    root_check_at_boot: bool = False
    #: CONFIG_TPM_DISK_UNLOCK_KEY=y and CONFIG_TPM_NO_LUKS_DISK_UNLOCK not y: the
    #: Disk Unlock Key is offered and, once set up, used at a verified boot
    disk_unlock: bool = True


@dataclass(frozen=True)
class MeasureFacts:
    problems: tuple[str, ...] = ()  # modules that failed to load, an unreadable event log
    measurements_match: bool = True  # the event log and our extends replay to the PCRs
    summary: str = ""


@dataclass(frozen=True)
class BootFacts:
    device: str = ""  # e.g. /dev/vda1; empty when none was found
    mountpoint: str = ""
    problem: str = ""  # why none was found
    encrypted_seen: bool = False  # a LUKS partition was seen (a hint for the message)
    disk_seen: bool = False  # some disk or partition was there to probe


@dataclass(frozen=True)
class TotpFacts:
    code: str | None
    step: int = 0  # the 30-second window the code belongs to
    failure: TotpFailure = TotpFailure.NONE
    message: str = ""
    changed_pcrs: tuple[int, ...] = ()


@dataclass(frozen=True)
class ResetFacts:
    problem: str = ""  # empty: the TPM was cleared and owned
    #: Clearing needs the lockout passphrase set at the last reset (OVMF boards).
    needs_lockout_passphrase: bool = False
    #: the problem came after the clear: the old secrets are gone all the same
    cleared: bool = False


@dataclass(frozen=True)
class RootFacts:
    """The root file system against its signed hash list (CONFIG_ROOT_*)."""

    problem: str = ""  # it could not be done: why
    checked: int = 0  # files hashed
    changed: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    added: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not (self.problem or self.changed or self.missing or self.added)


@dataclass(frozen=True)
class LockoutFacts:
    """The TPM's dictionary-attack state: after too many wrong passphrases it
    refuses every passphrase check of keys the lockout covers."""

    locked_out: bool = False
    failures: int = 0
    max_tries: int = 0
    recovery_seconds: int = 0  # one failure is forgiven this often while powered on
    #: after a wrong lockout passphrase, how long the TPM refuses the next (0: until restart)
    lockout_recovery_seconds: int = 0
    #: the lockout passphrase is set (a TPM never owned has none: nothing is asked)
    passphrase_set: bool = True
    problem: str = ""  # the state could not be read: why, in plain words


class LockoutOutcome(enum.StrEnum):
    CLEARED = "cleared"
    WRONG_PASSPHRASE = "wrong-passphrase"  # noqa: S105 (an outcome, not a password)
    BLOCKED = "blocked"  # a wrong lockout passphrase earlier: its wait is not over
    FAILED = "failed"


@dataclass(frozen=True)
class ClearLockoutFacts:
    outcome: LockoutOutcome
    problem: str = ""  # with FAILED: what went wrong, in plain words
    #: how long the TPM now refuses the lockout passphrase (0: until restart)
    lockout_recovery_seconds: int = 0


@dataclass(frozen=True)
class BootCheck:
    """Is /boot what the owner signed (runtime.integrity.verify_boot)?"""

    ok: bool
    findings: tuple[str, ...] = ()  # one plain-words line per problem
    problems: frozenset[str] = frozenset()  # boot_report.Problem values
    #: every path modified, added or removed, and every unexpected name, as shown
    changed: tuple[str, ...] = ()
    counter: int | None = None  # the TPM rollback counter now
    signer: str = ""
    #: what an OS update said it changed (kexec_package_trigger_*.txt)
    update_notes: tuple[str, ...] = ()
    #: an interrupted signing was completed or dropped before the check
    settled: str = ""
    unsigned: bool = False  # nothing was ever signed on this /boot
    #: things to know that are no failure (a journal not yet applied)
    notes: tuple[str, ...] = ()

    @property
    def kinds(self) -> frozenset[ProblemKind]:
        """What the problems mean: the decisions are made on these, never on
        a problem's words."""
        return kinds_of(self.problems)


@dataclass(frozen=True)
class BootOption:
    """One entry of the OS boot menu, in Heads' listing (number N = line N)."""

    number: int
    line: str  # Heads' entry line: what kexec_default.N.txt holds
    name: str
    kernel: str
    cmdline: str = ""


@dataclass(frozen=True)
class OptionsFacts:
    options: tuple[BootOption, ...] = ()
    problem: str = ""  # why there are none
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class DefaultFacts:
    option: BootOption | None = None  # the verified default, ready to boot
    problem: str = ""  # why it may not boot
    none_saved: bool = False  # no default entry was ever saved


@dataclass(frozen=True)
class SignFacts:
    problem: str = ""  # empty: signed (and verified)
    check: BootCheck | None = None  # the verification of the new state
    #: what the owner should know about what was signed (plain words)
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class DiskContainer:
    """An encrypted (LUKS) container the Disk Unlock Key can open."""

    device: str
    version: int
    size_mib: int
    label: str = ""
    #: the LVM volume group of the logical volume it is in ("" for none)
    volume_group: str = ""


@dataclass(frozen=True)
class DiskCheckFacts:
    """The chosen containers against the recovery passphrase. ``problem``:
    refused, nothing changed (its words name the device); ``slots_in_use``:
    the DUK's key slot holds a key on these (wiped only if the user says so)."""

    problem: str = ""
    wrong_passphrase: bool = False
    slots_in_use: tuple[str, ...] = ()


@dataclass(frozen=True)
class DiskSetupFacts:
    """``problem`` empty: the DUK is in the disks' slots and sealed in the TPM;
    the /boot files naming it wait for the next signing (sign_boot
    disk_unlock=True)."""

    problem: str = ""
    wrong_owner_passphrase: bool = False
    pcrs: tuple[int, ...] = ()


class DiskUnlock(enum.Enum):
    """At a verified boot, what the Disk Unlock Key can do."""

    NONE = "none"  # not set up: the OS asks for its passphrase, as without a DUK
    READY = "ready"  # set up and checked: ask its passphrase
    REFUSED = "refused"  # a LUKS header differs from the one signed: stop
    UNAVAILABLE = "unavailable"  # set up, but unusable (the reason): boot without it
    LATER = "later"  # set up in this power-on: used from the next one


@dataclass(frozen=True)
class DiskUnlockFacts:
    state: DiskUnlock
    problem: str = ""
    #: setting the key up again is the fix (the firmware or settings changed,
    #: or the TPM was reset): offered beside booting without it
    set_up_again: bool = False


@dataclass(frozen=True)
class DiskKeyFacts:
    """The key's cpio for the OS (the caller wipes it), or why not."""

    key: bytearray | None = field(default=None, repr=False)
    problem: str = ""
    wrong_passphrase: bool = False


#: asks for a PIN or passphrase: (attempt number, why the last was refused)
AskSecret = Callable[[int, str], bytearray | None]


class Platform(Protocol):
    def start(self) -> StartFacts: ...

    def measure(self, progress: Callable[[str], None]) -> MeasureFacts: ...

    def find_boot(self) -> BootFacts: ...

    def rollback_preflight(self) -> str:
        """Empty when the TPM's rollback state agrees with /boot; else the reason."""
        ...

    def keyring(self) -> KeyringFacts: ...

    def early_totp(self) -> TotpFacts | None:
        """The TOTP code before the drivers load, when no sealed PCR is still
        to change; None when it did not unseal (the TOTP state says why later)."""
        ...

    def unseal_totp(self) -> TotpFacts: ...

    def verify_hotp(self) -> HotpFacts: ...

    def tpm_owned(self) -> bool: ...

    def reset_tpm(
        self, owner_passphrase: bytearray, current_lockout: bytearray | None
    ) -> ResetFacts:
        """Clear the TPM and take ownership with ``owner_passphrase``."""
        ...

    def generate_secret(
        self, owner_passphrase: bytearray, hotp_admin_pin: bytearray | None
    ) -> EnrolFacts: ...

    def verify_boot(self, progress: Callable[[str], None]) -> BootCheck:
        """Check /boot against the owner's signature and the rollback counter."""
        ...

    def boot_options(self) -> OptionsFacts:
        """The OS boot menu, in Heads' listing order."""
        ...

    def saved_default(self, check: BootCheck) -> DefaultFacts:
        """The saved default entry, if it still names the same entry and its
        files are the signed ones."""
        ...

    def sign_boot(
        self,
        ask_pin: AskSecret,
        ask_owner: AskSecret,
        default: BootOption | None,
        progress: Callable[[str], None],
        root_list: bool = False,
        disk_unlock: bool = False,
    ) -> SignFacts:
        """Re-hash /boot, bump the rollback counter, sign (saving ``default``
        when given, the root hash list create_root_hashes just made when
        ``root_list``, and the Disk Unlock Key's files set_up_disk_unlock just
        made when ``disk_unlock``); ask_owner is used only when a new counter
        is needed."""
        ...

    def disk_containers(self) -> tuple[DiskContainer, ...]:
        """The LUKS containers on this machine's disks."""
        ...

    def disk_lvm_problem(self) -> str:
        """Why containers inside LVM could not all be looked into by the last
        disk_containers ("" when they were, or there is no LVM)."""
        ...

    def disk_unlock_listed(self) -> bool:
        """Whether the signed /boot (as last checked) names a DUK's disks."""
        ...

    def check_disks(self, devices: tuple[str, ...], recovery: bytearray) -> DiskCheckFacts:
        """Whether ``recovery`` opens every one, and which DUK slots are in use."""
        ...

    def set_up_disk_unlock(
        self,
        devices: tuple[str, ...],
        recovery: bytearray,
        duk_passphrase: bytearray,
        owner_passphrase: bytearray,
        wipe_slots: bool,
        progress: Callable[[str], None],
    ) -> DiskSetupFacts:
        """A new DUK in every device's DUK slot, sealed to the next normal boot."""
        ...

    def disk_unlock(self) -> DiskUnlockFacts:
        """At a verified boot (after verify_boot): whether a DUK can be used."""
        ...

    def disk_key(self, passphrase: bytearray) -> DiskKeyFacts:
        """Unseal the DUK into the cpio for the OS's initrd (after disk_unlock READY)."""
        ...

    def create_root_hashes(self, progress: Callable[[str], None]) -> RootFacts:
        """Hash the root file system into /boot's list (to be signed next)."""
        ...

    def check_root_hashes(self, progress: Callable[[str], None]) -> RootFacts:
        """The root file system against the list the owner signed."""
        ...

    def boot(
        self,
        option: BootOption,
        unsafe: bool,
        progress: Callable[[str], None],
        disk_key: bytearray | None = None,
    ) -> str | None:
        """Load the entry with kexec and prepare the hand-over (PCR 4, TPM
        locked, secrets wiped); None then: the runtime exits and /init starts
        the kernel, so no process that held a secret outlives the hand-over.
        Else why it did not boot. unsafe: PCR 4 is marked so sealed secrets
        stay locked. ``disk_key``: the DUK's cpio, appended to the initrd
        (the caller wipes it)."""
        ...

    def system_info(self) -> list[tuple[str, str]]: ...

    def integrity_lines(self) -> list[str]: ...

    def configuration_lines(self) -> list[str]: ...

    def keyring_lines(self) -> list[str]: ...

    def set_time(self, text: str) -> str:
        """Set the clock from the user's text; empty on success, else the reason."""
        ...

    def now_text(self) -> str:
        """The date and time for the main menu."""
        ...

    def tpm_lockout(self) -> LockoutFacts:
        """The dictionary-attack state (never asks for anything)."""
        ...

    def clear_lockout(self, lockout_passphrase: bytearray | None) -> ClearLockoutFacts:
        """End the dictionary-attack lockout with the lockout passphrase (None
        when none is set); the TPM's secrets stay. The caller wipes it."""
        ...

    def reset_needs_current_passphrase(self) -> bool:
        """Whether resetting the TPM needs the passphrase set at its last reset
        (the firmware keeps the platform hierarchy closed, as OVMF does)."""
        ...

    def details(self) -> tuple[str, ...]:
        """The technical lines behind the failures since forget_details(),
        oldest first (the screens say them in plain words; this is for a bug
        report)."""
        ...

    def forget_details(self) -> None:
        """The user moved on: later failures have details of their own."""
        ...

    def before_power_change(self) -> None:
        """The machine powers off, reboots or hands over to the loaded kernel
        next: an orderly TPM shutdown, the TPM's last command (nothing with
        no TPM). Never raises; no TPM is used after it."""
        ...
