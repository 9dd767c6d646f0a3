"""The real `Platform`: the TPM, the disks, the clock, on the machine the
runtime boots. Every method turns device failures into facts or plain words;
the decisions are the steps' (runtime.state.steps). Each phase's work is in
its own module beside this one: platform_start, platform_measure,
platform_boot, platform_root, platform_tpm and platform_pages.

This module is imported before the first screen: each phase's module (and
what it needs: gpg, /boot's parsers, kexec) is imported when that phase starts,
so the first screen does not wait for them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from runtime import bootlog
from runtime.devices.clock import ClockError, TimeInputError, parse_user_time, set_system_time
from runtime.devices.local_time import UTC_ZONE, local_time_text
from runtime.error_detail import describe, detail, forget, plain, recent_details
from runtime.image_files import OWNER_KEY_PATH
from runtime.state import platform_disk
from runtime.state.boot_side import BootSide
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
    DiskUnlockFacts,
    EnrolFacts,
    HotpFacts,
    KeyringFacts,
    LockoutFacts,
    MeasureFacts,
    OptionsFacts,
    ResetFacts,
    RootFacts,
    SignFacts,
    StartFacts,
    TotpFacts,
    TotpFailure,
)
from runtime.tpm.errors import TpmError
from runtime.tpm.pcr_roles import BOOT_MODE_PCR, recovery_extends

if TYPE_CHECKING:
    from runtime.config import BoardConfig, LoadedSettings
    from runtime.tpm.connection import Tpm


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
        self._disk = platform_disk.DiskSide()
        self._keyring: KeyringFacts | None = None
        self._side = BootSide()
        self._identity_problem = ""  # the pinned TPM storage key was not found

    # -- start -------------------------------------------------------------------

    def start(self) -> StartFacts:
        from runtime.state.platform_start import start

        started = start()
        self.board, self.loaded, self.tpm = started.board, started.loaded, started.tpm
        self._identity_problem = started.identity_problem
        return started.facts

    # -- measure -------------------------------------------------------------------

    def measure(self, progress: Callable[[str], None]) -> MeasureFacts:
        from runtime.state.platform_measure import measure

        assert self.board is not None
        measured = measure(self.tpm, self.board, progress)
        if self.tpm is None:
            return measured.facts  # nothing measured: nothing to keep
        self._firmware_pcrs = measured.firmware_pcrs
        self._pcr4_at_start = measured.pcr4_at_start
        self._recovery_used = self._recovery_used or measured.recovery_used
        self._module_row = measured.module_row
        self._measure_summary, self._measure_rows = measured.summary, measured.rows
        self._info_rows = measured.info_rows
        return measured.facts

    # -- /boot ---------------------------------------------------------------------

    def find_boot(self) -> BootFacts:
        from runtime.devices.boot_device import find_boot

        preferred = self.loaded.settings.boot_dev if self.loaded else ""
        found = find_boot(preferred or "")
        self.boot_device = found.device
        bootlog.stage("boot-device", device=found.device or "-", tried=len(found.tried))
        self._measure_luks_headers(found.mountpoint if found.device else None)
        return BootFacts(
            found.device,
            found.mountpoint,
            found.problem,
            found.encrypted_seen,
            disk_seen=bool(found.device or found.candidates),
        )

    def _measure_luks_headers(self, boot_dir: str | None) -> None:
        row = platform_disk.measure_headers_once(self._disk, self.tpm, boot_dir)
        if row:
            self._info_rows.append(("LUKS headers (PCR 6)", row))

    def rollback_preflight(self) -> str:
        from runtime.integrity.preflight import CounterMissing, CounterView, preflight
        from runtime.tpm import counters, nv
        from runtime.tpm.errors import NvIndexMissing

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

            found = read_keyring(OWNER_KEY_PATH)
            if found.problem:
                return found  # not kept: the next page asks gpg again
            self._keyring = found
        return self._keyring

    # -- TOTP / HOTP -----------------------------------------------------------------

    def early_totp(self) -> TotpFacts | None:
        # The drivers are measured into modules_pcr next: a board that seals to
        # it cannot unseal before they are loaded.
        if self.tpm is None or self.board is None or self.board.modules_pcr in self.board.seal_pcrs:
            return None
        found = self.unseal_totp()
        return found if found.code is not None else None

    def unseal_totp(self) -> TotpFacts:
        from runtime.secrets.totp import unseal_totp

        assert self.tpm is not None and self.board is not None
        result = unseal_totp(self.tpm, self.board.runtime_pcr)
        bootlog.stage("totp", unsealed=result.code is not None)
        failure = result.failure
        # the recovery shell explains PCR 4 and nothing else: another PCR changed
        # too is a changed measurement, said as such
        if (
            failure is TotpFailure.PCRS_CHANGED
            and set(result.changed_pcrs) == {BOOT_MODE_PCR}
            and (self._recovery_used or self._recovery_since_start())
        ):
            failure = TotpFailure.RECOVERY_USED
        return TotpFacts(result.code, result.step, failure, result.message, result.changed_pcrs)

    def _recovery_since_start(self) -> bool:
        """A recovery gate (the serial line's, beside the menus) extended PCR 4
        since the measurement: its own words, not a changed measurement."""
        if self.tpm is None or self._pcr4_at_start is None:
            return False
        try:
            now = self._pcr4_now(self.tpm)
        except TpmError:
            return False
        if now != self._pcr4_at_start and recovery_extends(self._pcr4_at_start, now):
            self._recovery_used = True
        return self._recovery_used

    def _pcr4_moved(self) -> str:
        """Why nothing may be sealed or reset now: PCR 4 moved since the start
        (a recovery shell runs beside the menus); empty when it did not."""
        if self.tpm is None or self._pcr4_at_start is None:
            return ""
        try:
            moved = self._pcr4_now(self.tpm) != self._pcr4_at_start
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

    @staticmethod
    def _pcr4_now(tpm: Tpm) -> bytes:
        """PCR 4 as the TPM holds it now (TpmError when it cannot be read)."""
        from runtime.tpm.pcrs import read_pcrs

        return read_pcrs(tpm, [BOOT_MODE_PCR])[BOOT_MODE_PCR]

    def verify_hotp(self) -> HotpFacts:
        from runtime.secrets.hotp_check import verify_hotp

        assert self.tpm is not None and self.board is not None and self.loaded is not None
        return verify_hotp(self.tpm, self.board.runtime_pcr, self.loaded.settings)

    # -- TPM ownership and sealing -------------------------------------------------

    def tpm_owned(self) -> bool:
        return self.tpm is not None and self.tpm.has_primary()

    def reset_needs_current_passphrase(self) -> bool:
        from runtime.state.platform_tpm import reset_needs_current_passphrase

        assert self.tpm is not None
        return reset_needs_current_passphrase(self.tpm)

    def tpm_lockout(self) -> LockoutFacts:
        from runtime.state.platform_tpm import tpm_lockout

        return tpm_lockout(self.tpm)

    def clear_lockout(self, lockout_passphrase: bytearray | None) -> ClearLockoutFacts:
        from runtime.state.platform_tpm import clear_lockout

        assert self.tpm is not None
        return clear_lockout(self.tpm, lockout_passphrase)

    def reset_tpm(
        self, owner_passphrase: bytearray, current_lockout: bytearray | None
    ) -> ResetFacts:
        from runtime.state.platform_tpm import reset_tpm

        assert self.tpm is not None
        if moved := self._pcr4_moved():
            return ResetFacts(problem=moved)
        # CONFIG_PRIMARY_KEY_TYPE: only a reset makes a new storage key
        key_type = self.loaded.settings.primary_key_type if self.loaded is not None else "ecc"
        return reset_tpm(self.tpm, key_type, owner_passphrase, current_lockout)

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

    # -- verified boot (runtime.state.platform_boot) ----------------------------------

    def _boot_side(self) -> BootSide:
        self._side.device = self.boot_device
        return self._side

    def verify_boot(self, progress: Callable[[str], None]) -> BootCheck:
        from runtime.state import platform_boot

        return platform_boot.verify(
            self._boot_side(), self.tpm, progress, check_rollback=not self._rollback_off()
        )

    def _rollback_off(self) -> bool:
        """CONFIG_IGNORE_ROLLBACK: the preflight and the verification both skip
        the counter, as Heads does."""
        return self.loaded is not None and bool(self.loaded.settings.ignore_rollback)

    def boot_options(self) -> OptionsFacts:
        from runtime.state import platform_boot

        return platform_boot.options(self._boot_side())

    def saved_default(self, check: BootCheck) -> DefaultFacts:
        from runtime.state import platform_boot

        return platform_boot.saved_default(self._boot_side(), self.tpm)

    def sign_boot(
        self,
        ask_pin: AskSecret,
        ask_owner: AskSecret,
        default: BootOption | None,
        progress: Callable[[str], None],
        root_list: bool = False,
        disk_unlock: bool = False,
    ) -> SignFacts:
        from runtime.integrity.root_hashes import ROOT_HASHES_FILE
        from runtime.state import platform_boot

        made, self._root_list = self._root_list, None  # one signing takes it, or none
        duk_files, self._disk.boot_files = self._disk.boot_files, None
        if self.tpm is None:
            return SignFacts(problem="No TPM: /boot cannot be bound to a rollback counter.")
        files = platform_disk.signed_files(
            self._boot_side(), default, duk_files if disk_unlock else None, progress
        )
        if root_list and made is not None:
            files.extra[ROOT_HASHES_FILE] = made
        # CONFIG_IGNORE_ROLLBACK: as Heads, signing leaves the counter where it is
        facts = platform_boot.sign(
            self._boot_side(),
            self.tpm,
            ask_pin,
            ask_owner,
            default,
            progress,
            bump=not self._rollback_off(),
            extra=files.extra,
            drop=files.drop,
        )
        noted = files.note and not facts.problem
        return replace(facts, notes=(*facts.notes, files.note)) if noted else facts

    def create_root_hashes(self, progress: Callable[[str], None]) -> RootFacts:
        from runtime.state import platform_root

        settings = self.loaded.settings if self.loaded is not None else None
        facts, self._root_list = platform_root.create(self._boot_side(), settings, progress)
        return facts

    def check_root_hashes(self, progress: Callable[[str], None]) -> RootFacts:
        from runtime.state import platform_root

        settings = self.loaded.settings if self.loaded is not None else None
        facts = platform_root.check(self._boot_side(), settings, progress)
        bootlog.stage("root-hashes", checked=facts.checked, ok=facts.ok)
        return facts

    def boot(
        self,
        option: BootOption,
        unsafe: bool,
        progress: Callable[[str], None],
        disk_key: bytearray | None = None,
    ) -> str | None:
        from runtime.state import platform_boot

        return platform_boot.boot(
            self._boot_side(),
            self._tpm_for_handover(),
            self.loaded,
            option,
            unsafe,
            progress,
            disk_key,
        )

    # -- the Disk Unlock Key (platform_disk.py) ----------------------------------

    def disk_containers(self) -> tuple[DiskContainer, ...]:
        return platform_disk.containers(self._disk)

    def disk_lvm_problem(self) -> str:
        return self._disk.lvm_problem

    def disk_unlock_listed(self) -> bool:
        return platform_disk.listed(self._boot_side())

    def check_disks(self, devices: tuple[str, ...], recovery: bytearray) -> DiskCheckFacts:
        return platform_disk.check(self._disk, devices, recovery)

    def set_up_disk_unlock(
        self,
        devices: tuple[str, ...],
        recovery: bytearray,
        duk_passphrase: bytearray,
        owner_passphrase: bytearray,
        wipe_slots: bool,
        progress: Callable[[str], None],
    ) -> DiskSetupFacts:
        secrets = (recovery, duk_passphrase, owner_passphrase)
        tpm, board, firmware = self.tpm, self.board, self._firmware_pcrs
        return platform_disk.set_up(
            self._disk, tpm, board, firmware, secrets, devices, wipe_slots, progress
        )

    def disk_unlock(self) -> DiskUnlockFacts:
        return platform_disk.unlock(self._disk, self.tpm, self._boot_side())

    def disk_key(self, passphrase: bytearray) -> DiskKeyFacts:
        return platform_disk.key(self._disk, self.tpm, passphrase)

    def _tpm_for_handover(self) -> Tpm | None:
        """The TPM PCR 4 is extended in before the hand-over. A TPM that did not
        answer at the start but answers now is used too: left unextended, it
        would let the next kernel unseal what this power-on never checked."""
        if self.tpm is not None:
            return self.tpm
        from runtime.tpm.connection import Tpm
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
        from runtime.state.platform_pages import system_info

        return system_info(self.board, self.boot_device, self._module_row, self._info_rows)

    def integrity_lines(self) -> list[str]:
        from runtime.state.platform_pages import identity_lines, integrity_lines

        identity = identity_lines(self.tpm, self._identity_problem)
        return integrity_lines(self._measure_summary, self._measure_rows, identity, self.loaded)

    def configuration_lines(self) -> list[str]:
        from runtime.state.platform_pages import configuration_lines

        return configuration_lines(self.loaded)

    def keyring_lines(self) -> list[str]:
        from runtime.state.platform_pages import keyring_lines

        return keyring_lines(self.keyring())

    # -- clock ---------------------------------------------------------------------

    def set_time(self, text: str) -> str:
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
        zone = self.loaded.settings.time_zone if self.loaded is not None else UTC_ZONE
        return local_time_text(zone)

    def details(self) -> tuple[str, ...]:
        return recent_details()

    def forget_details(self) -> None:
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
