"""A fake `Platform` for the state machine's unit tests: every fact is a field
the test sets, every action is recorded, nothing touches a device."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from runtime.state.platform import (
    AskSecret,
    BootCheck,
    BootFacts,
    BootOption,
    ClearLockoutFacts,
    DefaultFacts,
    DiskCheckFacts,
    DiskContainer,
    DiskKeyFacts,
    DiskSetupFacts,
    DiskUnlock,
    DiskUnlockFacts,
    EnrolFacts,
    HotpCheck,
    HotpFacts,
    KeyringFacts,
    LockoutFacts,
    LockoutOutcome,
    MeasureFacts,
    OptionsFacts,
    ResetFacts,
    RootFacts,
    SignFacts,
    StartFacts,
    TotpFacts,
    TotpFailure,
)

if TYPE_CHECKING:
    from runtime.state.machine import State
    from tests.fakes_ui import ScriptedUi

GOOD_TOTP = TotpFacts("123456", step=0, message="TOTP secret unsealed")
DEBIAN = BootOption(
    1,
    "Debian|elf|kernel /vmlinuz-6.1|initrd /initrd.img-6.1|append ro",
    "Debian",
    "/vmlinuz-6.1",
    "ro",
)
RESCUE = BootOption(
    2, "Rescue|elf|kernel /vmlinuz-6.1|append single", "Rescue", "/vmlinuz-6.1", "single"
)
GOOD_CHECK = BootCheck(True, counter=7, signer="ABCD")


def refused_check(
    *findings: str, problems: frozenset[str] = frozenset({"files modified"})
) -> BootCheck:
    return BootCheck(False, findings, problems)


SECRET = bytearray(b"\x01" * 20)


@dataclass
class FakePlatform:
    start_facts: StartFacts = field(default_factory=lambda: StartFacts("Test board", "Brand"))
    measure_facts: MeasureFacts = field(default_factory=MeasureFacts)
    boot_facts: list[BootFacts] = field(default_factory=lambda: [BootFacts("/dev/vda1", "/boot")])
    preflight: list[str] = field(default_factory=lambda: [""])
    keyring_facts: KeyringFacts = field(default_factory=lambda: KeyringFacts(("ABCD",)))
    totp_results: list[TotpFacts] = field(default_factory=lambda: [GOOD_TOTP])
    #: what early_totp gives (None: not unsealed before the drivers)
    early_totp_result: TotpFacts | None = None
    hotp_results: list[HotpFacts] = field(
        default_factory=lambda: [HotpFacts(HotpCheck.SUCCESS, "ok")]
    )
    owned: bool = True
    reset_results: list[ResetFacts] = field(default_factory=lambda: [ResetFacts()])
    enrol_results: list[EnrolFacts] = field(
        default_factory=lambda: [EnrolFacts(bytearray(SECRET), sealed_pcrs=(0, 4, 9))]
    )
    boot_refusal: str = "nothing verified"
    #: verify_boot's answers, one per call (the last repeats); None: refused
    #: with boot_refusal as the finding
    checks: list[BootCheck] | None = None
    options_facts: OptionsFacts = field(default_factory=lambda: OptionsFacts((DEBIAN, RESCUE)))
    default_facts: DefaultFacts = field(default_factory=lambda: DefaultFacts(option=DEBIAN))
    sign_results: list[SignFacts] = field(
        default_factory=lambda: [SignFacts(check=BootCheck(True, counter=8))]
    )
    #: None: the kernel was loaded and the runtime hands over
    boot_results: list[str | None] = field(default_factory=lambda: ["kexec failed: test"])
    #: what the PIN and owner prompts gave sign_boot (copied: callers wipe)
    sign_secrets: list[bytes] = field(default_factory=list)
    time_problems: list[str] = field(default_factory=lambda: [""])
    calls: list[str] = field(default_factory=list)
    #: Passphrases as they were when the platform got them (copied: callers wipe).
    passphrases: list[bytes] = field(default_factory=list)
    given_secrets: list[bytearray] = field(default_factory=list)
    #: the firmware keeps the platform hierarchy closed: a reset asks the current passphrase
    reset_needs_current: bool = False
    #: what the details view shows (empty: no details choice is offered)
    detail_lines: tuple[str, ...] = ()
    #: the dictionary-attack state; a clear that succeeds ends the lockout in it
    lockout: LockoutFacts = field(default_factory=LockoutFacts)
    clear_results: list[ClearLockoutFacts] = field(
        default_factory=lambda: [ClearLockoutFacts(LockoutOutcome.CLEARED)]
    )
    #: the lockout passphrases clear_lockout got, as given (to check they are wiped)
    lockout_buffers: list[bytearray] = field(default_factory=list)
    root_create_results: list[RootFacts] = field(default_factory=lambda: [RootFacts(checked=3)])
    root_check_results: list[RootFacts] = field(default_factory=lambda: [RootFacts(checked=3)])
    #: the Disk Unlock Key: containers, check and setup answers, the boot's state
    disk_containers_found: tuple[DiskContainer, ...] = (
        DiskContainer("/dev/vda3", 2, 24, "root"),
        DiskContainer("/dev/vda4", 2, 16, "data"),
    )
    disk_unlock_is_listed: bool = False
    lvm_problem_found: str = ""
    disk_check_results: list[DiskCheckFacts] = field(default_factory=lambda: [DiskCheckFacts()])
    disk_setup_results: list[DiskSetupFacts] = field(
        default_factory=lambda: [DiskSetupFacts(pcrs=(0, 1, 2, 3, 4, 5, 6, 7, 9))]
    )
    disk_unlock_facts: DiskUnlockFacts = field(
        default_factory=lambda: DiskUnlockFacts(DiskUnlock.NONE)
    )
    disk_key_results: list[DiskKeyFacts] = field(
        default_factory=lambda: [DiskKeyFacts(key=bytearray(b"070701 key cpio"))]
    )
    #: the disk keys boot() was given, as given (to check they are wiped after)
    boot_disk_keys: list[bytearray | None] = field(default_factory=list)

    @staticmethod
    def _next(items: list, name: str):  # type: ignore[no-untyped-def,type-arg]
        assert items, f"the test gave no more results for {name}"
        return items.pop(0) if len(items) > 1 else items[0]

    def start(self) -> StartFacts:
        self.calls.append("start")
        return self.start_facts

    def measure(self, progress: Callable[[str], None]) -> MeasureFacts:
        self.calls.append("measure")
        progress("measuring")
        return self.measure_facts

    def find_boot(self) -> BootFacts:
        self.calls.append("find_boot")
        return self._next(self.boot_facts, "find_boot")  # type: ignore[no-any-return]

    def rollback_preflight(self) -> str:
        self.calls.append("rollback_preflight")
        return self._next(self.preflight, "preflight")  # type: ignore[no-any-return]

    def keyring(self) -> KeyringFacts:
        self.calls.append("keyring")
        return self.keyring_facts

    def early_totp(self) -> TotpFacts | None:
        self.calls.append("early_totp")
        result = self.early_totp_result
        if result is not None and result.code is not None and result.step == 0:
            result = dataclasses.replace(result, step=int(time.time()) // 30)
        return result

    def unseal_totp(self) -> TotpFacts:
        self.calls.append("unseal_totp")
        result: TotpFacts = self._next(self.totp_results, "unseal_totp")
        if result.code is not None and result.step == 0:  # "now", as the real one says
            result = dataclasses.replace(result, step=int(time.time()) // 30)
        return result

    def verify_hotp(self) -> HotpFacts:
        self.calls.append("verify_hotp")
        return self._next(self.hotp_results, "verify_hotp")  # type: ignore[no-any-return]

    def tpm_owned(self) -> bool:
        return self.owned

    def reset_tpm(
        self, owner_passphrase: bytearray, current_lockout: bytearray | None
    ) -> ResetFacts:
        self.calls.append("reset_tpm")
        self.passphrases.append(bytes(owner_passphrase))
        if current_lockout is not None:
            self.passphrases.append(bytes(current_lockout))
        result: ResetFacts = self._next(self.reset_results, "reset_tpm")
        if not result.problem and not result.needs_lockout_passphrase:
            self.owned = True
        return result

    def generate_secret(
        self, owner_passphrase: bytearray, hotp_admin_pin: bytearray | None
    ) -> EnrolFacts:
        self.calls.append("generate_secret")
        self.passphrases.append(bytes(owner_passphrase))
        if hotp_admin_pin is not None:
            self.passphrases.append(bytes(hotp_admin_pin))
        result: EnrolFacts = self._next(self.enrol_results, "generate_secret")
        if result.secret is not None:
            self.given_secrets.append(result.secret)
        return result

    def verify_boot(self, progress: Callable[[str], None]) -> BootCheck:
        self.calls.append("verify_boot")
        progress("checking")
        if self.checks is None:
            return refused_check(self.boot_refusal)
        return self._next(self.checks, "verify_boot")  # type: ignore[no-any-return]

    def boot_options(self) -> OptionsFacts:
        self.calls.append("boot_options")
        return self.options_facts

    def saved_default(self, check: BootCheck) -> DefaultFacts:
        self.calls.append("saved_default")
        return self.default_facts

    def sign_boot(
        self,
        ask_pin: AskSecret,
        ask_owner: AskSecret,
        default: BootOption | None,
        progress: Callable[[str], None],
        root_list: bool = False,
        disk_unlock: bool = False,
    ) -> SignFacts:
        self.calls.append(
            f"sign_boot default={default.name if default else None}"
            + (" root_list" if root_list else "")
            + (" disk_unlock" if disk_unlock else "")
        )
        pin = ask_pin(1, "")
        if pin is not None:
            self.sign_secrets.append(bytes(pin))
        return self._next(self.sign_results, "sign_boot")  # type: ignore[no-any-return]

    def create_root_hashes(self, progress: Callable[[str], None]) -> RootFacts:
        self.calls.append("create_root_hashes")
        return self._next(self.root_create_results, "create_root_hashes")  # type: ignore[no-any-return]

    def check_root_hashes(self, progress: Callable[[str], None]) -> RootFacts:
        self.calls.append("check_root_hashes")
        return self._next(self.root_check_results, "check_root_hashes")  # type: ignore[no-any-return]

    def boot(
        self,
        option: BootOption,
        unsafe: bool,
        progress: Callable[[str], None],
        disk_key: bytearray | None = None,
    ) -> str | None:
        self.calls.append(f"boot {option.name} unsafe={unsafe}" + (" disk_key" if disk_key else ""))
        self.boot_disk_keys.append(disk_key)
        return self._next(self.boot_results, "boot")  # type: ignore[no-any-return]

    def disk_containers(self) -> tuple[DiskContainer, ...]:
        self.calls.append("disk_containers")
        return self.disk_containers_found

    def disk_lvm_problem(self) -> str:
        self.calls.append("disk_lvm_problem")
        return self.lvm_problem_found

    def disk_unlock_listed(self) -> bool:
        self.calls.append("disk_unlock_listed")
        return self.disk_unlock_is_listed

    def check_disks(self, devices: tuple[str, ...], recovery: bytearray) -> DiskCheckFacts:
        self.calls.append(f"check_disks {' '.join(devices)}")
        self.passphrases.append(bytes(recovery))
        return self._next(self.disk_check_results, "check_disks")  # type: ignore[no-any-return]

    def set_up_disk_unlock(
        self,
        devices: tuple[str, ...],
        recovery: bytearray,
        duk_passphrase: bytearray,
        owner_passphrase: bytearray,
        wipe_slots: bool,
        progress: Callable[[str], None],
    ) -> DiskSetupFacts:
        self.calls.append(f"set_up_disk_unlock {' '.join(devices)} wipe={wipe_slots}")
        self.passphrases += [bytes(recovery), bytes(duk_passphrase), bytes(owner_passphrase)]
        return self._next(self.disk_setup_results, "set_up_disk_unlock")  # type: ignore[no-any-return]

    def disk_unlock(self) -> DiskUnlockFacts:
        self.calls.append("disk_unlock")
        return self.disk_unlock_facts

    def disk_key(self, passphrase: bytearray) -> DiskKeyFacts:
        self.calls.append("disk_key")
        self.passphrases.append(bytes(passphrase))
        result: DiskKeyFacts = self._next(self.disk_key_results, "disk_key")
        if result.key is not None:
            result = DiskKeyFacts(key=bytearray(result.key))  # each call its own buffer
        return result

    def system_info(self) -> list[tuple[str, str]]:
        return [("Board", "Test board")]

    def integrity_lines(self) -> list[str]:
        return ["All PCRs match."]

    def configuration_lines(self) -> list[str]:
        return ["CONFIG_X = y"]

    def keyring_lines(self) -> list[str]:
        return ["Owner key fingerprint: ABCD"]

    def set_time(self, text: str) -> str:
        self.calls.append(f"set_time {text}")
        return self._next(self.time_problems, "set_time")  # type: ignore[no-any-return]

    def now_text(self) -> str:
        return "2026-11-25 12:00:00 UTC"

    def reset_needs_current_passphrase(self) -> bool:
        return self.reset_needs_current

    def tpm_lockout(self) -> LockoutFacts:
        return self.lockout

    def clear_lockout(self, lockout_passphrase: bytearray | None) -> ClearLockoutFacts:
        self.calls.append("clear_lockout")
        if lockout_passphrase is not None:
            self.passphrases.append(bytes(lockout_passphrase))
            self.lockout_buffers.append(lockout_passphrase)  # the caller must wipe it
        result: ClearLockoutFacts = self._next(self.clear_results, "clear_lockout")
        if result.outcome is LockoutOutcome.CLEARED:
            self.lockout = dataclasses.replace(self.lockout, locked_out=False, failures=0)
        return result

    def details(self) -> tuple[str, ...]:
        return self.detail_lines

    def forget_details(self) -> None:
        """The fake's lines stay, so every failure screen of a test offers them."""

    def before_power_change(self) -> None:
        self.calls.append("before_power_change")


def failed_totp(
    failure: TotpFailure = TotpFailure.MISSING, message: str = "No TOTP secret is sealed"
) -> TotpFacts:
    return TotpFacts(None, failure=failure, message=message)


def run_machine(
    platform: FakePlatform, script: list[tuple[str, str, object]]
) -> tuple[State, ScriptedUi]:
    """Drive the whole state machine from its start with a scripted user;
    the final state and the UI (what was shown)."""
    from runtime.state import driver
    from runtime.state.steps import Context
    from tests.fakes_ui import ScriptedUi

    ui = ScriptedUi(script)
    final = driver.run(Context(ui, platform))
    ui.assert_finished()
    return final, ui
