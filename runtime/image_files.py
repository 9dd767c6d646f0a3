"""Files build_initrd.py puts into the firmware image, by their path on the
running machine: the one place that names them."""

from __future__ import annotations

#: the owner's OpenPGP public key(s): /boot's signatures and the recovery gate
OWNER_KEY_PATH = "/etc/runtime/owner.asc"
#: test images only (build_initrd.py --owner-secret-key): the owner's secret
#: key in the firmware, so QEMU tests can sign without an OpenPGP card
OWNER_SECRET_KEY_PATH = "/etc/runtime/owner-secret.asc"  # noqa: S105 (a path)
#: when and from what the image was built (its time is the clock's floor)
BUILD_INFO_PATH = "/etc/runtime/build-info.json"
#: the settings' layers, lowest first: the project's, the board's, the owner's
DEFAULTS_CONFIG_PATH = "/etc/runtime/defaults.config"
BOARD_CONFIG_PATH = "/etc/runtime/board.config"
USER_CONFIG_PATH = "/etc/runtime/config.user"
#: the keyboard layout, compiled at build time; /init loads it
KEYMAP_PATH = "/etc/runtime/keymap.bmap"
#: one file per value /init reads before Python runs (initrd_overlay/init says which)
INIT_VALUES_DIR = "/etc/runtime/init"


def in_image(path: str) -> str:
    """``path`` as an archive member name (no leading slash), for the build."""
    return path.lstrip("/")
