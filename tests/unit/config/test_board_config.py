"""Strict parsing of the board file (runtime/config/board.py)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from runtime.config.board import BoardConfig, ConfigError, load_board, parse_board
from tests.conftest import REPO_ROOT

BOARD_FILE = REPO_ROOT / "etc" / "boards" / "qemu-swtpm" / "board.toml"

REQUIRED = [
    ("board", "name"),
    ("board", "description"),
    ("console", "device"),
    ("console", "columns"),
    ("console", "rows"),
    ("tpm", "runtime_pcr"),
    ("tpm", "firmware_pcrs"),
    ("tpm", "seal_pcrs"),
    ("tpm", "modules_pcr"),
    ("kernel", "release"),
]
PCR_FIELDS = ["runtime_pcr", "modules_pcr"]
PCR_LIST_FIELDS = ["firmware_pcrs", "seal_pcrs"]


def _toml(table: dict[str, dict[str, object]]) -> str:
    """A tiny TOML writer: JSON scalars and lists of them are valid TOML values."""
    lines = []
    for section, values in table.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in values.items()]
    return "\n".join(lines) + "\n"


def _real() -> dict[str, dict[str, object]]:
    return tomllib.loads(BOARD_FILE.read_text())


def test_the_real_board_file_parses() -> None:
    config = parse_board(BOARD_FILE.read_text())
    assert config == BoardConfig(
        name="qemu-swtpm",
        description="QEMU q35, OVMF (UEFI), swtpm TPM 2.0: the development board",
        console_device="/dev/ttyS0",
        columns=80,
        rows=24,
        runtime_pcr=9,
        firmware_pcrs=(0, 1, 2, 3, 4, 5, 6, 7, 9),
        seal_pcrs=(0, 1, 2, 3, 4, 7, 9),
        modules_pcr=5,
        kernel_release="6.1.0-56-amd64",
        disk_lvm=True,
    )
    assert config.runtime_pcr in config.seal_pcrs


def test_load_board_reads_the_json_the_build_writes(tmp_path: Path) -> None:
    import json
    import tomllib

    path = tmp_path / "board.json"
    path.write_text(json.dumps(tomllib.loads(BOARD_FILE.read_text())))
    assert load_board(str(path)) == parse_board(BOARD_FILE.read_text())


@pytest.mark.parametrize("content", ["", "{", "[1, 2]", '{"board": 1}'])
def test_a_damaged_board_json_is_named(tmp_path: Path, content: str) -> None:
    path = tmp_path / "board.json"
    path.write_text(content)
    with pytest.raises(ConfigError):
        load_board(str(path))


def test_load_board_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="missing"):
        load_board(str(tmp_path / "board.toml"))


def test_round_trip_through_the_tiny_writer() -> None:
    assert parse_board(_toml(_real())) == parse_board(BOARD_FILE.read_text())


def test_lists_are_sorted_and_deduplicated() -> None:
    table = _real()
    table["tpm"]["seal_pcrs"] = [9, 7, 0, 7, 4]
    assert parse_board(_toml(table)).seal_pcrs == (0, 4, 7, 9)


def test_seal_pcrs_must_include_the_runtime_pcr() -> None:
    table = _real()
    table["tpm"]["seal_pcrs"] = [0, 7]
    with pytest.raises(ConfigError, match="must include runtime_pcr 9"):
        parse_board(_toml(table))


@pytest.mark.parametrize(("section", "key"), REQUIRED, ids=[f"{s}.{k}" for s, k in REQUIRED])
def test_missing_field_is_named(section: str, key: str) -> None:
    table = _real()
    del table[section][key]
    with pytest.raises(ConfigError, match=rf"\[{section}\] {key} is missing"):
        parse_board(_toml(table))


@pytest.mark.parametrize("section", ["board", "console", "tpm", "kernel"])
def test_missing_section_is_named(section: str) -> None:
    table = _real()
    del table[section]
    with pytest.raises(ConfigError, match=rf"\[{section}\]"):
        parse_board(_toml(table))


def test_section_that_is_not_a_table() -> None:
    text = _toml({k: v for k, v in _real().items() if k != "tpm"}).replace(
        "[board]", "tpm = 5\n[board]"
    )
    with pytest.raises(ConfigError, match=r"\[tpm\] runtime_pcr"):
        parse_board(text)


BAD_PCRS = [24, -1, "9", True, False, 9.0, [9]]


@pytest.mark.parametrize("field", PCR_FIELDS)
@pytest.mark.parametrize("value", BAD_PCRS, ids=repr)
def test_bad_pcr_is_named(field: str, value: object) -> None:
    table = _real()
    table["tpm"][field] = value
    with pytest.raises(ConfigError, match=rf"\[tpm\] {field}.*not a PCR number"):
        parse_board(_toml(table))


@pytest.mark.parametrize("field", PCR_LIST_FIELDS)
@pytest.mark.parametrize("value", [v for v in BAD_PCRS if not isinstance(v, list)], ids=repr)
def test_bad_pcr_in_a_list_is_named(field: str, value: object) -> None:
    table = _real()
    table["tpm"][field] = [0, value]
    with pytest.raises(ConfigError, match=rf"\[tpm\] {field}.*not a PCR number"):
        parse_board(_toml(table))


@pytest.mark.parametrize("field", PCR_LIST_FIELDS)
@pytest.mark.parametrize("value", [7, "0,1,2", 1.5], ids=repr)
def test_pcr_list_that_is_not_a_list_is_named(field: str, value: object) -> None:
    table = _real()
    table["tpm"][field] = value
    with pytest.raises(ConfigError, match=rf"\[tpm\] {field}: expected a non-empty list"):
        parse_board(_toml(table))


@pytest.mark.parametrize("field", ["columns", "rows"])
@pytest.mark.parametrize("value", [0, 19, 1001, "80", True])
def test_bad_terminal_size_is_named(field: str, value: object) -> None:
    table = _real()
    table["console"][field] = value
    with pytest.raises(ConfigError, match=rf"\[console\] {field}.*not a terminal size"):
        parse_board(_toml(table))


@pytest.mark.parametrize(
    "text", ["[board\nname = 1\n", "[tpm]\nruntime_pcr = \n", "[tpm]\nx = 1\nx = 2\n"]
)
def test_invalid_toml(text: str) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        parse_board(text)


def test_disk_lvm_is_off_when_absent() -> None:
    table = _real()
    del table["disk"]
    assert parse_board(_toml(table)).disk_lvm is False
    table["disk"] = {}
    assert parse_board(_toml(table)).disk_lvm is False
    table["disk"] = {"lvm": False}
    assert parse_board(_toml(table)).disk_lvm is False


@pytest.mark.parametrize("value", ["true", 1, 0, "yes", [True]], ids=repr)
def test_disk_lvm_must_be_a_boolean(value: object) -> None:
    table = _real()
    table["disk"] = {"lvm": value}
    with pytest.raises(ConfigError, match=r"\[disk\] lvm: .* is not true or false"):
        parse_board(_toml(table))


def test_an_unknown_disk_key_is_named() -> None:
    # a misspelt key would otherwise leave lvm out of the image in silence
    table = _real()
    table["disk"] = {"lvm2": True}
    with pytest.raises(ConfigError, match=r"\[disk\] has no key 'lvm2'"):
        parse_board(_toml(table))


def test_disk_that_is_not_a_table() -> None:
    text = _toml({k: v for k, v in _real().items() if k != "disk"}).replace(
        "[board]", "disk = true\n[board]"
    )
    with pytest.raises(ConfigError, match=r"\[disk\] must be a table"):
        parse_board(text)


def test_config_error_is_a_value_error() -> None:
    assert issubclass(ConfigError, ValueError)


def test_every_board_kernel_zeroes_freed_memory() -> None:
    # The runtime exits before kexec -e so that the secrets its memory held are
    # freed; only init_on_free=1 makes freed mean zeroed for the next kernel.
    boards = sorted(BOARD_FILE.parents[1].glob("*/board.toml"))
    assert boards
    for board in boards:
        cmdline = tomllib.loads(board.read_text())["kernel"]["cmdline"].split()
        assert "init_on_free=1" in cmdline, board
