"""Every CONFIG_* key Heads documents is either honoured, with a check of its
effect, or reported when a file sets it: none is accepted without a word.

HEADS_KEYS is the list from Heads' configuration reference (its board files,
its config.user writers and its build settings an owner might copy over).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from runtime.config import SCHEMA, Layer, LoadedSettings, load_settings
from runtime.config.heads_keys import ALIASES, ONLY_DEFAULT, ignored_reason
from tests.conftest import REPO_ROOT

HEADS_KEYS = (
    "CONFIG_AUTOMATIC_POWERON",
    "CONFIG_AUTO_BOOT_TIMEOUT",
    "CONFIG_BASIC",
    "CONFIG_BASIC_NO_AUTOMATIC_DEFAULT",
    "CONFIG_BASIC_USB_AUTOBOOT",
    "CONFIG_BOARD",
    "CONFIG_BOARD_NAME",
    "CONFIG_BOOTSCRIPT",
    "CONFIG_BOOTSCRIPT_NETWORK",
    "CONFIG_BOOT_DEV",
    "CONFIG_BOOT_EXTRA_TTYS",
    "CONFIG_BOOT_KERNEL_ADD",
    "CONFIG_BOOT_KERNEL_REMOVE",
    "CONFIG_BOOT_RECOVERY_SERIAL",
    "CONFIG_BOOT_REQ_HASH",
    "CONFIG_BOOT_REQ_ROLLBACK",
    "CONFIG_BOOT_STATIC_IP",
    "CONFIG_BRAND_NAME",
    "CONFIG_CBFS_SIZE",
    "CONFIG_CBFS_VIA_FLASHPROG",
    "CONFIG_COREBOOT",
    "CONFIG_COREBOOT_ROMSIZE_KB",
    "CONFIG_DEBUG_OUTPUT",
    "CONFIG_ENABLE_FUNCTION_TRACING_OUTPUT",
    "CONFIG_ERROR_BG_COLOR",
    "CONFIG_ERROR_TEXT_BG_COLOR",
    "CONFIG_FINALIZE_PLATFORM_LOCKING",
    "CONFIG_FLASH_OPTIONS",
    "CONFIG_GPG_ALGO",
    "CONFIG_GPG_KEY_BACKUP_IN_USE",
    "CONFIG_HAVE_GPG_KEY_BACKUP",
    "CONFIG_HOTPKEY",
    "CONFIG_IGNORE_ROLLBACK",
    "CONFIG_KEYBOARD_KEYMAP",
    "CONFIG_LINUXBOOT",
    "CONFIG_LINUX_USB_COMPANION_CONTROLLER",
    "CONFIG_OPENSSL",
    "CONFIG_PCR",
    "CONFIG_PCR_BOOT_MODE",
    "CONFIG_PCR_SRTM",
    "CONFIG_PRIMARY_KEY_TYPE",
    "CONFIG_PUREBOOT_BASIC",
    "CONFIG_QUIET_MODE",
    "CONFIG_RESTRICTED_BOOT",
    "CONFIG_ROOT_CHECK_AT_BOOT",
    "CONFIG_ROOT_DEV",
    "CONFIG_ROOT_DIRLIST",
    "CONFIG_SUPPORT_BLOB_JAIL",
    "CONFIG_TOTP_SKIP_QRCODE",
    "CONFIG_TPM",
    "CONFIG_TPM2_CAPTURE_PCAP",
    "CONFIG_TPM2_TOOLS",
    "CONFIG_TPM2_TSS",
    "CONFIG_TPM_DISK_UNLOCK_KEY",
    "CONFIG_TPM_NO_LUKS_DISK_UNLOCK",
    "CONFIG_USB_KEYBOARD_REQUIRED",
    "CONFIG_USER_USB_KEYBOARD",
    "CONFIG_USE_BLOB_JAIL",
    "CONFIG_WARNING_BG_COLOR",
    "CONFIG_WARNING_TEXT_BG_COLOR",
)

#: Keys this runtime honours: each has an effect check below, which loads a
#: config.user with another value than the default through load_settings and
#: looks at what the code that consumes the setting does with it.
HONOURED = frozenset(
    {
        "CONFIG_AUTO_BOOT_TIMEOUT",
        "CONFIG_BASIC",
        "CONFIG_BOARD_NAME",
        "CONFIG_BRAND_NAME",
        "CONFIG_BOOT_DEV",
        "CONFIG_BOOT_KERNEL_ADD",
        "CONFIG_BOOT_KERNEL_REMOVE",
        "CONFIG_DEBUG_OUTPUT",
        "CONFIG_QUIET_MODE",
        "CONFIG_HAVE_GPG_KEY_BACKUP",
        "CONFIG_HOTPKEY",
        "CONFIG_IGNORE_ROLLBACK",
        "CONFIG_PRIMARY_KEY_TYPE",
        "CONFIG_RESTRICTED_BOOT",
        "CONFIG_TOTP_SKIP_QRCODE",
        "CONFIG_BOOT_RECOVERY_SERIAL",
        "CONFIG_KEYBOARD_KEYMAP",
        "CONFIG_ROOT_DEV",
        "CONFIG_ROOT_DIRLIST",
        "CONFIG_ROOT_CHECK_AT_BOOT",
        "CONFIG_TPM_DISK_UNLOCK_KEY",
        "CONFIG_TPM_NO_LUKS_DISK_UNLOCK",
    }
)
#: A description of the board: a TPM 2.0 that answers is used whatever they
#: say; a CONFIG_TPM that disagrees with CONFIG_TPM2_TOOLS is reported.
DESCRIPTIVE = frozenset({"CONFIG_TPM", "CONFIG_TPM2_TOOLS"})
#: Their restrictive values held by construction while a feature was missing.
BY_CONSTRUCTION: frozenset[str] = frozenset()
#: The runtime's own keys, honoured too (effect checks below).
OWN = frozenset(
    {
        "CONFIG_AUTO_BOOT_TOTP_ONLY",
        "CONFIG_HOTP_TOKEN",
        "CONFIG_TIME_ZONE",
        "CONFIG_RECOVERY_KEY",
        "CONFIG_TPM_PRIMARY_NAME",
    }
)


def _load(tmp_path: Path, line: str) -> LoadedSettings:
    path = tmp_path / "config.user"
    path.write_text(line + "\n")
    return load_settings([Layer("your settings", str(path))])


def _other_value(key: str) -> str:
    """A valid value that is not the default."""
    setting = SCHEMA[key]
    default = setting.kind.parse(setting.default)
    for text in (
        "y",
        "n",
        "/dev/ttyS0",
        "5",
        "rsa",
        "ecc",
        "bin usr",
        "flashprog -p internal",
        "JST-9",
        "x",
    ):
        try:
            if setting.kind.parse(text) != default:
                return text
        except ValueError:
            continue
    raise AssertionError(f"no other value for {key}")


def test_every_heads_key_is_classified() -> None:
    for key in HEADS_KEYS:
        name = ALIASES.get(key, key)
        kinds = [
            name in HONOURED,
            name in DESCRIPTIVE,
            name in BY_CONSTRUCTION,
            name in ONLY_DEFAULT,
            ignored_reason(name) is not None,
        ]
        assert sum(kinds) == 1, (
            f"{key}: exactly one of honoured, descriptive, by "
            "construction, not supported or ignored"
        )


def test_every_runtime_setting_is_classified() -> None:
    """The runtime's own keys too: a setting that does nothing is a lie on the
    Configuration page."""
    known = HONOURED | DESCRIPTIVE | BY_CONSTRUCTION | OWN | set(ONLY_DEFAULT)
    assert set(SCHEMA) == known


def test_every_honoured_key_has_an_effect_check() -> None:
    assert set(EFFECTS) == HONOURED | OWN


# --- the effects: another value than the default changes what the code does ---


def _facts(loaded: LoadedSettings) -> dict[str, object]:
    from runtime.state.platform_start import settings_facts

    return settings_facts(loaded, "Board file name")


def _platform(loaded: LoadedSettings) -> Any:
    from runtime.state.device_platform import DevicePlatform

    platform = DevicePlatform()
    platform.loaded = loaded
    return platform


def _boot_dev(loaded: LoadedSettings, monkeypatch: pytest.MonkeyPatch) -> object:
    from runtime.devices import boot_device

    asked: list[str] = []

    def find_boot(preferred: str) -> boot_device.BootSearch:
        asked.append(preferred)
        return boot_device.BootSearch(problem="none found")

    monkeypatch.setattr(boot_device, "find_boot", find_boot)
    _platform(loaded).find_boot()
    return asked[0]


def _key_type(loaded: LoadedSettings, monkeypatch: pytest.MonkeyPatch) -> object:
    from runtime.tpm import ownership

    used: list[str] = []

    def reset_tpm(tpm: object, owner: bytes, lockout: object, *, key_type: str) -> str:
        used.append(key_type)
        return "lockout"

    monkeypatch.setattr(ownership, "reset_tpm", reset_tpm)
    platform = _platform(loaded)
    platform.tpm = SimpleNamespace(identity_pinned=False)
    assert platform.reset_tpm(bytearray(b"owner passphrase"), None).problem == ""
    return used[0]


def _recovery_key_required(loaded: LoadedSettings, monkeypatch: pytest.MonkeyPatch) -> object:
    from runtime.recovery import __main__ as recovery

    monkeypatch.setattr("runtime.config.load_settings", lambda *_: loaded)
    return recovery._settings_key_required()


def _restricted(loaded: LoadedSettings, monkeypatch: pytest.MonkeyPatch) -> object:
    from runtime.recovery import __main__ as recovery

    monkeypatch.setattr("runtime.config.load_settings", lambda *_: loaded)
    return _facts(loaded)["restricted"], recovery.restricted_mode("/nonexistent/flag", {})


def _console(loaded: LoadedSettings, _: pytest.MonkeyPatch) -> object:
    from runtime.state.platform_start import console_level

    return console_level(loaded.settings)


def _cmdline(loaded: LoadedSettings, _: pytest.MonkeyPatch) -> object:
    from runtime.kexec.handover import settings_cmdline_words

    return settings_cmdline_words(loaded.settings)


def _hotp(loaded: LoadedSettings, _: pytest.MonkeyPatch) -> object:
    from runtime.secrets.hotp_check import configured_token

    token = configured_token(loaded.settings)
    return _facts(loaded)["hotp_configured"], type(token).__name__


def _clock(loaded: LoadedSettings, monkeypatch: pytest.MonkeyPatch) -> object:
    monkeypatch.setattr(time, "time", lambda: 1_768_478_400.0)  # 2026-01-15 12:00 UTC
    return _platform(loaded).now_text()


def _rollback(loaded: LoadedSettings, _: pytest.MonkeyPatch) -> object:
    return _facts(loaded)["rollback_check_off"], _platform(loaded)._rollback_off()


def _root_hashing(loaded: LoadedSettings, monkeypatch: pytest.MonkeyPatch) -> object:
    """What the menus offer, and which device and directories get hashed."""
    import contextlib

    from runtime.integrity import root_hashes
    from runtime.state import platform_root

    asked: list[object] = []

    @contextlib.contextmanager
    def mounted(device: str, target: str = "") -> Any:
        asked.append(device)
        yield "/nonexistent-root"

    def hashed(root: str, dirs: Sequence[str], progress: object = None) -> root_hashes.RootHashes:
        asked.append(tuple(dirs))
        return root_hashes.RootHashes()

    monkeypatch.setattr(platform_root, "mounted_root", mounted)
    monkeypatch.setattr(platform_root, "hash_root", hashed)
    platform = _platform(loaded)
    platform.create_root_hashes(lambda _: None)
    facts = _facts(loaded)
    return facts["root_hashing"], facts["root_check_at_boot"], tuple(asked)


def _keymap(loaded: LoadedSettings, _: pytest.MonkeyPatch) -> object:
    from runtime.devices.keymap import keymap_problem

    return keymap_problem(loaded.settings.keyboard_keymap, "/nonexistent/keymap.bmap")


def _pin(loaded: LoadedSettings, _: pytest.MonkeyPatch) -> object:
    return loaded.primary_name_pin()


def _init_value(loaded: LoadedSettings, _: pytest.MonkeyPatch) -> object:
    """What the build writes for /init (tests/unit/config/test_init_settings.py runs
    /init's side)."""
    from build_initrd import init_values

    return init_values(loaded.settings, owner_key=True)


Effect = Callable[[LoadedSettings, pytest.MonkeyPatch], object]


def _fact(name: str) -> Effect:
    return lambda loaded, _: _facts(loaded)[name]


#: key -> (another value than the default, what the setting's consumer makes of it)
EFFECTS: dict[str, tuple[str, Effect]] = {
    "CONFIG_AUTO_BOOT_TIMEOUT": ("7", _fact("auto_boot_timeout")),
    "CONFIG_AUTO_BOOT_TOTP_ONLY": ("y", _fact("auto_boot_totp_only")),
    "CONFIG_BASIC": ("y", _fact("basic")),
    "CONFIG_BOARD_NAME": ("Desk", _fact("board_name")),
    "CONFIG_BRAND_NAME": ("Acme", _fact("brand")),
    "CONFIG_BOOT_DEV": ("/dev/vdb1", _boot_dev),
    "CONFIG_BOOT_KERNEL_ADD": ("iommu=pt", _cmdline),
    "CONFIG_BOOT_KERNEL_REMOVE": ("quiet", _cmdline),
    "CONFIG_DEBUG_OUTPUT": ("y", _console),
    "CONFIG_QUIET_MODE": ("n", _console),
    "CONFIG_HAVE_GPG_KEY_BACKUP": ("y", _recovery_key_required),
    "CONFIG_HOTPKEY": ("y", _hotp),
    "CONFIG_HOTP_TOKEN": ("serial:/dev/ttyS1", _hotp),
    "CONFIG_IGNORE_ROLLBACK": ("y", _rollback),
    "CONFIG_PRIMARY_KEY_TYPE": ("rsa", _key_type),
    "CONFIG_RESTRICTED_BOOT": ("y", _restricted),
    "CONFIG_TOTP_SKIP_QRCODE": ("y", _fact("skip_qr_code")),
    "CONFIG_TIME_ZONE": ("JST-9", _clock),
    "CONFIG_RECOVERY_KEY": ("R", _init_value),
    "CONFIG_BOOT_RECOVERY_SERIAL": ("/dev/ttyS2", _init_value),
    "CONFIG_TPM_PRIMARY_NAME": ("000b" + "ab" * 32, _pin),
    # compiled by the build (tests/build/test_keymap.py); the runtime says
    # when the image it runs in does not carry it
    "CONFIG_KEYBOARD_KEYMAP": ("/usr/lib/kbd/keymaps/i386/qwertz/de-latin1.map", _keymap),
    "CONFIG_ROOT_DEV": ("/dev/vda2", _root_hashing),
    "CONFIG_ROOT_DIRLIST": ("usr", _root_hashing),
    "CONFIG_ROOT_CHECK_AT_BOOT": ("y", _root_hashing),
    "CONFIG_TPM_DISK_UNLOCK_KEY": ("n", _fact("disk_unlock")),
    "CONFIG_TPM_NO_LUKS_DISK_UNLOCK": ("y", _fact("disk_unlock")),
}
#: keys whose effect shows only beside another setting
WITH: dict[str, str] = {
    "CONFIG_HOTP_TOKEN": 'export CONFIG_HOTPKEY="y"',
    "CONFIG_ROOT_DIRLIST": 'export CONFIG_ROOT_DEV="/dev/vda2"',
    "CONFIG_ROOT_CHECK_AT_BOOT": 'export CONFIG_ROOT_DEV="/dev/vda2"',
}


@pytest.mark.parametrize("key", sorted(EFFECTS))
def test_another_value_changes_what_the_code_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: str
) -> None:
    value, effect = EFFECTS[key]
    extra = WITH.get(key, "")
    default = _load(tmp_path, extra)
    changed = _load(tmp_path, f'{extra}\nexport {key}="{value}"')
    assert changed.problems == [], changed.problem_lines()
    assert changed.sources[key].line is not None  # the file's value was taken
    with monkeypatch.context() as patch:
        before = effect(default, patch)
    with monkeypatch.context() as patch:
        after = effect(changed, patch)
    assert before != after, f"{key}={value} changed nothing ({after!r})"


@pytest.mark.parametrize("key", sorted(ONLY_DEFAULT))
def test_a_value_not_honoured_is_reported_and_has_no_effect(tmp_path: Path, key: str) -> None:
    loaded = _load(tmp_path, f'export {key}="{_other_value(key)}"')
    [problem] = loaded.problems
    assert (problem.key, problem.severity) == (key, "warning")
    assert "not supported" in problem.message and "no effect" in problem.message
    assert loaded.settings.text_of(key) == SCHEMA[key].default
    assert problem.message in "\n".join(loaded.problem_lines())


@pytest.mark.parametrize(
    "key", sorted(k for k in HEADS_KEYS if ignored_reason(ALIASES.get(k, k)) is not None)
)
def test_a_key_not_used_is_reported(tmp_path: Path, key: str) -> None:
    loaded = _load(tmp_path, f'export {key}="y"')
    assert [(p.key, p.severity) for p in loaded.problems] == [(key, "note")]
    assert loaded.problems[0].message.startswith("ignored: ")


def test_project_defaults_are_the_honoured_values() -> None:
    """The project's and boards' files never set a value the runtime ignores."""
    files = [
        REPO_ROOT / "etc" / "defaults.config",
        *sorted((REPO_ROOT / "etc" / "boards").glob("*/config")),
    ]
    loaded = load_settings([Layer(str(p), str(p)) for p in files])
    assert loaded.problems == []
