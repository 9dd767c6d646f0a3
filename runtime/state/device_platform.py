"""The real `Platform`: the TPM, the disks, the clock, on the machine the
runtime boots. Every method turns device failures into facts or plain words;
the decisions are the steps' (runtime.state.steps).

Imports are made where they are first needed: under emulation each costs
real time, and a screen is already up by then.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from runtime import bootlog
from runtime.error_detail import describe, detail, plain
from runtime.state.device_boot import BootSide
from runtime.state.platform import (
    AskSecret,
    BootCheck,
    BootFacts,
    BootOption,
    ClearLockoutFacts,
    DefaultFacts,
    EnrolFacts,
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
from runtime.tpm.pcr_roles import PCRS_SHOWN, BootMode

if TYPE_CHECKING:
    from runtime.config import BoardConfig, LoadedSettings, Settings
    from runtime.tpm.connection import Tpm

VERSION = "0.2.0"
OWNER_KEY_PATH = "/etc/runtime/owner.asc"
BUILD_INFO_PATH = "/etc/runtime/build-info.json"
RECOVERY_EXTEND = BootMode.RECOVERY.digest()
#: the board file is part of the image: its parser's words would not help the user
BOARD_PROBLEM = (
    "The firmware's board configuration cannot be read, so the runtime cannot "
    "start. The firmware image was built wrongly or is damaged: build it again "
    "and flash it."
)


def _meminfo_kib() -> dict[str, int]:
    fields: dict[str, int] = {}
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if value.strip().endswith("kB"):
                    fields[key] = int(value.split()[0])
    except (OSError, ValueError):
        return {}
    return fields


def peak_rss_kib() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def guest_memory_used_kib() -> int:
    fields = _meminfo_kib()
    return fields.get("MemTotal", 0) - fields.get("MemAvailable", 0)


def settings_facts(loaded: LoadedSettings, board_name: str) -> dict[str, object]:
    """The StartFacts fields the owner's settings decide."""
    settings = loaded.settings
    return dict(
        board_name=settings.board_name if settings.board_name != "Unnamed board" else board_name,
        brand=settings.brand_name,
        config_problems=tuple(loaded.problem_lines()),
        auto_boot_timeout=settings.auto_boot_timeout or None,
        restricted=settings.restricted_boot,
        hotp_configured=settings.hotp_enabled,
        auto_boot_totp_only=settings.auto_boot_totp_only,
        rollback_check_off=settings.ignore_rollback,
        skip_qr_code=settings.totp_skip_qrcode,
        basic=settings.basic_mode,
        root_hashing=bool(settings.root_dev),
        root_check_at_boot=bool(settings.root_dev) and settings.root_check_at_boot,
    )


def console_level(settings: Settings) -> bootlog.ConsoleLevel:
    """CONFIG_DEBUG_OUTPUT wins over CONFIG_QUIET_MODE, as in Heads."""
    if settings.debug_output:
        return bootlog.ConsoleLevel.DEBUG
    return bootlog.ConsoleLevel.QUIET if settings.quiet_mode else bootlog.ConsoleLevel.STAGES


def recovery_extends(firmware_value: bytes, actual: bytes, most: int = 8) -> int:
    """How many "recovery" extends turn the firmware's PCR 4 into ``actual`` (0: none)."""
    value = firmware_value
    for count in range(1, most + 1):
        value = hashlib.sha256(value + RECOVERY_EXTEND).digest()
        if value == actual:
            return count
    return 0


class DevicePlatform:
    def __init__(self) -> None:
        self.board: BoardConfig | None = None
        self.loaded: LoadedSettings | None = None
        self.tpm: Tpm | None = None
        self.boot_device = ""
        self._firmware_pcrs: dict[int, bytes] | None = None  # the event log's replay
        self._measure_rows: tuple[tuple[str, str], ...] = ()
        self._measure_summary = "Not checked."
        self._module_row = ""
        self._recovery_used = False
        #: PCR 4 as the measurement found it: a gate opened since (on the serial
        #: recovery line, in another process) moves it
        self._pcr4_at_start: bytes | None = None
        #: the root hash list create_root_hashes made, for the signing that follows
        self._root_list: bytes | None = None
        self._info_rows: list[tuple[str, str]] = []
        self._keyring: KeyringFacts | None = None
        self._side = BootSide()
        self._identity_problem = ""  # the pinned TPM storage key was not found

    # -- start -------------------------------------------------------------------

    def start(self) -> StartFacts:
        from runtime.config import ConfigError, load_board, load_settings

        try:
            self.board = board = load_board()
        except ConfigError as err:
            return StartFacts("?", "heads-runtime", fatal=plain("board", err, BOARD_PROBLEM))
        self.loaded = loaded = load_settings()
        settings = loaded.settings
        facts = settings_facts(loaded, board.name)
        facts["clock_problem"] = self._clock_problem()
        facts["recovery_needs_missing_key"] = bool(
            settings.have_gpg_key_backup
        ) and not os.path.exists(OWNER_KEY_PATH)
        from runtime.devices.keymap import keymap_problem
        from runtime.devices.serial_line import recovery_serial_problem

        token = settings.hotp_serial_device if settings.hotp_enabled else None
        found = [
            recovery_serial_problem(
                settings.boot_recovery_serial,
                owner_key=os.path.exists(OWNER_KEY_PATH),
                token_device=token,
            ),
            keymap_problem(settings.keyboard_keymap),
        ]
        if any(found):
            facts["config_problems"] = (*loaded.problem_lines(), *filter(None, found))
        bootlog.set_console_level(console_level(settings))
        from runtime.tpm.connection import Tpm
        from runtime.tpm.errors import TpmError
        from runtime.tpm.log_journal import RUNTIME_JOURNAL

        bootlog.stage("imports-tpm")
        try:
            tpm = Tpm.connect(
                journal=RUNTIME_JOURNAL, pinned_primary_name=loaded.primary_name_pin()
            )
        except TpmError as err:
            return StartFacts(**facts, tpm_problem=plain("tpm-connect", err, err.plain()))  # type: ignore[arg-type]
        try:
            # before any secret is asked for or unsealed: a TPM that is not the
            # pinned one is treated as no TPM at all
            tpm.check_identity()
        except TpmError as err:
            tpm.close()
            self._identity_problem = err.plain()
            return StartFacts(**facts, tpm_problem=plain("tpm-identity", err, err.plain()))  # type: ignore[arg-type]
        self.tpm = tpm
        bootlog.stage("tpm-connected", pinned=tpm.identity_pinned)
        return StartFacts(**facts)  # type: ignore[arg-type]

    def _clock_problem(self) -> str:
        from runtime.devices.clock import ClockError, clock_problem, image_build_time

        try:
            built = image_build_time(BUILD_INFO_PATH)
        except ClockError as err:
            return str(err)
        return clock_problem(time.time(), built) or ""

    # -- measure -------------------------------------------------------------------

    def measure(self, progress: Callable[[str], None]) -> MeasureFacts:
        from runtime.measure.modules import measure_and_load, module_list
        from runtime.measure.replay import replay_report
        from runtime.tpm.eventlog import EventLogError, read_eventlog, replay
        from runtime.tpm.pcr_math import Bank
        from runtime.tpm.pcrs import read_pcrs

        tpm, board = self.tpm, self.board
        assert board is not None
        results = measure_and_load(tpm, board.modules_pcr, module_list())
        if tpm is None:
            # the disks still need their drivers: loaded, said to be unmeasured
            failed = [r for r in results if not r.loaded]
            problems = [
                f"Driver {os.path.basename(r.path)} did not load: {r.problem}" for r in failed
            ]
            return MeasureFacts(
                tuple(problems), True, "No TPM: the drivers were loaded without being measured."
            )
        failed = [r for r in results if not r.loaded]
        self._module_row = (
            f"{len(results)} measured into PCR {board.modules_pcr}, {len(failed)} failed"
        )
        problems = [f"Driver {os.path.basename(r.path)} did not load: {r.problem}" for r in failed]
        bootlog.stage("modules-loaded", count=len(results), failed=len(failed))
        progress("Checking the firmware's event log against the TPM...")
        log, log_problem = None, ""
        try:
            log = read_eventlog()
            self._firmware_pcrs = replay(log).get(Bank.SHA256)
        except (OSError, EventLogError) as err:
            log = None  # a log that does not replay is reported as unreadable, once
            log_problem = plain(
                "eventlog",
                err,
                "the firmware did not publish one, or it cannot be read or is damaged.",
            )
        values = read_pcrs(tpm, range(24))
        self._pcr4_at_start = values[4]
        checked = {*board.firmware_pcrs, board.modules_pcr, board.runtime_pcr}
        report = replay_report(log, log_problem, tpm.log, values, checked)
        firmware4 = (self._firmware_pcrs or {}).get(4)
        match = report.all_match
        summary = report.summary
        if any(m.event_type == "recovery-shell" for m in tpm.log.entries):
            # this power-on opened the recovery shell: PCR 4 says so, and the log too
            self._recovery_used = True
            summary = "A recovery shell was opened during this boot (PCR 4 records it). " + summary
        elif not match and firmware4 is not None and recovery_extends(firmware4, values[4]):
            # PCR 4 was extended by the recovery gate (another process): expected,
            # and it is why nothing unseals until the reboot.
            self._recovery_used = True
            others = [row for row in report.rows if row[0] != "PCR 4" and "DIFFERS" in row[1]]
            match = not others
            summary = "A recovery shell was opened during this boot (PCR 4 records it)." + (
                "" if match else " " + report.summary
            )
        self._measure_summary, self._measure_rows = summary, report.rows
        self._info_rows = [(f"PCR {pcr}", values[pcr].hex()) for pcr in PCRS_SHOWN]
        for pcr in PCRS_SHOWN:
            bootlog.stage("pcr", index=pcr, sha256=values[pcr].hex())
        bootlog.stage("eventlog-checked", match=report.all_match, recovery_used=self._recovery_used)
        if not match:
            problems.append(summary)
        bootlog.stage(
            "devices-ready", peak_rss_kib=peak_rss_kib(), guest_used_kib=guest_memory_used_kib()
        )
        return MeasureFacts(tuple(problems), match, summary)

    # -- /boot ---------------------------------------------------------------------

    def find_boot(self) -> BootFacts:
        from runtime.devices.boot_device import find_boot

        preferred = self.loaded.settings.boot_dev if self.loaded else ""
        found = find_boot(preferred or "")
        self.boot_device = found.device
        bootlog.stage("boot-device", device=found.device or "-", tried=len(found.tried))
        return BootFacts(
            found.device,
            found.mountpoint,
            found.problem,
            found.encrypted_seen,
            disk_seen=bool(found.device or found.candidates),
        )

    def rollback_preflight(self) -> str:
        from runtime.integrity.preflight import CounterMissing, CounterView, preflight
        from runtime.tpm import counters, nv
        from runtime.tpm.errors import NvIndexMissing, TpmError

        if self._rollback_off():
            return ""
        if not self.boot_device or self.tpm is None:
            return ""
        tpm = self.tpm

        def inspect(index: int) -> CounterView:
            try:
                # exactly one of the counters' definitions, or a problem: never read
                refusal = counters.counter_refusal(nv.info(tpm, index))
            except NvIndexMissing:
                raise CounterMissing() from None
            except TpmError as err:
                raise ValueError(plain("rollback-preflight", err, err.plain())) from None
            if refusal is None:
                return CounterView(None)
            detail("rollback-preflight", refusal.message)
            return CounterView(refusal.problem)

        return preflight("/boot", inspect)

    def keyring(self) -> KeyringFacts:
        # The keys are part of the image: read once (a gpg process), not per page.
        if self._keyring is None:
            from runtime.integrity.keyring import read_keyring

            self._keyring = read_keyring(OWNER_KEY_PATH)
        return self._keyring

    # -- TOTP / HOTP -----------------------------------------------------------------

    def unseal_totp(self) -> TotpFacts:
        from runtime.secrets.totp import unseal_totp

        assert self.tpm is not None and self.board is not None
        result = unseal_totp(self.tpm, self.board.runtime_pcr)
        bootlog.stage("totp", unsealed=result.code is not None)
        failure = TotpFailure(result.failure)
        # the recovery shell explains PCR 4 and nothing else: another PCR changed
        # too is a changed measurement, said as such
        if (
            failure is TotpFailure.PCRS_CHANGED
            and set(result.changed_pcrs) == {4}
            and (self._recovery_used or self._recovery_since_start())
        ):
            failure = TotpFailure.RECOVERY_USED
        return TotpFacts(result.code, result.step, failure, result.message, result.changed_pcrs)

    def _recovery_since_start(self) -> bool:
        """A recovery gate (the serial line's, beside the menus) extended PCR 4
        since the measurement: its own words, not a changed measurement."""
        if self.tpm is None or self._pcr4_at_start is None:
            return False
        from runtime.tpm.errors import TpmError
        from runtime.tpm.pcrs import read_pcrs

        try:
            now = read_pcrs(self.tpm, [4])[4]
        except TpmError:
            return False
        if now != self._pcr4_at_start and recovery_extends(self._pcr4_at_start, now):
            self._recovery_used = True
        return self._recovery_used

    def _pcr4_moved(self) -> str:
        """Why nothing may be sealed or reset now: PCR 4 moved since the start
        (a recovery shell runs beside the menus); empty when it did not."""
        from runtime.tpm.errors import TpmError
        from runtime.tpm.pcrs import read_pcrs

        if self.tpm is None or self._pcr4_at_start is None:
            return ""
        try:
            moved = read_pcrs(self.tpm, [4])[4] != self._pcr4_at_start
        except TpmError as err:
            return plain("pcr4-check", err, "PCR 4 cannot be read, so nothing was changed.")
        return (
            (
                "A recovery shell was opened during this boot (PCR 4 changed since the start): "
                "a secret made now could be read from it. Nothing was changed: power off, "
                "then do this on the next boot."
            )
            if moved
            else ""
        )

    def verify_hotp(self) -> HotpFacts:
        from runtime.secrets.hotp_check import verify_hotp

        assert self.tpm is not None and self.board is not None and self.loaded is not None
        return verify_hotp(self.tpm, self.board.runtime_pcr, self.loaded.settings)

    # -- TPM ownership and sealing -------------------------------------------------

    def tpm_owned(self) -> bool:
        return self.tpm is not None and self.tpm.has_primary()

    def reset_needs_current_passphrase(self) -> bool:
        from runtime.tpm import ownership
        from runtime.tpm.errors import TpmError

        assert self.tpm is not None
        try:
            return ownership.clear_needs_lockout_passphrase(self.tpm)
        except TpmError as err:
            detail("tpm-reset", describe(err))
            return True  # ask: a wrong guess here costs the user one try, not the TPM

    def tpm_lockout(self) -> LockoutFacts:
        from runtime.tpm import ownership
        from runtime.tpm.errors import TpmError

        if self.tpm is None:
            return LockoutFacts(problem="No TPM answered.")
        try:
            state = ownership.da_state(self.tpm)
        except TpmError as err:
            return LockoutFacts(problem=plain("tpm-lockout", err, err.plain()))
        return LockoutFacts(
            locked_out=state.in_lockout,
            failures=state.failures,
            max_tries=state.max_tries,
            recovery_seconds=state.recovery_seconds,
            lockout_recovery_seconds=state.lockout_recovery_seconds,
            passphrase_set=state.lockout_auth_set,
        )

    def clear_lockout(self, lockout_passphrase: bytearray | None) -> ClearLockoutFacts:
        from runtime.tpm import ownership
        from runtime.tpm.errors import (
            LockoutPassphraseBlocked,
            TpmError,
            WrongLockoutPassphrase,
        )

        assert self.tpm is not None
        outcome = LockoutOutcome.CLEARED
        try:
            ownership.clear_lockout(
                self.tpm, None if lockout_passphrase is None else bytes(lockout_passphrase)
            )
        except WrongLockoutPassphrase as err:
            if err.rc is None:  # refused before any try: the TPM waits for nothing
                return ClearLockoutFacts(
                    LockoutOutcome.FAILED, plain("tpm-lockout", err, err.plain())
                )
            detail("tpm-lockout", describe(err))
            outcome = LockoutOutcome.WRONG_PASSPHRASE
        except LockoutPassphraseBlocked as err:
            detail("tpm-lockout", describe(err))
            outcome = LockoutOutcome.BLOCKED
        except TpmError as err:
            return ClearLockoutFacts(
                LockoutOutcome.FAILED,
                plain("tpm-lockout", err, "The lockout was not cleared. " + err.plain()),
            )
        bootlog.stage("tpm-lockout", outcome=str(outcome))
        if outcome is LockoutOutcome.CLEARED:
            return ClearLockoutFacts(outcome)
        # the wait after a wrong one is the TPM's own setting (Heads' may differ)
        wait = self.tpm_lockout()
        return ClearLockoutFacts(outcome, lockout_recovery_seconds=wait.lockout_recovery_seconds)

    def reset_tpm(
        self, owner_passphrase: bytearray, current_lockout: bytearray | None
    ) -> ResetFacts:
        from runtime.tpm import ownership
        from runtime.tpm.errors import TpmError, WrongPassphrase

        assert self.tpm is not None
        if moved := self._pcr4_moved():
            return ResetFacts(problem=moved)
        if self.tpm.identity_pinned:
            # the reset makes a new storage key, which the pin then refuses:
            # refused before clearing, not half-way through
            return ResetFacts(
                problem=(
                    "This firmware pins the TPM's storage key (CONFIG_TPM_PRIMARY_NAME), and a "
                    "reset makes a new one that the pin refuses, so no new secret could be "
                    "sealed. Remove CONFIG_TPM_PRIMARY_NAME from your config.user, flash the "
                    "rebuilt firmware and reset the TPM then; pin the new key afterwards. "
                    "Nothing was changed."
                )
            )
        # CONFIG_PRIMARY_KEY_TYPE: only a reset makes a new storage key
        key_type = self.loaded.settings.primary_key_type if self.loaded is not None else "ecc"
        try:
            used = ownership.reset_tpm(
                self.tpm,
                bytes(owner_passphrase),
                None if current_lockout is None else bytes(current_lockout),
                key_type=key_type,
            )
        except WrongPassphrase as err:
            detail("tpm-reset", describe(err))
            if current_lockout is None:
                return ResetFacts(needs_lockout_passphrase=True)
            return ResetFacts(
                problem=(
                    "The TPM refused the current passphrase, and this firmware does not allow "
                    "clearing the TPM without it. The TPM now refuses every try until the "
                    "machine restarts: reboot (Options > Reboot), then reset the TPM again "
                    "with the passphrase set at its last reset. Nothing was changed."
                )
            )
        except ownership.OwnershipIncomplete as err:
            return ResetFacts(problem=plain("tpm-reset", err, err.plain()), cleared=True)
        except TpmError as err:
            return ResetFacts(
                problem=plain("tpm-reset", err, "The TPM was not reset. " + err.plain())
            )
        except ValueError as err:
            if not ownership.key_type_supported(self.tpm, key_type):
                return ResetFacts(
                    problem=plain(
                        "tpm-reset",
                        err,
                        (
                            f"This TPM cannot make the {key_type.upper()} storage key the settings "
                            "ask for (CONFIG_PRIMARY_KEY_TYPE). Nothing was changed: set "
                            "CONFIG_PRIMARY_KEY_TYPE to the other type."
                        ),
                    )
                )
            # reset_tpm checks the length before clearing; the steps ask for 8 to 32
            return ResetFacts(
                problem=plain(
                    "tpm-reset",
                    err,
                    (
                        "The new owner passphrase was not accepted: the TPM takes 1 to 32 bytes "
                        "(a letter with an accent takes two). Nothing was changed: reset the TPM "
                        "again with a shorter one."
                    ),
                )
            )
        bootlog.stage("tpm-reset", hierarchy=used)
        return ResetFacts()

    def generate_secret(
        self, owner_passphrase: bytearray, hotp_admin_pin: bytearray | None
    ) -> EnrolFacts:
        from runtime.secrets.enrol import generate_and_seal

        assert self.tpm is not None and self.board is not None and self.loaded is not None
        if moved := self._pcr4_moved():
            return EnrolFacts(None, moved)
        return generate_and_seal(
            self.tpm,
            self.board,
            self._firmware_pcrs,
            owner_passphrase,
            hotp_admin_pin,
            self.loaded.settings,
        )

    # -- verified boot (runtime.state.device_boot) ------------------------------------

    def _boot_side(self) -> BootSide:
        self._side.device = self.boot_device
        return self._side

    def verify_boot(self, progress: Callable[[str], None]) -> BootCheck:
        from runtime.state import device_boot

        return device_boot.verify(
            self._boot_side(), self.tpm, progress, check_rollback=not self._rollback_off()
        )

    def _rollback_off(self) -> bool:
        """CONFIG_IGNORE_ROLLBACK: the preflight and the verification both skip
        the counter, as Heads does."""
        return self.loaded is not None and bool(self.loaded.settings.ignore_rollback)

    def boot_options(self) -> OptionsFacts:
        from runtime.state import device_boot

        return device_boot.options(self._boot_side())

    def saved_default(self, check: BootCheck) -> DefaultFacts:
        from runtime.state import device_boot

        return device_boot.saved_default(self._boot_side(), self.tpm)

    def sign_boot(
        self,
        ask_pin: AskSecret,
        ask_owner: AskSecret,
        default: BootOption | None,
        progress: Callable[[str], None],
        root_list: bool = False,
    ) -> SignFacts:
        from runtime.integrity.root_hashes import ROOT_HASHES_FILE
        from runtime.state import device_boot

        made, self._root_list = self._root_list, None  # one signing takes it, or none
        if self.tpm is None:
            return SignFacts(problem="No TPM: /boot cannot be bound to a rollback counter.")
        extra = {ROOT_HASHES_FILE: made} if root_list and made is not None else None
        # CONFIG_IGNORE_ROLLBACK: as Heads, signing leaves the counter where it is
        return device_boot.sign(
            self._boot_side(),
            self.tpm,
            ask_pin,
            ask_owner,
            default,
            progress,
            bump=not self._rollback_off(),
            extra=extra,
        )

    def create_root_hashes(self, progress: Callable[[str], None]) -> RootFacts:
        from runtime.state import device_root

        settings = self.loaded.settings if self.loaded is not None else None
        facts, self._root_list = device_root.create(self._boot_side(), settings, progress)
        return facts

    def check_root_hashes(self, progress: Callable[[str], None]) -> RootFacts:
        from runtime.state import device_root

        settings = self.loaded.settings if self.loaded is not None else None
        facts = device_root.check(self._boot_side(), settings, progress)
        bootlog.stage("root-hashes", checked=facts.checked, ok=facts.ok)
        return facts

    def boot(self, option: BootOption, unsafe: bool, progress: Callable[[str], None]) -> str | None:
        from runtime.state import device_boot

        return device_boot.boot(
            self._boot_side(),
            self._tpm_for_handover(),
            self.board,
            self.loaded,
            option,
            unsafe,
            progress,
        )

    def _tpm_for_handover(self) -> Tpm | None:
        """The TPM PCR 4 is extended in before the hand-over. A TPM that did not
        answer at the start but answers now is used too: left unextended, it
        would let the next kernel unseal what this power-on never checked."""
        if self.tpm is not None:
            return self.tpm
        from runtime.tpm.connection import Tpm
        from runtime.tpm.errors import TpmError
        from runtime.tpm.log_journal import RUNTIME_JOURNAL

        # the pin too: the hand-over's own session (locking the platform
        # hierarchy) must not be salted with an unchecked key
        pin = self.loaded.primary_name_pin() if self.loaded is not None else None
        try:
            self.tpm = Tpm.connect(journal=RUNTIME_JOURNAL, pinned_primary_name=pin)
        except TpmError as err:
            detail("handover", describe(err))  # none here: the hand-over says so
            return None
        bootlog.stage("tpm-connected", late=True)
        return self.tpm

    # -- pages ---------------------------------------------------------------------

    def system_info(self) -> list[tuple[str, str]]:
        board = self.board
        mem = _meminfo_kib()
        rows = [
            ("Runtime", f"heads-runtime {VERSION}"),
            ("Board", board.description if board else "?"),
            ("Kernel", os.uname().release),
            (
                "Memory",
                f"{mem.get('MemTotal', '?')} kB total, {mem.get('MemAvailable', '?')} kB available",
            ),
            ("Owner key", "in the firmware" if os.path.exists(OWNER_KEY_PATH) else "none"),
            ("/boot", self.boot_device or "not found"),
        ]
        if self._module_row:
            rows.append(("Kernel modules", self._module_row))
        return rows + self._info_rows

    def integrity_lines(self) -> list[str]:
        lines = [self._measure_summary, *(f"{k}: {v}" for k, v in self._measure_rows)]
        identity = self._identity_lines()
        if identity:
            lines += ["", *identity]
        from runtime.kexec.freed_memory import freed_memory_zeroed, handover_line

        lines += ["", handover_line(freed_memory_zeroed())]
        if self.loaded is not None and self.loaded.problems:
            lines += ["", "Configuration problems:", *self.loaded.problem_lines()]
        return lines

    def _identity_lines(self) -> list[str]:
        """Whether the TPM's storage key is pinned, and the Name to pin."""
        from runtime.tpm.errors import PrimaryKeyMissing, TpmError

        if self._identity_problem:
            return [f"TPM identity: CHANGED. {self._identity_problem}"]
        if self.tpm is None:
            return []  # the report says there is no TPM
        try:
            name = self.tpm.primary_name()
        except PrimaryKeyMissing:
            return ["TPM identity: no storage key yet (the TPM has no owner)."]
        except TpmError as err:
            return [f"TPM identity: {plain('tpm-identity', err, err.plain())}"]
        if self.tpm.identity_pinned:
            return [
                "TPM identity: pinned (the storage key is the one CONFIG_TPM_PRIMARY_NAME names)."
            ]
        return [
            "TPM identity: not pinned. TPM sessions are safe from listening on the TPM "
            "bus, not from a device answering in the TPM's place. On a machine you "
            "trust, add this line to your config.user:",
            f"CONFIG_TPM_PRIMARY_NAME={name}",
        ]

    def configuration_lines(self) -> list[str]:
        if self.loaded is None:
            return ["The settings were not read."]
        lines = [f"{row.key} = {row.value}   ({row.source})" for row in self.loaded.rows()]
        if self.loaded.problems:
            lines += ["", "Problems:", *self.loaded.problem_lines()]
        return lines

    def keyring_lines(self) -> list[str]:
        facts = self.keyring()
        if not facts.fingerprints:
            return [facts.problem or "No key in the firmware."]
        return [f"Owner key fingerprint: {fpr}" for fpr in facts.fingerprints]

    # -- clock ---------------------------------------------------------------------

    def set_time(self, text: str) -> str:
        from runtime.devices.clock import (
            ClockError,
            TimeInputError,
            parse_user_time,
            set_system_time,
        )

        try:
            when = parse_user_time(text)
            warning = set_system_time(when)
        except (TimeInputError, ClockError) as err:
            return str(err)  # written for the user (what is wrong, what to type)
        except (ValueError, OSError) as err:
            return plain("set-time", err, "The clock was not set. Try again.")
        if warning:
            bootlog.stage("clock-set", rtc=False)
        return ""

    def now_text(self) -> str:
        from runtime.devices.local_time import UTC_ZONE, local_time_text

        zone = self.loaded.settings.time_zone if self.loaded is not None else UTC_ZONE
        return local_time_text(zone)

    def details(self) -> tuple[str, ...]:
        from runtime.error_detail import recent_details

        return recent_details()

    def forget_details(self) -> None:
        from runtime.error_detail import forget

        forget()

    # -- power ---------------------------------------------------------------------

    def before_power_change(self) -> None:
        # Dropped first: whatever runs after this finds no TPM to send a command to.
        tpm, self.tpm = self.tpm, None
        if tpm is None:
            return
        from runtime.tpm.power_state import orderly_shutdown

        orderly_shutdown(tpm)
        tpm.close()  # no TPM command: its sessions are flushed already
