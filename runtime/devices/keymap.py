"""Whether the keyboard layout CONFIG_KEYBOARD_KEYMAP names is in the image.

The build compiles it (tools/initrd/keymap.py) and /init loads it before the
runtime starts; settings changed after the build (or an image built without
them) leave the kernel's US layout, which the main menu then says: a
passphrase typed on the wrong layout is a wrong passphrase.
"""

from __future__ import annotations

import os

from runtime.image_files import KEYMAP_PATH

COMPILED = KEYMAP_PATH


def keymap_problem(setting: str | None, compiled: str = COMPILED) -> str:
    """Empty when no layout is asked for, or the image carries one."""
    if not setting or os.path.isfile(compiled):
        return ""
    return (
        f"CONFIG_KEYBOARD_KEYMAP={setting}: this image carries no compiled keyboard "
        "layout, so the US layout is in use. Rebuild the image with this setting."
    )
