"""Heads keys treated specially here: ignored, honoured only at their default, or renamed.

An owner's config.user carried over from Heads may hold any of them; these tables
say what each one does here, so the message for its line can say why.
"""

from __future__ import annotations

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
# Keys this runtime knows but honours only at their default: any other value
# is reported and has no effect, so a carried-over config.user never changes
# less than its owner thinks.
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
    """Why this runtime does not use a Heads key, or None if it is not one it ignores."""
    if key in IGNORED:
        return IGNORED[key]
    if "COLOR" in key:
        return "colours come from the runtime's own theme"
    return None
