"""DevicePlatform's start: the board file and the owner's settings read, the
clock judged, the console's verbosity set, and the TPM connected and checked
against the pinned storage key before anything asks for a secret."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from runtime import bootlog
from runtime.config import ConfigError, load_board, load_settings
from runtime.devices.clock import ClockError, clock_problem, image_build_time
from runtime.devices.keymap import keymap_problem
from runtime.devices.serial_line import recovery_serial_problem
from runtime.error_detail import plain
from runtime.image_files import BUILD_INFO_PATH, OWNER_KEY_PATH
from runtime.state.platform import StartFacts
from runtime.tpm.connection import Tpm
from runtime.tpm.errors import TpmError
from runtime.tpm.log_journal import RUNTIME_JOURNAL

if TYPE_CHECKING:
    from runtime.config import BoardConfig, LoadedSettings, Settings
    from runtime.tpm.connection import Tpm

#: the board file is part of the image: its parser's words would not help the user
BOARD_PROBLEM = (
    "The firmware's board configuration cannot be read, so the runtime cannot "
    "start. The firmware image was built wrongly or is damaged: build it again "
    "and flash it."
)


@dataclass
class Started:
    """What the start found, for DevicePlatform to keep."""

    facts: StartFacts
    board: BoardConfig | None = None
    loaded: LoadedSettings | None = None
    tpm: Tpm | None = None
    #: the TPM is not the pinned one (CONFIG_TPM_PRIMARY_NAME): why
    identity_problem: str = ""


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
        disk_unlock=settings.tpm_disk_unlock_key and not settings.tpm_no_luks_disk_unlock,
    )


def console_level(settings: Settings) -> bootlog.ConsoleLevel:
    """CONFIG_DEBUG_OUTPUT wins over CONFIG_QUIET_MODE, as in Heads."""
    if settings.debug_output:
        return bootlog.ConsoleLevel.DEBUG
    return bootlog.ConsoleLevel.QUIET if settings.quiet_mode else bootlog.ConsoleLevel.STAGES


def _clock_problem() -> str:
    """Why the clock cannot be right (earlier than the image's build), or empty."""

    try:
        built = image_build_time(BUILD_INFO_PATH)
    except ClockError as err:
        return str(err)
    return clock_problem(time.time(), built) or ""


def start() -> Started:
    try:
        board = load_board()
    except ConfigError as err:
        return Started(StartFacts("?", "heads-runtime", fatal=plain("board", err, BOARD_PROBLEM)))
    loaded = load_settings()
    settings = loaded.settings
    facts = settings_facts(loaded, board.name)
    facts["clock_problem"] = _clock_problem()
    facts["recovery_needs_missing_key"] = bool(settings.have_gpg_key_backup) and not os.path.exists(
        OWNER_KEY_PATH
    )

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

    bootlog.stage("imports-tpm")
    try:
        tpm = Tpm.connect(journal=RUNTIME_JOURNAL, pinned_primary_name=loaded.primary_name_pin())
    except TpmError as err:
        problem = plain("tpm-connect", err, err.plain())
        return Started(StartFacts(**facts, tpm_problem=problem), board, loaded)  # type: ignore[arg-type]
    try:
        # before any secret is asked for or unsealed: a TPM that is not the
        # pinned one is treated as no TPM at all
        tpm.check_identity()
    except TpmError as err:
        tpm.close()
        problem = plain("tpm-identity", err, err.plain())
        facts_now = StartFacts(**facts, tpm_problem=problem)  # type: ignore[arg-type]
        return Started(facts_now, board, loaded, identity_problem=err.plain())
    bootlog.stage("tpm-connected", pinned=tpm.identity_pinned)
    return Started(StartFacts(**facts), board, loaded, tpm)  # type: ignore[arg-type]
