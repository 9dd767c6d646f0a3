"""The runtime's settings: Heads-compatible CONFIG_* keys, typed and validated.

Three files, later wins: the project's defaults, the board's defaults and the
owner's overrides (Heads' config.user, same format). A bad line never stops
the boot: it is reported, and the value from the layer below stays.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from runtime.config.board import ConfigError
from runtime.config.config_file import (
    Assignment,
    LineError,
    Problem,
    format_assignment,
    parse_config,
    read_config,
    replace_assignment,
    write_atomically,
)
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
        "never offer to unlock the disk with a TPM-sealed key "
        "(the disk unlock key is not built yet: never offered)",
    )
    tpm_disk_unlock_key = Setting(
        "CONFIG_TPM_DISK_UNLOCK_KEY",
        Bool(),
        "y",
        "allow sealing a disk unlock key in the TPM (n forbids "
        "it; the disk unlock key is not built yet)",
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

# Heads keys a carried-over config.user may hold that this runtime does not use.
IGNORED: dict[str, str] = {
    "CONFIG_BOARD": "the board is fixed by the image's board file",
    "CONFIG_TPM2_CAPTURE_PCAP": "TPM traffic capture is a Heads debugging aid not built here",
    "CONFIG_BOOTSCRIPT": "the boot flow is built in; there is no boot script to choose",
    "CONFIG_BOOTSCRIPT_NETWORK": "the boot flow is built in; there is no network boot script",
    "CONFIG_LINUXBOOT": "the firmware type comes from the board file",
    "CONFIG_COREBOOT": "the firmware type comes from the board file",
    "CONFIG_ENABLE_FUNCTION_TRACING_OUTPUT": "there are no shell functions to trace; "
    "CONFIG_DEBUG_OUTPUT shows the details",
    "CONFIG_BOOT_EXTRA_TTYS": "the console comes from the board file",
    "CONFIG_BASIC_NO_AUTOMATIC_DEFAULT": "Basic mode never boots by itself here",
    "CONFIG_BASIC_USB_AUTOBOOT": "Basic mode never boots by itself here",
    "CONFIG_USER_USB_KEYBOARD": "kernel modules come from the board file (measured at build)",
    "CONFIG_USB_KEYBOARD_REQUIRED": "kernel modules come from the board file",
    "CONFIG_LINUX_USB_COMPANION_CONTROLLER": "kernel modules come from the board file",
    "CONFIG_USE_BLOB_JAIL": "there is no firmware blob jail in this runtime",
    "CONFIG_SUPPORT_BLOB_JAIL": "there is no firmware blob jail in this runtime",
    "CONFIG_CBFS_VIA_FLASHPROG": "how the ROM is read is a property of the board",
    "CONFIG_GPG_ALGO": "the ownership flow chooses the key algorithm itself",
    "CONFIG_GPG_KEY_BACKUP_IN_USE": "in Heads a flag for one session, not a setting",
    "CONFIG_AUTOMATIC_POWERON": "automatic power-on is not supported",
    "CONFIG_BOOT_STATIC_IP": "there is no network boot",
    "CONFIG_PCR": "PCR numbers come from the board file",
    # Build settings of a Heads or coreboot image, not read at run time.
    "CONFIG_TPM2_TSS": "a setting of Heads' image build, not of the running firmware",
    "CONFIG_OPENSSL": "a setting of Heads' image build, not of the running firmware",
    "CONFIG_CBFS_SIZE": "a coreboot build setting, not read at run time",
    "CONFIG_COREBOOT_ROMSIZE_KB": "a coreboot build setting, not read at run time",
    "CONFIG_PCR_BOOT_MODE": "a coreboot build setting, not read at run time",
    "CONFIG_PCR_SRTM": "a coreboot build setting, not read at run time",
}
# Keys this runtime knows whose other values it does not honour (yet): any
# value but the default is reported and has no effect, so a carried-over
# config.user never changes less than its owner thinks.
ONLY_DEFAULT: dict[str, str] = {
    "CONFIG_BOOT_REQ_HASH": "this runtime never boots a default entry whose files do not "
    "match your signed hashes",
    "CONFIG_BOOT_REQ_ROLLBACK": "this runtime always checks /boot's TPM rollback counter; "
    "CONFIG_IGNORE_ROLLBACK=y is the way to skip it",
    "CONFIG_FINALIZE_PLATFORM_LOCKING": "the flash chip is NOT locked before the hand-over "
    "(the chipset's lock is not driven): the booted OS "
    "can write the firmware",
    "CONFIG_FLASH_OPTIONS": "flashing firmware from the runtime is not built yet",
}
# Old Heads names, read as the new one (Heads renames them itself at start).
ALIASES = {"CONFIG_PUREBOOT_BASIC": "CONFIG_BASIC"}


def ignored_reason(key: str) -> str | None:
    if key in IGNORED:
        return IGNORED[key]
    if "COLOR" in key:
        return "colours come from the runtime's own theme"
    return None


class Layer(NamedTuple):
    label: str  # for the Configuration page: where a value came from
    path: str
    required: bool = True  # missing: a warning (the owner's file may well be absent)


IMAGE_LAYERS = (
    Layer("project defaults", "/etc/runtime/defaults.config"),
    Layer("board defaults", "/etc/runtime/board.config"),
    Layer("your settings", "/etc/runtime/config.user", required=False),
)


class Source(NamedTuple):
    label: str
    path: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        if self.path is None:
            return self.label
        return f"{self.label} ({self.path}, line {self.line})"


BUILT_IN = Source("built-in default")


class SettingRow(NamedTuple):
    key: str
    value: str
    source: str
    meaning: str


SCHEMA_KEY_PRIMARY_NAME = "CONFIG_TPM_PRIMARY_NAME"
#: No TPM object has this Name (hash algorithm 0 and no digest).
UNMATCHABLE_NAME = b"\x00\x00"


class LoadedSettings:
    """The settings, what was wrong in the files, and where each value came from."""

    def __init__(
        self, settings: Settings, problems: list[Problem], sources: dict[str, Source]
    ) -> None:
        self.settings, self.problems, self.sources = settings, problems, sources

    def rows(self) -> list[SettingRow]:
        """Each setting, its value and where it came from, in table order."""
        return [
            SettingRow(
                key,
                self.settings.shown(key),
                str(self.sources.get(key, BUILT_IN)),
                s.meaning
                + (f" (only this value: {ONLY_DEFAULT[key]})" if key in ONLY_DEFAULT else ""),
            )
            for key, s in SCHEMA.items()
        ]

    def problem_lines(self) -> list[str]:
        return [str(p) for p in self.problems]

    def primary_name_pin(self) -> bytes | None:
        """The pinned TPM storage key Name; a pin that matches no key when a
        CONFIG_TPM_PRIMARY_NAME line is malformed: the owner meant to pin,
        and a typo must not quietly turn the check off."""
        if any(p.key == SCHEMA_KEY_PRIMARY_NAME and p.severity == "error" for p in self.problems):
            return UNMATCHABLE_NAME
        return self.settings.tpm_primary_name


def load_settings(layers: Sequence[Layer | str] = IMAGE_LAYERS) -> LoadedSettings:
    """The settings from each layer in turn; never raises for bad files.

    A plain path is a required layer labelled by its path."""
    texts: dict[str, str] = {}
    sources: dict[str, Source] = {key: BUILT_IN for key in SCHEMA}
    problems: list[Problem] = []
    for layer in layers:
        if not isinstance(layer, Layer):
            layer = Layer(str(layer), str(layer))
        try:
            data = read_config(layer.path)
        except FileNotFoundError:
            if layer.required:
                problems.append(
                    Problem(
                        layer.path,
                        None,
                        None,
                        f"the {layer.label} file is "
                        "missing, so the values below it are used; the image "
                        "may be incomplete",
                        "warning",
                    )
                )
            continue
        except OSError as err:
            problems.append(
                Problem(
                    layer.path,
                    None,
                    None,
                    f"cannot be read ({err.strerror}), so none of its settings are used",
                )
            )
            continue
        parsed = parse_config(data, layer.path)
        found = list(parsed.problems)
        for assignment in parsed.assignments:
            _apply(assignment, layer.label, texts, sources, found)
        problems += sorted(found, key=lambda p: p.line or 0)  # in file order
    settings = Settings(texts)
    problems += _consistency(settings, sources)
    return LoadedSettings(settings, problems, sources)


def _apply(
    a: Assignment,
    label: str,
    texts: dict[str, str],
    sources: dict[str, Source],
    problems: list[Problem],
) -> None:
    key = ALIASES.get(a.key, a.key)
    if key != a.key:
        problems.append(
            Problem(
                a.path, a.line, a.key, f"an old name of {key}, read as {key}; rename it.", "note"
            )
        )
    reason = ignored_reason(key)
    if reason is not None:
        problems.append(
            Problem(
                a.path,
                a.line,
                key,
                f"ignored: {reason}. The line has no effect; you may remove it.",
                "note",
            )
        )
        return
    setting = SCHEMA.get(key)
    if setting is None:
        problems.append(Problem(a.path, a.line, key, _unknown(key) + " Fix or remove the line."))
        return
    try:
        value = setting.kind.parse(a.value)
    except ValueError as err:
        kept = setting.kind.show(setting.kind.parse(texts.get(key, setting.default)))
        problems.append(
            Problem(
                a.path,
                a.line,
                key,
                f"{err}; expected {setting.kind.expects}. Kept {kept!r} from the {sources[key]}.",
            )
        )
        return
    if key in ONLY_DEFAULT and value != setting.kind.parse(setting.default):
        honoured = setting.kind.show(setting.kind.parse(setting.default))
        problems.append(
            Problem(
                a.path,
                a.line,
                key,
                f"not supported: {ONLY_DEFAULT[key]}. "
                f"The line has no effect: the runtime behaves as {honoured!r}.",
                "warning",
            )
        )
        return
    texts[key] = a.value
    sources[key] = Source(label, a.path, a.line)


def _unknown(key: str) -> str:
    import difflib  # only when a key is wrong

    # Compare without the shared prefix, which would make every name look alike.
    names = {k.removeprefix("CONFIG_"): k for k in SCHEMA}
    close = difflib.get_close_matches(key.removeprefix("CONFIG_"), list(names), n=1)
    hint = f" Did you mean {names[close[0]]}?" if close else ""
    return f"not a setting this runtime knows, so it has no effect.{hint}"


def _consistency(settings: Settings, sources: dict[str, Source]) -> list[Problem]:
    problems = []
    if settings.tpm != settings.tpm2_tools:
        where = sources["CONFIG_TPM"]
        text = (
            "CONFIG_TPM=y with CONFIG_TPM2_TOOLS=n describes a TPM 1.2, which this "
            "runtime does not drive"
            if settings.tpm
            else "CONFIG_TPM2_TOOLS=y needs CONFIG_TPM=y, or the TPM is not used"
        )
        problems.append(
            Problem(
                where.path or "settings",
                where.line,
                "CONFIG_TPM",
                f"{text}; set both to y or both to n.",
                "warning",
            )
        )
    if settings.root_check_at_boot and not settings.root_dev:
        where = sources["CONFIG_ROOT_CHECK_AT_BOOT"]
        problems.append(
            Problem(
                where.path or "settings",
                where.line,
                "CONFIG_ROOT_CHECK_AT_BOOT",
                "no root file system is named (CONFIG_ROOT_DEV), so nothing is checked at boot.",
                "warning",
            )
        )
    if settings.root_dev and not settings.root_dirlist:
        where = sources["CONFIG_ROOT_DIRLIST"]
        problems.append(
            Problem(
                where.path or "settings",
                where.line,
                "CONFIG_ROOT_DIRLIST",
                "no directory is listed, so a root hash list would be empty and prove nothing.",
                "warning",
            )
        )
    if settings.basic and settings.restricted_boot:
        where = sources["CONFIG_BASIC"]
        problems.append(
            Problem(
                where.path or "settings",
                where.line,
                "CONFIG_BASIC",
                "Basic mode is off: restricted boot (CONFIG_RESTRICTED_BOOT) "
                "asks for every check. Turn one of them off.",
                "warning",
            )
        )
    return problems


def set_user_value(path: str, key: str, value: str) -> None:
    """Set key to value in the owner's file, keeping its other lines and comments.

    Validates first; writes atomically (the old file stays whole on failure).
    Raises SettingError with a message for the screen."""
    setting = SCHEMA.get(key)
    if setting is None:
        reason = ignored_reason(key)
        raise SettingError(
            f"{key}: "
            + (f"not used by this runtime: {reason}." if reason else _unknown(key))
            + " Nothing was saved."
        )
    try:
        parsed = setting.kind.parse(value)
        line = format_assignment(key, value)
    except (ValueError, LineError) as err:
        raise SettingError(
            f"{key}: {err}; expected {setting.kind.expects}. Nothing was saved."
        ) from None
    if key in ONLY_DEFAULT and parsed != setting.kind.parse(setting.default):
        raise SettingError(f"{key}: not supported: {ONLY_DEFAULT[key]}. Nothing was saved.")
    try:
        old = read_config(path)
    except FileNotFoundError:
        old = b""
    except OSError as err:
        raise SettingError(f"cannot read {path} ({err.strerror}); nothing was saved.") from None
    keys = frozenset({key, *(old_name for old_name, new in ALIASES.items() if new == key)})
    # surrogateescape: bytes that are not UTF-8 in other lines are written back unchanged.
    text = replace_assignment(old.decode("utf-8", "surrogateescape"), keys, line)
    try:
        write_atomically(path, text.encode("utf-8", "surrogateescape"))
    except OSError as err:
        raise SettingError(
            f"could not save {key} to {path} ({err.strerror or err}); the file is unchanged."
        ) from None
