"""The board configuration: what the firmware measures, where the console is.

Parsed strictly: a typo in a board file must fail the build or show a clear
message, never quietly change what gets sealed to.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

# The build converts the board's TOML to JSON: the json module imports in a
# tenth of tomllib's time under TCG (0.26 s), on every boot.
BOARD_PATH = "/etc/board.json"


class ConfigError(ValueError):
    """The board file is missing a field or has a wrong value."""


@dataclass(frozen=True)
class BoardConfig:
    name: str
    description: str
    console_device: str
    columns: int
    rows: int
    runtime_pcr: int
    firmware_pcrs: tuple[int, ...]
    seal_pcrs: tuple[int, ...]
    modules_pcr: int
    kernel_release: str
    # [disk] lvm: the image has /sbin/lvm to activate the volume group holding
    # a Disk Unlock Key's LUKS container (off by default: it costs image size).
    disk_lvm: bool = False


def _pcr(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 23:
        raise ConfigError(f"{where}: {value!r} is not a PCR number (0-23)")
    return value


def _pcrs(value: object, where: str) -> tuple[int, ...]:
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{where}: expected a non-empty list of PCR numbers")
    return tuple(sorted({_pcr(v, where) for v in value}))


def _get(table: dict[str, object], section: str, key: str) -> object:
    part = table.get(section)
    if not isinstance(part, dict) or key not in part:
        raise ConfigError(f"board file: [{section}] {key} is missing")
    return part[key]


def _size(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 20 <= value <= 1000:
        raise ConfigError(f"{where}: {value!r} is not a terminal size")
    return value


#: [disk]'s keys; any other is refused (a misspelt lvm would drop the program in silence)
DISK_KEYS = ("lvm",)


def _disk_lvm(table: dict[str, object]) -> bool:
    """[disk] lvm: optional, a boolean, false when absent."""
    if "disk" not in table:
        return False
    disk = table["disk"]
    if not isinstance(disk, dict):
        raise ConfigError("board file: [disk] must be a table")
    unknown = sorted(set(disk) - set(DISK_KEYS))
    if unknown:
        raise ConfigError(
            f"board file: [disk] has no key {unknown[0]!r} (known: {', '.join(DISK_KEYS)})"
        )
    value = disk.get("lvm", False)
    if not isinstance(value, bool):
        raise ConfigError(f"[disk] lvm: {value!r} is not true or false")
    return value


def parse_board(text: str) -> BoardConfig:
    """A board file as written (TOML)."""
    import tomllib

    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"board file is not valid TOML: {err}") from None
    return parse_board_table(table)


def parse_board_table(table: dict[str, object]) -> BoardConfig:
    board = _parse(table)
    if board.runtime_pcr not in board.seal_pcrs:
        raise ConfigError(
            f"[tpm] seal_pcrs must include runtime_pcr {board.runtime_pcr}: a "
            "secret not sealed to the runtime's measurement proves nothing"
        )
    return board


def _parse(table: dict[str, object]) -> BoardConfig:
    return BoardConfig(
        name=str(_get(table, "board", "name")),
        description=str(_get(table, "board", "description")),
        console_device=str(_get(table, "console", "device")),
        columns=_size(_get(table, "console", "columns"), "[console] columns"),
        rows=_size(_get(table, "console", "rows"), "[console] rows"),
        runtime_pcr=_pcr(_get(table, "tpm", "runtime_pcr"), "[tpm] runtime_pcr"),
        firmware_pcrs=_pcrs(_get(table, "tpm", "firmware_pcrs"), "[tpm] firmware_pcrs"),
        seal_pcrs=_pcrs(_get(table, "tpm", "seal_pcrs"), "[tpm] seal_pcrs"),
        modules_pcr=_pcr(_get(table, "tpm", "modules_pcr"), "[tpm] modules_pcr"),
        kernel_release=str(_get(table, "kernel", "release")),
        disk_lvm=_disk_lvm(table),
    )


def load_board(path: str = BOARD_PATH) -> BoardConfig:
    """The image's board, as the build wrote it (JSON)."""
    try:
        with open(path, encoding="utf-8") as f:
            table = json.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path} is missing: the image was built without a board") from None
    except ValueError as err:
        raise ConfigError(f"{path} is damaged: {err}") from None
    if not isinstance(table, dict):
        raise ConfigError(f"{path} is damaged: not a table")
    return parse_board_table(table)
