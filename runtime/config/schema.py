"""The settings this runtime knows: each CONFIG_* key's type, default and meaning.

Settings holds one validated value per key; SCHEMA is the same table keyed by name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from runtime.config.board import ConfigError
from runtime.config.value_types import (
    Bool,
    Choice,
    HotpToken,
    Key,
    OptionalInt,
    OptionalPath,
    Setting,
    Text,
    TimeZone,
    TpmName,
    Words,
)


class SettingError(ConfigError):
    """A setting cannot be changed as asked (the message says why)."""


class Settings:
    """Every key the runtime understands: its type, default and meaning.

    Attribute access is typed (settings.auto_boot_timeout is int | None)."""

    board_name = Setting(
        "CONFIG_BOARD_NAME", Text(80), "Unnamed board", "the machine's name, shown in menu titles"
    )
    brand_name = Setting(
        "CONFIG_BRAND_NAME", Text(40), "heads-runtime", "the firmware's name, shown in menu titles"
    )
    tpm = Setting(
        "CONFIG_TPM",
        Bool(),
        "n",
        "the board has a TPM (a description: a TPM 2.0 that answers is used "
        "either way, and one that does not is reported)",
    )
    tpm2_tools = Setting(
        "CONFIG_TPM2_TOOLS", Bool(), "n", "the TPM is a TPM 2.0 (the only kind this runtime drives)"
    )
    primary_key_type = Setting(
        "CONFIG_PRIMARY_KEY_TYPE",
        Choice("rsa", "ecc"),
        "ecc",
        "algorithm of the TPM primary key secrets are sealed under",
    )
    tpm_primary_name = Setting(
        "CONFIG_TPM_PRIMARY_NAME",
        TpmName("not pinned"),
        "",
        "the Name of the TPM storage key (tpm2 readpublic -c "
        "0x81000000): TPM sessions use no other key; empty: any "
        "key, so a device answering in the TPM's place could use "
        "its own",
    )
    boot_dev = Setting(
        "CONFIG_BOOT_DEV",
        OptionalPath("detect it", "/dev/"),
        "",
        "the /boot partition; empty: detect it",
    )
    hotpkey = Setting(
        "CONFIG_HOTPKEY", Bool(), "n", "check a HOTP code with a security token at boot"
    )
    restricted_boot = Setting(
        "CONFIG_RESTRICTED_BOOT",
        Bool(),
        "n",
        "no recovery shell, forced boot, firmware flashing or USB boot other than ISO images",
    )
    basic = Setting(
        "CONFIG_BASIC",
        Bool(),
        "n",
        "Basic mode: no TOTP/HOTP, no signature checks on /boot; the main "
        "menu says BASIC MODE (off while restricted boot is on)",
    )
    auto_boot_timeout = Setting(
        "CONFIG_AUTO_BOOT_TIMEOUT",
        OptionalInt(0, 600, "seconds", "off"),
        "",
        "after a good HOTP check, boot the default entry after "
        "this many seconds unless a key is pressed",
    )
    auto_boot_totp_only = Setting(
        "CONFIG_AUTO_BOOT_TOTP_ONLY",
        Bool(),
        "n",
        "without a HOTP token, count down to the default boot "
        "after the TOTP code alone, which nobody compares "
        "before it boots",
    )
    boot_req_hash = Setting(
        "CONFIG_BOOT_REQ_HASH",
        Bool(),
        "y",
        "refuse to boot the default entry if its hashes do not match (always: n is not supported)",
    )
    boot_req_rollback = Setting(
        "CONFIG_BOOT_REQ_ROLLBACK",
        Bool(),
        "y",
        "refuse to boot without a valid TPM rollback counter "
        "(always, unless CONFIG_IGNORE_ROLLBACK=y: n is not "
        "supported)",
    )
    ignore_rollback = Setting(
        "CONFIG_IGNORE_ROLLBACK",
        Bool(),
        "n",
        "skip the TPM rollback counter check entirely: an older signed /boot would boot",
    )
    tpm_no_luks_disk_unlock = Setting(
        "CONFIG_TPM_NO_LUKS_DISK_UNLOCK",
        Bool(),
        "n",
        "never offer to unlock the disk with a TPM-sealed key (the Disk "
        "Unlock Key is neither offered nor used)",
    )
    tpm_disk_unlock_key = Setting(
        "CONFIG_TPM_DISK_UNLOCK_KEY",
        Bool(),
        "y",
        "allow sealing a Disk Unlock Key in the TPM (n: neither offered nor used)",
    )
    boot_kernel_add = Setting(
        "CONFIG_BOOT_KERNEL_ADD", Words(), "", "words added to the booted kernel's command line"
    )
    boot_kernel_remove = Setting(
        "CONFIG_BOOT_KERNEL_REMOVE",
        Words(),
        "",
        "words removed from the booted kernel's command line",
    )
    boot_recovery_serial = Setting(
        "CONFIG_BOOT_RECOVERY_SERIAL",
        OptionalPath("none", "/dev/"),
        "",
        "serial line where Enter asks for the recovery shell at "
        "any time, through the same gate (115200 baud; never "
        "the console itself)",
    )
    debug_output = Setting("CONFIG_DEBUG_OUTPUT", Bool(), "n", "show debug messages on the console")
    quiet_mode = Setting(
        "CONFIG_QUIET_MODE",
        Bool(),
        "y",
        "show only warnings and errors on the console (all goes to the log)",
    )
    totp_skip_qrcode = Setting(
        "CONFIG_TOTP_SKIP_QRCODE", Bool(), "n", "do not show the QR code of a new TOTP secret"
    )
    have_gpg_key_backup = Setting(
        "CONFIG_HAVE_GPG_KEY_BACKUP",
        Bool(),
        "n",
        "require the owner's key before the recovery shell: it "
        "always asks for a signature by the firmware's owner key; "
        "y also refuses the shell when the firmware holds none",
    )
    root_dev = Setting(
        "CONFIG_ROOT_DEV",
        OptionalPath("none", "/dev/"),
        "",
        "the OS's root file system (unencrypted), whose files are hashed "
        "into /boot's signed kexec_root_hashes.txt (Options > Root file "
        "system hashes)",
    )
    root_dirlist = Setting(
        "CONFIG_ROOT_DIRLIST",
        Words(relative_paths=True),
        "bin boot lib sbin usr",
        "directories of the root file system to hash",
    )
    root_check_at_boot = Setting(
        "CONFIG_ROOT_CHECK_AT_BOOT",
        Bool(),
        "n",
        "check the root file system against its signed hashes at "
        "every boot, once /boot verified (slow on a large system)",
    )
    finalize_platform_locking = Setting(
        "CONFIG_FINALIZE_PLATFORM_LOCKING",
        Bool(),
        "n",
        "lock the flash chip against writes before booting",
    )
    flash_options = Setting(
        "CONFIG_FLASH_OPTIONS",
        Text(200),
        "",
        "the flash program and its options, for firmware updates",
    )
    keyboard_keymap = Setting(
        "CONFIG_KEYBOARD_KEYMAP",
        OptionalPath("the kernel's own (US)"),
        "",
        "keyboard layout of the virtual terminals, loaded at start: "
        "a console-data keymap's name or a Heads path naming it "
        "(de-latin1, .../qwertz/de-latin1.map), compiled into the "
        "image when it is built",
    )
    hotp_token = Setting(
        "CONFIG_HOTP_TOKEN",
        HotpToken(),
        "auto",
        "the HOTP token: auto (find a USB dongle), none, or "
        "serial:/dev/<tty> for the software token",
    )
    time_zone = Setting(
        "CONFIG_TIME_ZONE",
        TimeZone(),
        "UTC",
        "time zone of the clock on screen (TOTP always uses UTC)",
    )
    recovery_key = Setting(
        "CONFIG_RECOVERY_KEY",
        Key(),
        "r",
        "the key that, pressed at early boot, opens the recovery shell",
    )

    def __init__(self, texts: Mapping[str, str] | None = None) -> None:
        """From each key's text (defaults for the rest); SettingError if one is bad."""
        given = dict(texts or {})
        unknown = sorted(set(given) - SCHEMA.keys())
        if unknown:
            raise SettingError(f"not settings: {', '.join(unknown)}")
        self._texts = {key: given.get(key, s.default) for key, s in SCHEMA.items()}
        self._values: dict[str, object] = {}
        for key, text in self._texts.items():
            try:
                self._values[key] = SCHEMA[key].kind.parse(text)
            except ValueError as err:
                raise SettingError(f"{key}: {err}") from None

    def value_of(self, key: str) -> object:
        return self._values[key]

    def text_of(self, key: str) -> str:
        """The value as written in the file."""
        return self._texts[key]

    def shown(self, key: str) -> str:
        """The value in words, for the Configuration page."""
        return str(SCHEMA[key].kind.show(self._values[key]))

    @property
    def basic_mode(self) -> bool:
        """CONFIG_BASIC, unless restricted boot is on: that asks for every check."""
        return bool(self.basic) and not self.restricted_boot

    @property
    def hotp_enabled(self) -> bool:
        """The boot checks a HOTP code: CONFIG_HOTPKEY=y and a token is named."""
        return bool(self.hotpkey) and self.hotp_token != "none"  # noqa: S105

    @property
    def hotp_serial_device(self) -> str | None:
        token = self.hotp_token
        return token.removeprefix("serial:") if token.startswith("serial:") else None


SCHEMA: dict[str, Setting[Any]] = {
    s.key: s for s in vars(Settings).values() if isinstance(s, Setting)
}


def unknown_key_message(key: str) -> str:
    """Why a key that is not in SCHEMA does nothing, with the closest real name."""
    import difflib  # only when a key is wrong

    # Compare without the shared prefix, which would make every name look alike.
    names = {k.removeprefix("CONFIG_"): k for k in SCHEMA}
    close = difflib.get_close_matches(key.removeprefix("CONFIG_"), list(names), n=1)
    hint = f" Did you mean {names[close[0]]}?" if close else ""
    return f"not a setting this runtime knows, so it has no effect.{hint}"
