"""DevicePlatform's information pages: the system, the measurements and the
TPM's identity, the settings, the owner's keys, as lines for the screen."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from runtime.devices.memory_use import meminfo_kib
from runtime.error_detail import plain
from runtime.image_files import BUILD_INFO_PATH, OWNER_KEY_PATH
from runtime.integrity.keyring import KeyringFacts
from runtime.kexec.freed_memory import freed_memory_zeroed, handover_line
from runtime.tpm.errors import PrimaryKeyMissing, TpmError
from runtime.version import runtime_version

if TYPE_CHECKING:
    from runtime.config import BoardConfig, LoadedSettings
    from runtime.tpm.connection import Tpm


def system_info(
    board: BoardConfig | None,
    boot_device: str,
    module_row: str,
    pcr_rows: list[tuple[str, str]],
) -> list[tuple[str, str]]:
    mem = meminfo_kib()
    rows = [
        ("Runtime", f"heads-runtime {runtime_version(BUILD_INFO_PATH)}"),
        ("Board", board.description if board else "?"),
        ("Kernel", os.uname().release),
        (
            "Memory",
            f"{mem.get('MemTotal', '?')} kB total, {mem.get('MemAvailable', '?')} kB available",
        ),
        ("Owner key", "in the firmware" if os.path.exists(OWNER_KEY_PATH) else "none"),
        ("/boot", boot_device or "not found"),
    ]
    if module_row:
        rows.append(("Kernel modules", module_row))
    return rows + pcr_rows


def integrity_lines(
    summary: str,
    rows: tuple[tuple[str, str], ...],
    identity: list[str],
    loaded: LoadedSettings | None,
) -> list[str]:
    lines = [summary, *(f"{k}: {v}" for k, v in rows)]
    if identity:
        lines += ["", *identity]

    lines += ["", handover_line(freed_memory_zeroed())]
    if loaded is not None and loaded.problems:
        lines += ["", "Configuration problems:", *loaded.problem_lines()]
    return lines


def identity_lines(tpm: Tpm | None, identity_problem: str) -> list[str]:
    """Whether the TPM's storage key is pinned, and the Name to pin."""

    if identity_problem:
        return [f"TPM identity: CHANGED. {identity_problem}"]
    if tpm is None:
        return []  # the report says there is no TPM
    try:
        name = tpm.primary_name()
    except PrimaryKeyMissing:
        return ["TPM identity: no storage key yet (the TPM has no owner)."]
    except TpmError as err:
        return [f"TPM identity: {plain('tpm-identity', err, err.plain())}"]
    if tpm.identity_pinned:
        return ["TPM identity: pinned (the storage key is the one CONFIG_TPM_PRIMARY_NAME names)."]
    return [
        "TPM identity: not pinned. TPM sessions are safe from listening on the TPM "
        "bus, not from a device answering in the TPM's place. On a machine you "
        "trust, add this line to your config.user:",
        f"CONFIG_TPM_PRIMARY_NAME={name}",
    ]


def configuration_lines(loaded: LoadedSettings | None) -> list[str]:
    if loaded is None:
        return ["The settings were not read."]
    lines = [f"{row.key} = {row.value}   ({row.source})" for row in loaded.rows()]
    if loaded.problems:
        lines += ["", "Problems:", *loaded.problem_lines()]
    return lines


def keyring_lines(facts: KeyringFacts) -> list[str]:
    if not facts.fingerprints:
        return [facts.problem or "No key in the firmware."]
    return [f"Owner key fingerprint: {fpr}" for fpr in facts.fingerprints]
