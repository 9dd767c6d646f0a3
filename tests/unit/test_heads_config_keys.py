"""Every CONFIG_* key Heads documents is either honoured, with a test of its
effect, or reported when a file sets it: none is accepted without a word.

HEADS_KEYS is the list from Heads' configuration reference (its board files,
its config.user writers and its build settings an owner might copy over).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.config import SCHEMA, Layer, LoadedSettings, Settings, load_settings
from runtime.config.settings import ALIASES, ONLY_DEFAULT, ignored_reason
from tests.conftest import REPO_ROOT

HEADS_KEYS = (
    "CONFIG_AUTOMATIC_POWERON", "CONFIG_AUTO_BOOT_TIMEOUT", "CONFIG_BASIC",
    "CONFIG_BASIC_NO_AUTOMATIC_DEFAULT", "CONFIG_BASIC_USB_AUTOBOOT", "CONFIG_BOARD",
    "CONFIG_BOARD_NAME", "CONFIG_BOOTSCRIPT", "CONFIG_BOOTSCRIPT_NETWORK", "CONFIG_BOOT_DEV",
    "CONFIG_BOOT_EXTRA_TTYS", "CONFIG_BOOT_KERNEL_ADD", "CONFIG_BOOT_KERNEL_REMOVE",
    "CONFIG_BOOT_RECOVERY_SERIAL", "CONFIG_BOOT_REQ_HASH", "CONFIG_BOOT_REQ_ROLLBACK",
    "CONFIG_BOOT_STATIC_IP", "CONFIG_BRAND_NAME", "CONFIG_CBFS_SIZE",
    "CONFIG_CBFS_VIA_FLASHPROG", "CONFIG_COREBOOT", "CONFIG_COREBOOT_ROMSIZE_KB",
    "CONFIG_DEBUG_OUTPUT", "CONFIG_ENABLE_FUNCTION_TRACING_OUTPUT", "CONFIG_ERROR_BG_COLOR",
    "CONFIG_ERROR_TEXT_BG_COLOR", "CONFIG_FINALIZE_PLATFORM_LOCKING", "CONFIG_FLASH_OPTIONS",
    "CONFIG_GPG_ALGO", "CONFIG_GPG_KEY_BACKUP_IN_USE", "CONFIG_HAVE_GPG_KEY_BACKUP",
    "CONFIG_HOTPKEY", "CONFIG_IGNORE_ROLLBACK", "CONFIG_KEYBOARD_KEYMAP", "CONFIG_LINUXBOOT",
    "CONFIG_LINUX_USB_COMPANION_CONTROLLER", "CONFIG_OPENSSL", "CONFIG_PCR",
    "CONFIG_PCR_BOOT_MODE", "CONFIG_PCR_SRTM", "CONFIG_PRIMARY_KEY_TYPE",
    "CONFIG_PUREBOOT_BASIC", "CONFIG_QUIET_MODE", "CONFIG_RESTRICTED_BOOT",
    "CONFIG_ROOT_CHECK_AT_BOOT", "CONFIG_ROOT_DEV", "CONFIG_ROOT_DIRLIST",
    "CONFIG_SUPPORT_BLOB_JAIL", "CONFIG_TOTP_SKIP_QRCODE", "CONFIG_TPM",
    "CONFIG_TPM2_CAPTURE_PCAP", "CONFIG_TPM2_TOOLS", "CONFIG_TPM2_TSS",
    "CONFIG_TPM_DISK_UNLOCK_KEY", "CONFIG_TPM_NO_LUKS_DISK_UNLOCK",
    "CONFIG_USB_KEYBOARD_REQUIRED", "CONFIG_USER_USB_KEYBOARD", "CONFIG_USE_BLOB_JAIL",
    "CONFIG_WARNING_BG_COLOR", "CONFIG_WARNING_TEXT_BG_COLOR",
)

#: Honoured keys, and the test file that shows each one's effect.
HONOURED = {
    "CONFIG_AUTO_BOOT_TIMEOUT": "tests/unit/test_autoboot_token_rule.py",
    "CONFIG_BOARD_NAME": "tests/unit/test_settings.py",
    "CONFIG_BRAND_NAME": "tests/unit/test_settings.py",
    "CONFIG_BOOT_DEV": "tests/unit/test_boot_device.py",
    "CONFIG_BOOT_KERNEL_ADD": "tests/unit/test_kexec_plan.py",
    "CONFIG_BOOT_KERNEL_REMOVE": "tests/unit/test_kexec_plan.py",
    "CONFIG_DEBUG_OUTPUT": "tests/unit/test_bootlog_quiet.py",
    "CONFIG_QUIET_MODE": "tests/unit/test_bootlog_quiet.py",
    "CONFIG_HOTPKEY": "tests/unit/test_hotp_check_settings.py",
    "CONFIG_IGNORE_ROLLBACK": "tests/unit/test_ignore_rollback.py",
    "CONFIG_PRIMARY_KEY_TYPE": "tests/tpm/test_primary_key_type.py",
    "CONFIG_RESTRICTED_BOOT": "tests/unit/test_recovery_gate.py",
    "CONFIG_TOTP_SKIP_QRCODE": "tests/unit/test_enrolment_qr_skip.py",
    # A description of the board: a TPM 2.0 that answers is used whatever they
    # say, and a CONFIG_TPM that disagrees with CONFIG_TPM2_TOOLS is reported.
    "CONFIG_TPM": "tests/unit/test_settings.py",
    "CONFIG_TPM2_TOOLS": "tests/unit/test_settings.py",
    # Their restrictive values hold by construction: the disk unlock key is
    # not built, so it is never offered nor sealed.
    "CONFIG_TPM_NO_LUKS_DISK_UNLOCK": "tests/unit/test_heads_config_keys.py",
    "CONFIG_TPM_DISK_UNLOCK_KEY": "tests/unit/test_heads_config_keys.py",
}


def _load(tmp_path: Path, line: str) -> LoadedSettings:
    path = tmp_path / "config.user"
    path.write_text(line + "\n")
    return load_settings([Layer("your settings", str(path))])


def _other_value(key: str) -> str:
    """A valid value that is not the default."""
    setting = SCHEMA[key]
    default = setting.kind.parse(setting.default)
    for text in ("y", "n", "/dev/ttyS0", "5", "rsa", "ecc", "bin usr", "flashprog -p internal",
                 "JST-9", "x"):
        try:
            if setting.kind.parse(text) != default:
                return text
        except ValueError:
            continue
    raise AssertionError(f"no other value for {key}")


def test_every_heads_key_is_classified() -> None:
    for key in HEADS_KEYS:
        name = ALIASES.get(key, key)
        kinds = [name in HONOURED, name in ONLY_DEFAULT, ignored_reason(name) is not None]
        assert sum(kinds) == 1, f"{key}: honoured, not supported or ignored, exactly one"


def test_every_runtime_setting_is_classified() -> None:
    """The runtime's own keys too: a setting that does nothing is a lie on the
    Configuration page."""
    own = {"CONFIG_AUTO_BOOT_TOTP_ONLY", "CONFIG_HOTP_TOKEN", "CONFIG_TIME_ZONE",
           "CONFIG_RECOVERY_KEY", "CONFIG_TPM_PRIMARY_NAME"}
    assert set(SCHEMA) == (set(HONOURED) | set(ONLY_DEFAULT) | own) & set(SCHEMA)
    assert set(HONOURED) | set(ONLY_DEFAULT) | own >= set(SCHEMA)


@pytest.mark.parametrize("key", sorted(HONOURED))
def test_an_honoured_key_has_a_test_of_its_effect(key: str) -> None:
    path = REPO_ROOT / HONOURED[key]
    assert path.is_file(), f"{key}: {HONOURED[key]} is missing"
    text = path.read_text()
    attribute = next(name for name, s in vars(Settings).items()
                     if getattr(s, "key", None) == key)
    assert key in text or attribute in text


@pytest.mark.parametrize("key", sorted(ONLY_DEFAULT))
def test_a_value_not_honoured_is_reported_and_has_no_effect(tmp_path: Path, key: str) -> None:
    loaded = _load(tmp_path, f'export {key}="{_other_value(key)}"')
    [problem] = loaded.problems
    assert (problem.key, problem.severity) == (key, "warning")
    assert "not supported" in problem.message and "no effect" in problem.message
    assert loaded.settings.text_of(key) == SCHEMA[key].default
    assert problem.message in "\n".join(loaded.problem_lines())


@pytest.mark.parametrize("key", sorted(k for k in HEADS_KEYS
                                       if ignored_reason(ALIASES.get(k, k)) is not None))
def test_a_key_not_used_is_reported(tmp_path: Path, key: str) -> None:
    loaded = _load(tmp_path, f'export {key}="y"')
    assert [(p.key, p.severity) for p in loaded.problems] == [(key, "note")]
    assert loaded.problems[0].message.startswith("ignored: ")


def test_the_disk_unlock_key_is_never_offered() -> None:
    """Both keys' restrictive values hold: no code path seals or offers one."""
    runtime = REPO_ROOT / "runtime"
    text = "\n".join(p.read_text() for p in runtime.rglob("*.py"))
    assert "kexec_key_devices" not in text and "luksAddKey" not in text


def test_project_defaults_are_the_honoured_values() -> None:
    """The project's and boards' files never set a value the runtime ignores."""
    files = [REPO_ROOT / "etc" / "defaults.config",
             *sorted((REPO_ROOT / "etc" / "boards").glob("*/config"))]
    loaded = load_settings([Layer(str(p), str(p)) for p in files])
    assert loaded.problems == []
