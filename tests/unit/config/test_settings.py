"""Settings: Heads' config format read without a shell, typed keys, layering,
and the atomic rewrite of the owner's file (runtime/config/)."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from runtime.config import (
    SCHEMA,
    Layer,
    Problem,
    SettingError,
    Settings,
    load_settings,
    set_user_value,
)
from runtime.config.config_file import (
    LineError,
    format_assignment,
    parse_config,
    parse_line,
)
from runtime.config.heads_keys import IGNORED, ONLY_DEFAULT
from tests.conftest import REPO_ROOT, data_dir


def write(tmp_path: Path, name: str, text: str | bytes) -> str:
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return str(path)


def load_one(tmp_path: Path, text: str | bytes):
    path = write(tmp_path, "config.user", text)
    return load_settings([Layer("your settings", path)])


def errors(problems: list[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity == "error"]


# --- the line format ---------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('export CONFIG_TPM="y"', ("CONFIG_TPM", "y")),
        ("CONFIG_TPM=y", ("CONFIG_TPM", "y")),
        ("CONFIG_TPM='y'", ("CONFIG_TPM", "y")),
        ("export\tCONFIG_TPM=y", ("CONFIG_TPM", "y")),
        ("  CONFIG_TPM=y   # trailing comment", ("CONFIG_TPM", "y")),
        ('CONFIG_X="a b  c"', ("CONFIG_X", "a b  c")),
        ('CONFIG_X="say \\"hi\\" \\\\o/"', ("CONFIG_X", 'say "hi" \\o/')),
        ("CONFIG_X='$HOME `x` \\n'", ("CONFIG_X", "$HOME `x` \\n")),
        ("CONFIG_X=", ("CONFIG_X", "")),
        ('CONFIG_X=""', ("CONFIG_X", "")),
        ("CONFIG_X=/dev/ttyS1", ("CONFIG_X", "/dev/ttyS1")),
        ("CONFIG_X=serial:/dev/ttyS1", ("CONFIG_X", "serial:/dev/ttyS1")),
        ('CONFIG_X="a#b"', ("CONFIG_X", "a#b")),
    ],
)
def test_accepted_lines(line: str, expected: tuple[str, str]) -> None:
    assert parse_line(line) == expected


@pytest.mark.parametrize("line", ["", "   ", "# comment", "   # indented comment"])
def test_blank_and_comment_lines(line: str) -> None:
    assert parse_line(line) is None


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ('CONFIG_X="$(reboot)"', "expansion"),
        ("CONFIG_X=$(reboot)", "expansion"),
        ('CONFIG_X="`reboot`"', "command substitution"),
        ("CONFIG_X=`reboot`", "command substitution"),
        ('CONFIG_X="$HOME"', "single quotes"),
        ("CONFIG_X=${HOME}", "expansion"),
        ("CONFIG_X=y; reboot", "needs quotes"),
        ('CONFIG_X="y"; reboot', "right after the closing quote"),
        ('CONFIG_X="y" ; reboot', "after the value"),
        ("CONFIG_X=y && reboot", "after the value"),
        ("CONFIG_X=y | tee", "after the value"),
        ("CONFIG_X=a b", "after the value"),
        ('CONFIG_X="a"b', "right after the closing quote"),
        ("CONFIG_X='a'\"b\"", "right after the closing quote"),
        ('CONFIG_X="unterminated', 'closing " is missing'),
        ("CONFIG_X='unterminated", "closing ' is missing"),
        ('CONFIG_X="a\\nb"', "escape \\n is not supported"),
        ('CONFIG_X="a\\$b"', "escape \\$ is not supported"),
        ('CONFIG_X="a\\', "escape \\ at the end"),
        ("CONFIG_X=a*", "needs quotes"),
        ("CONFIG_X=~/x", "needs quotes"),
        ("CONFIG_X = y", "spaces around '='"),
        ("CONFIG_X= y", "spaces around '='"),
        ("CONFIG_X =y", "spaces around '='"),
        ("config_tpm=y", "did you mean CONFIG_TPM?"),
        ("CONFIG_=y", "not a setting name"),
        ("GIT_HASH=abc", "not a setting name"),
        ("CONFIG_X-Y=1", "not a setting name"),
        ("export CONFIG_X", "not a setting"),
        ("export", "not a setting"),
        ("declare -x CONFIG_X=y", "not a setting name"),
        ("rm -rf /", "not a setting"),
        ("CONFIG_X=y\rreboot", "control or invisible"),
        ('CONFIG_X="a\x1b[2Jb"', "control or invisible"),
        ('CONFIG_X="a\u200bb"', "control or invisible"),
    ],
)
def test_refused_lines(line: str, words: str) -> None:
    with pytest.raises(LineError) as err:
        parse_line(line)
    assert words in str(err.value)


def test_problems_name_file_and_line(tmp_path: Path) -> None:
    parsed = parse_config(b"# fine\nCONFIG_TPM=y\nCONFIG_X=$(reboot)\n", "/x/config.user")
    assert [a.key for a in parsed.assignments] == ["CONFIG_TPM"]
    [problem] = parsed.problems
    assert (problem.path, problem.line, problem.severity) == ("/x/config.user", 3, "error")
    assert str(problem).startswith("Error in /x/config.user, line 3: ")
    assert "skipped" in str(problem)


def test_newline_inside_a_value_cannot_smuggle_a_second_line() -> None:
    parsed = parse_config(b'CONFIG_BRAND_NAME="x\nCONFIG_RESTRICTED_BOOT=n"\n', "f")
    # The first line is unterminated; the second is refused for its stray quote.
    assert parsed.assignments == []
    assert [p.line for p in parsed.problems] == [1, 2]


def test_not_utf8_and_crlf(tmp_path: Path) -> None:
    parsed = parse_config(b'CONFIG_TPM=y\r\nCONFIG_BRAND_NAME="\xff"\r\n', "f")
    assert [a.key for a in parsed.assignments] == ["CONFIG_TPM"]
    assert [p.severity for p in parsed.problems] == ["warning", "error"]
    assert "Windows line ends" in parsed.problems[0].message
    assert "not UTF-8" in parsed.problems[1].message


def test_duplicate_key_warns_and_the_later_wins(tmp_path: Path) -> None:
    loaded = load_one(tmp_path, "CONFIG_AUTO_BOOT_TIMEOUT=5\n\nCONFIG_AUTO_BOOT_TIMEOUT=10\n")
    assert loaded.settings.auto_boot_timeout == 10
    [problem] = loaded.problems
    assert (problem.severity, problem.line) == ("warning", 3)
    assert problem.key == "CONFIG_AUTO_BOOT_TIMEOUT"
    assert "first on line 1" in problem.message
    assert loaded.sources["CONFIG_AUTO_BOOT_TIMEOUT"].line == 3


# --- value types -----------------------------------------------------------

GOOD = [
    ("CONFIG_BASIC", "y", True),
    ("CONFIG_BASIC", "n", False),
    ("CONFIG_BASIC", "", False),
    ("CONFIG_AUTO_BOOT_TIMEOUT", "0", 0),
    ("CONFIG_AUTO_BOOT_TIMEOUT", "600", 600),
    ("CONFIG_AUTO_BOOT_TIMEOUT", "05", 5),
    ("CONFIG_AUTO_BOOT_TIMEOUT", "", None),
    ("CONFIG_PRIMARY_KEY_TYPE", "ecc", "ecc"),
    ("CONFIG_PRIMARY_KEY_TYPE", "rsa", "rsa"),
    ("CONFIG_BOOT_DEV", "/dev/nvme0n1p1", "/dev/nvme0n1p1"),
    ("CONFIG_BOOT_DEV", "", None),
    ("CONFIG_KEYBOARD_KEYMAP", "/usr/lib/kbd/keymaps/de.map", "/usr/lib/kbd/keymaps/de.map"),
    ("CONFIG_BOOT_KERNEL_ADD", "console=ttyS0  quiet", ("console=ttyS0", "quiet")),
    ("CONFIG_BOOT_KERNEL_REMOVE", "", ()),
    ("CONFIG_ROOT_DIRLIST", "bin usr/lib", ("bin", "usr/lib")),
    ("CONFIG_BRAND_NAME", "Ünïcode brand $1", "Ünïcode brand $1"),
    (
        "CONFIG_FLASH_OPTIONS",
        "flashprog --progress --programmer internal",
        "flashprog --progress --programmer internal",
    ),
    ("CONFIG_HOTP_TOKEN", "auto", "auto"),
    ("CONFIG_HOTP_TOKEN", "none", "none"),
    ("CONFIG_HOTP_TOKEN", "serial:/dev/ttyS1", "serial:/dev/ttyS1"),
    ("CONFIG_TIME_ZONE", "UTC", "UTC"),
    ("CONFIG_TIME_ZONE", "JST-9", "JST-9"),
    ("CONFIG_TIME_ZONE", "CET-1CEST,M3.5.0,M10.5.0/3", "CET-1CEST,M3.5.0,M10.5.0/3"),
    ("CONFIG_TIME_ZONE", "<+0530>-5:30", "<+0530>-5:30"),
    ("CONFIG_RECOVERY_KEY", "R", "R"),
    ("CONFIG_RECOVERY_KEY", "!", "!"),
]


@pytest.mark.parametrize(("key", "text", "value"), GOOD)
def test_good_values(tmp_path: Path, key: str, text: str, value: object) -> None:
    assert SCHEMA[key].kind.parse(text) == value
    loaded = load_one(tmp_path, format_assignment(key, text) + "\n")
    if key in ONLY_DEFAULT and value != SCHEMA[key].kind.parse(SCHEMA[key].default):
        # a value the runtime does not honour: reported, and the default stays
        [problem] = loaded.problems
        assert (problem.key, problem.severity) == (key, "warning")
        assert problem.message.startswith("not supported: ")
        assert loaded.settings.text_of(key) == SCHEMA[key].default
        return
    assert loaded.problems == []
    assert loaded.settings.value_of(key) == value
    assert loaded.settings.text_of(key) == text


BAD = [
    ("CONFIG_TPM", "yes", "write y for on"),
    ("CONFIG_TPM", "true", "write y for on"),
    ("CONFIG_TPM", "1", "write y for on"),
    ("CONFIG_TPM", "Y", "write y for on"),
    ("CONFIG_TPM", "false", "write n for off"),
    ("CONFIG_TPM", "maybe", "not y or n"),
    ("CONFIG_AUTO_BOOT_TIMEOUT", "601", "out of range"),
    ("CONFIG_AUTO_BOOT_TIMEOUT", "-1", "not a whole number"),
    ("CONFIG_AUTO_BOOT_TIMEOUT", "+5", "not a whole number"),
    ("CONFIG_AUTO_BOOT_TIMEOUT", " 5", "not a whole number"),
    ("CONFIG_AUTO_BOOT_TIMEOUT", "1_0", "not a whole number"),
    ("CONFIG_AUTO_BOOT_TIMEOUT", "5s", "not a whole number"),
    ("CONFIG_AUTO_BOOT_TIMEOUT", "٥", "not a whole number"),
    ("CONFIG_PRIMARY_KEY_TYPE", "RSA", "not one of: rsa, ecc"),
    ("CONFIG_BOOT_DEV", "sda1", "not a path under /dev/"),
    ("CONFIG_BOOT_DEV", "/dev/../etc/shadow", "contains . or .."),
    ("CONFIG_BOOT_DEV", "/dev/sd a", "not a usable path"),
    ("CONFIG_KEYBOARD_KEYMAP", "us.map", "not a path under /"),
    ("CONFIG_ROOT_DIRLIST", "/etc", "relative to /"),
    ("CONFIG_ROOT_DIRLIST", "usr/../etc", "without '..'"),
    ("CONFIG_BOARD_NAME", "x" * 81, "longer than 80"),
    ("CONFIG_HOTP_TOKEN", "serial:ttyS1", "not a path under /dev/tty"),
    ("CONFIG_HOTP_TOKEN", "usb", "not auto, none or serial"),
    ("CONFIG_TIME_ZONE", "", "not a POSIX TZ rule"),
    ("CONFIG_TIME_ZONE", "UTC; reboot", "not a POSIX TZ rule"),
    ("CONFIG_TIME_ZONE", "Europe/Berlin", "no zone database"),
    ("CONFIG_TIME_ZONE", "CET-1CEST", "not a POSIX TZ rule"),
    ("CONFIG_TIME_ZONE", "CET-25", "more than 24 hours"),
    ("CONFIG_TIME_ZONE", "CET-1CEST,M0.5.0,M10.5.0/3", "not a POSIX TZ rule"),
    ("CONFIG_TIME_ZONE", "CET-1CEST,M13.5.0,M10.5.0/3", "not a POSIX TZ rule"),
    ("CONFIG_TIME_ZONE", "CET-1CEST,J0,J300", "not a POSIX TZ rule"),
    ("CONFIG_TIME_ZONE", "CET-1CEST,J366,J300", "not a POSIX TZ rule"),
    ("CONFIG_TIME_ZONE", "CET-1CEST,400,300", "not a POSIX TZ rule"),
    ("CONFIG_TIME_ZONE", "<" + "A" * 70 + ">-1", "longer than 64"),
    ("CONFIG_RECOVERY_KEY", "rr", "not a single printable"),
    ("CONFIG_RECOVERY_KEY", " ", "not a single printable"),
    ("CONFIG_RECOVERY_KEY", "", "not a single printable"),
]


@pytest.mark.parametrize(("key", "text", "words"), BAD)
def test_bad_values_fall_back_and_are_reported(
    tmp_path: Path, key: str, text: str, words: str
) -> None:
    defaults = write(tmp_path, "defaults.config", "")
    loaded = load_settings(
        [
            Layer("project defaults", defaults),
            Layer("your settings", write(tmp_path, "user", format_assignment(key, text))),
        ]
    )
    [problem] = loaded.problems
    assert (problem.key, problem.line, problem.severity) == (key, 1, "error")
    assert words in problem.message
    assert "expected" in problem.message and "Kept" in problem.message
    assert loaded.settings.text_of(key) == SCHEMA[key].default
    assert loaded.sources[key].label == "built-in default"


def test_malformed_override_keeps_the_board_value(tmp_path: Path) -> None:
    board = write(tmp_path, "board.config", "CONFIG_TPM=y\nCONFIG_TPM2_TOOLS=y\n")
    user = write(tmp_path, "config.user", 'export CONFIG_TPM="yes"\n')
    loaded = load_settings([Layer("board defaults", board), Layer("your settings", user)])
    assert loaded.settings.tpm is True
    [problem] = loaded.problems
    assert f"Kept 'y' from the board defaults ({board}, line 1)" in problem.message
    assert str(problem).startswith(f"Error in {user}, line 1: CONFIG_TPM: 'yes' is not y or n")


def test_every_type_is_checked_by_mypy_shape() -> None:
    settings = Settings()
    timeout: int | None = settings.auto_boot_timeout
    restricted: bool = settings.restricted_boot
    words: tuple[str, ...] = settings.boot_kernel_add
    assert (timeout, restricted, words) == (None, False, ())
    assert settings.hotp_serial_device is None
    assert Settings({"CONFIG_HOTP_TOKEN": "serial:/dev/ttyS1"}).hotp_serial_device == "/dev/ttyS1"
    with pytest.raises(SettingError, match="CONFIG_TPM"):
        Settings({"CONFIG_TPM": "yes"})
    with pytest.raises(SettingError, match="not settings: CONFIG_NOPE"):
        Settings({"CONFIG_NOPE": "1"})


# --- keys: unknown, ignored, aliases ---------------------------------------


def test_unknown_key_is_an_error_with_a_suggestion(tmp_path: Path) -> None:
    loaded = load_one(tmp_path, "CONFIG_AUTO_BOOT_TIMOUT=5\nCONFIG_ZZZZZZZZ=1\n")
    first, second = loaded.problems
    assert first.severity == "error"
    assert "Did you mean CONFIG_AUTO_BOOT_TIMEOUT?" in first.message
    assert "Did you mean" not in second.message
    assert "no effect" in second.message
    assert loaded.settings.auto_boot_timeout is None


@pytest.mark.parametrize(
    "key", [*sorted(IGNORED), "CONFIG_WARNING_BG_COLOR", "CONFIG_ERROR_TEXT_BG_COLOR"]
)
def test_heads_keys_not_supported_are_noted_not_errors(tmp_path: Path, key: str) -> None:
    loaded = load_one(tmp_path, f'export {key}="whatever"\n')
    [problem] = loaded.problems
    assert problem.severity == "note"
    assert problem.message.startswith("ignored: ")


def test_old_name_of_basic_is_read_as_basic(tmp_path: Path) -> None:
    loaded = load_one(tmp_path, "CONFIG_PUREBOOT_BASIC=n\n")
    assert loaded.sources["CONFIG_BASIC"].line == 1
    assert [p.severity for p in loaded.problems] == ["note"]
    loaded = load_one(tmp_path, "CONFIG_PUREBOOT_BASIC=y\n")
    assert loaded.settings.basic is True
    assert [(p.key, p.severity) for p in loaded.problems] == [("CONFIG_PUREBOOT_BASIC", "note")]


def test_restricted_boot_turns_basic_mode_off(tmp_path: Path) -> None:
    loaded = load_one(tmp_path, "CONFIG_BASIC=y\nCONFIG_RESTRICTED_BOOT=y\n")
    assert loaded.settings.basic is True and loaded.settings.basic_mode is False
    [problem] = loaded.problems
    assert (problem.key, problem.severity, problem.line) == ("CONFIG_BASIC", "warning", 1)
    assert "Basic mode is off" in problem.message
    assert load_one(tmp_path, "CONFIG_BASIC=y\n").settings.basic_mode is True


def test_ignored_and_supported_sets_are_disjoint() -> None:
    assert not set(IGNORED) & set(SCHEMA)


# --- layering and sources -------------------------------------------------


def test_layers_later_wins_and_sources_are_recorded(tmp_path: Path) -> None:
    defaults = write(
        tmp_path,
        "defaults.config",
        'export CONFIG_BRAND_NAME="Proj"\nCONFIG_AUTO_BOOT_TIMEOUT=5\nCONFIG_TPM=n\n',
    )
    board = write(
        tmp_path, "board.config", "CONFIG_TPM=y\nCONFIG_TPM2_TOOLS=y\nCONFIG_AUTO_BOOT_TIMEOUT=10\n"
    )
    user = write(tmp_path, "config.user", "# mine\nCONFIG_AUTO_BOOT_TIMEOUT=\n")
    loaded = load_settings(
        [
            Layer("project defaults", defaults),
            Layer("board defaults", board),
            Layer("your settings", user, required=False),
        ]
    )
    assert loaded.problems == []
    s = loaded.settings
    assert (s.brand_name, s.tpm, s.auto_boot_timeout) == ("Proj", True, None)
    assert str(loaded.sources["CONFIG_BRAND_NAME"]) == f"project defaults ({defaults}, line 1)"
    assert str(loaded.sources["CONFIG_TPM"]) == f"board defaults ({board}, line 1)"
    assert str(loaded.sources["CONFIG_AUTO_BOOT_TIMEOUT"]) == f"your settings ({user}, line 2)"
    assert str(loaded.sources["CONFIG_BASIC"]) == "built-in default"
    rows = {row.key: row for row in loaded.rows()}
    assert list(rows) == list(SCHEMA)
    assert rows["CONFIG_AUTO_BOOT_TIMEOUT"].value == "off"
    assert rows["CONFIG_TPM"].value == "y"


def test_missing_files(tmp_path: Path) -> None:
    loaded = load_settings(
        [
            Layer("board defaults", str(tmp_path / "nope")),
            Layer("your settings", str(tmp_path / "none"), required=False),
        ]
    )
    [problem] = loaded.problems
    assert problem.severity == "warning" and "board defaults file is missing" in problem.message
    assert loaded.settings.tpm is False


def test_unreadable_file_is_reported(tmp_path: Path) -> None:
    loaded = load_settings([str(tmp_path)])  # a directory: IsADirectoryError
    [problem] = loaded.problems
    assert problem.severity == "error" and "cannot be read" in problem.message


def test_tpm_1_2_is_warned_about(tmp_path: Path) -> None:
    loaded = load_one(tmp_path, "CONFIG_TPM=y\n")
    [problem] = loaded.problems
    assert problem.severity == "warning" and "TPM 1.2" in problem.message


def test_project_defaults_file_states_every_built_in_default() -> None:
    path = str(REPO_ROOT / "etc" / "defaults.config")
    loaded = load_settings([Layer("project defaults", path)])
    assert loaded.problems == []
    for key, setting in SCHEMA.items():
        assert loaded.sources[key].path == path, f"{key} is missing from defaults.config"
        assert loaded.settings.text_of(key) == setting.default, key


def test_qemu_board_config() -> None:
    defaults = str(REPO_ROOT / "etc" / "defaults.config")
    board = str(REPO_ROOT / "etc" / "boards" / "qemu-swtpm" / "config")
    loaded = load_settings([Layer("project defaults", defaults), Layer("board defaults", board)])
    assert loaded.problems == []
    s = loaded.settings
    assert (s.board_name, s.tpm, s.tpm2_tools, s.hotp_token) == ("QEMU swtpm", True, True, "none")


# --- set_user_value ---------------------------------------------------------


def test_set_user_value_round_trip_keeps_other_lines(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "config.user",
        "# my settings\n"
        "export CONFIG_TPM=y   # kept as is\n"
        "\n"
        "CONFIG_AUTO_BOOT_TIMEOUT=5\n"
        "CONFIG_UNKNOWN_THING=1\n"
        "CONFIG_AUTO_BOOT_TIMEOUT=7\n"
        'export CONFIG_QUIET_MODE="y"',
    )  # no final line end
    set_user_value(path, "CONFIG_AUTO_BOOT_TIMEOUT", "30")
    set_user_value(path, "CONFIG_BRAND_NAME", 'Joe\'s "box"')
    # The later duplicate is dropped: it would override the new value.
    assert Path(path).read_text() == (
        "# my settings\n"
        "export CONFIG_TPM=y   # kept as is\n"
        "\n"
        'export CONFIG_AUTO_BOOT_TIMEOUT="30"\n'
        "CONFIG_UNKNOWN_THING=1\n"
        'export CONFIG_QUIET_MODE="y"\n'
        'export CONFIG_BRAND_NAME="Joe\'s \\"box\\""\n'
    )
    loaded = load_settings([path])
    assert loaded.settings.auto_boot_timeout == 30
    assert loaded.settings.brand_name == 'Joe\'s "box"'
    assert [p.key for p in loaded.problems] == ["CONFIG_UNKNOWN_THING", "CONFIG_TPM"]


def test_set_user_value_writes_heads_style_lines(tmp_path: Path) -> None:
    path = str(tmp_path / "config.user")
    set_user_value(path, "CONFIG_RESTRICTED_BOOT", "y")
    set_user_value(path, "CONFIG_BRAND_NAME", 'say "hi" \\o/')
    set_user_value(path, "CONFIG_TIME_ZONE", "CET-1CEST,M3.5.0,M10.5.0/3")
    set_user_value(path, "CONFIG_BOARD_NAME", "cost $5")
    assert Path(path).read_text() == (
        'export CONFIG_RESTRICTED_BOOT="y"\n'
        'export CONFIG_BRAND_NAME="say \\"hi\\" \\\\o/"\n'
        'export CONFIG_TIME_ZONE="CET-1CEST,M3.5.0,M10.5.0/3"\n'
        "export CONFIG_BOARD_NAME='cost $5'\n"
    )
    loaded = load_settings([path])
    assert loaded.problems == []
    assert loaded.settings.brand_name == 'say "hi" \\o/'
    assert loaded.settings.board_name == "cost $5"


def test_set_user_value_replaces_old_names_and_broken_lines(tmp_path: Path) -> None:
    path = write(tmp_path, "config.user", "CONFIG_PUREBOOT_BASIC=y\nCONFIG_BASIC=$(x)\n# end\n")
    set_user_value(path, "CONFIG_BASIC", "n")
    assert Path(path).read_text() == 'export CONFIG_BASIC="n"\n# end\n'


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("CONFIG_TPM", "yes", "not y or n"),
        ("CONFIG_AUTO_BOOT_TIMEOUT", "1000", "out of range"),
        ("CONFIG_BRAND_NAME", "a\nexport CONFIG_RESTRICTED_BOOT=n", "control characters"),
        ("CONFIG_BRAND_NAME", "it's $5", "both ' and $"),
        ("CONFIG_AUTO_BOOT_TIMOUT", "5", "Did you mean CONFIG_AUTO_BOOT_TIMEOUT?"),
        ("CONFIG_BOOTSCRIPT", "/bin/sh", "not used by this runtime"),
        ("CONFIG_FINALIZE_PLATFORM_LOCKING", "y", "not supported: the flash chip is NOT"),
        ("CONFIG_BOOT_REQ_HASH", "n", "not supported"),
    ],
)
def test_set_user_value_refuses(tmp_path: Path, key: str, value: str, words: str) -> None:
    path = write(tmp_path, "config.user", "# untouched\n")
    with pytest.raises(SettingError) as err:
        set_user_value(path, key, value)
    assert words in str(err.value) and "Nothing was saved" in str(err.value)
    assert Path(path).read_text() == "# untouched\n"


def test_set_user_value_failure_leaves_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, "config.user", "CONFIG_TPM=y\n")

    def broken_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(SettingError, match=r"No space left on device.*unchanged"):
        set_user_value(path, "CONFIG_TPM", "n")
    assert Path(path).read_text() == "CONFIG_TPM=y\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.user"]  # no temp left


def test_set_user_value_keeps_mode_and_foreign_bytes(tmp_path: Path) -> None:
    path = write(tmp_path, "config.user", b"# caf\xe9 (latin-1)\nCONFIG_TPM=y\n")
    os.chmod(path, 0o640)
    set_user_value(path, "CONFIG_TPM", "n")
    assert Path(path).read_bytes() == b'# caf\xe9 (latin-1)\nexport CONFIG_TPM="n"\n'
    assert os.stat(path).st_mode & 0o777 == 0o640


def test_set_user_value_survives_a_stale_temp_file(tmp_path: Path) -> None:
    path = write(tmp_path, "config.user", "")
    write(tmp_path, f".config.user.{os.getpid()}.tmp", "half-written by a crash")
    set_user_value(path, "CONFIG_TPM", "y")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.user"]


# --- the parser never raises ------------------------------------------------

_PIECES = [
    "export ",
    "CONFIG_",
    "TPM",
    "X",
    "=",
    '"',
    "'",
    "\\",
    "$",
    "(",
    ")",
    "`",
    ";",
    " ",
    "\t",
    "#",
    "y",
    "n",
    "5",
    "/dev/ttyS0",
    "\r",
    "\x00",
    "\x1b",
    "é",
    "\u2028",
    "config_",
    "&&",
    "|",
    "${",
    "}",
    "\n",
    "ÿ",
]


def test_random_lines_never_raise() -> None:
    rng = random.Random(20260720)
    for _ in range(3000):
        text = "".join(rng.choice(_PIECES) for _ in range(rng.randrange(0, 14)))
        data = text.encode("utf-8", "surrogatepass")
        if rng.random() < 0.1:
            data += bytes([rng.randrange(256)])
        lines = data.split(b"\n")
        parsed = parse_config(data, "random")
        assigned = {a.line: a for a in parsed.assignments}
        reported = {p.line for p in parsed.problems}
        # Every line is an assignment, a blank or comment line, or a reported problem.
        for number, raw in enumerate(lines, start=1):
            if number in assigned:
                a = assigned[number]
                assert parse_line(raw.removesuffix(b"\r").decode()) == (a.key, a.value)
            elif number not in reported:
                assert parse_line(raw.removesuffix(b"\r").decode()) is None


def test_random_values_write_back_exactly(tmp_path: Path) -> None:
    rng = random.Random(7)
    alphabet = "ab $`'\"\\#;()é\t\n/-_"
    for _ in range(500):
        value = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 10)))
        try:
            line = format_assignment("CONFIG_BRAND_NAME", value)
        except LineError:
            assert "\t" in value or "\n" in value or ("'" in value and set(value) & set("$`"))
            continue
        assert parse_line(line) == ("CONFIG_BRAND_NAME", value)


def test_random_files_load_without_exceptions(tmp_path: Path) -> None:
    rng = random.Random(99)
    keys = [*SCHEMA, *IGNORED, "CONFIG_NOPE", "CONFIG_PUREBOOT_BASIC"]
    values = [
        "y",
        "n",
        "",
        "yes",
        "5",
        "601",
        "/dev/sda1",
        "rsa",
        "x y",
        "$(x)",
        "serial:/dev/ttyS0",
    ]
    for _ in range(200):
        lines = []
        for _ in range(rng.randrange(0, 12)):
            quote = rng.choice(['"', "'", ""])
            lines.append(
                f"{rng.choice(['export ', ''])}{rng.choice(keys)}="
                f"{quote}{rng.choice(values)}{quote}"
            )
        loaded = load_one(tmp_path, "\n".join(lines))
        assert all(isinstance(p, Problem) for p in loaded.problems)
        loaded.rows()


def test_a_heads_config_user_carries_over(tmp_path: Path) -> None:
    # Lines as Heads' own tools write them (set_config, the OEM reset).
    loaded = load_one(
        tmp_path,
        "\n".join(
            [
                'export CONFIG_TPM="y"',
                'export CONFIG_TPM2_TOOLS="y"',
                'export CONFIG_BOOT_DEV="/dev/nvme0n1p1"',
                'export CONFIG_HAVE_GPG_KEY_BACKUP="y"',
                'export CONFIG_AUTO_BOOT_TIMEOUT="5"',
                'export CONFIG_PUREBOOT_BASIC="n"',
                'export CONFIG_USER_USB_KEYBOARD="y"',
                'export CONFIG_GPG_ALGO="p256"',
                'export CONFIG_ROOT_DIRLIST="bin boot lib sbin usr"',
                'export CONFIG_ROOT_DEV="/dev/sda2"',
                'export CONFIG_PRIMARY_KEY_TYPE="ecc"',
                "",
            ]
        ),
    )
    assert errors(loaded.problems) == []
    # the old Basic name and two unused keys are notes
    assert [(p.key, p.severity) for p in loaded.problems] == [
        ("CONFIG_PUREBOOT_BASIC", "note"),
        ("CONFIG_USER_USB_KEYBOARD", "note"),
        ("CONFIG_GPG_ALGO", "note"),
    ]
    s = loaded.settings
    assert (s.boot_dev, s.have_gpg_key_backup, s.auto_boot_timeout) == ("/dev/nvme0n1p1", True, 5)
    assert (s.root_dev, s.primary_key_type, s.basic) == ("/dev/sda2", "ecc", False)


# --- Heads-style configs: the project's own, and any in the corpora ---------------


def _heads_configs() -> list[Path]:
    repo = data_dir().parents[1]
    found = [repo / "etc" / "defaults.config", *sorted((repo / "etc" / "boards").glob("*/config"))]
    for path in sorted(data_dir().rglob("*")):
        if not path.is_file() or path.stat().st_size > 1_000_000:
            continue
        head = path.read_bytes()[:4096]
        if b"CONFIG_" in head and (
            b"export CONFIG_" in head or b"\nCONFIG_" in head or head.startswith(b"CONFIG_")
        ):
            found.append(path)
    return found


def test_heads_configs_parse_or_report() -> None:
    configs = _heads_configs()
    assert configs
    for path in configs:
        loaded = load_settings([str(path)])
        assert all(isinstance(p, Problem) for p in loaded.problems), path


def test_hotp_is_enabled_only_with_hotpkey_and_a_named_token() -> None:
    assert not Settings({}).hotp_enabled
    assert Settings({"CONFIG_HOTPKEY": "y"}).hotp_enabled  # token "auto"
    assert not Settings({"CONFIG_HOTPKEY": "y", "CONFIG_HOTP_TOKEN": "none"}).hotp_enabled
    assert not Settings({"CONFIG_HOTP_TOKEN": "serial:/dev/ttyS1"}).hotp_enabled
