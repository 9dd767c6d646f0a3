"""The keyboard layout CONFIG_KEYBOARD_KEYMAP names, compiled at build time.

The image carries one binary keymap (busybox loadkmap's format), made by the
pinned kbd's `loadkeys -b` from the pinned console-data's keymap source, not
kbd or the sources themselves. Heads' values are paths such as
/usr/lib/kbd/keymaps/i386/qwertz/de-latin1.map: the keymap's name is what
counts (de-latin1), looked up among console-data's i386 keymaps.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tools.initrd.lock import Lock
from tools.initrd.pool import unpack

#: where /init's loadkmap finds it in the image
IMAGE_PATH = "etc/runtime/keymap.bmap"
BKEYMAP_MAGIC = b"bkeymap"
_SUFFIXES = (".gz", ".kmap", ".map")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")


class KeymapError(Exception):
    """The setting names no keymap the build can make (the message says which exist)."""


def keymap_name(setting: str) -> str:
    """de-latin1 from /usr/lib/kbd/keymaps/i386/qwertz/de-latin1.map (or any
    of .kmap.gz, .kmap, .map, or the bare name)."""
    name = setting.rsplit("/", 1)[-1]
    for suffix in _SUFFIXES:
        name = name.removesuffix(suffix)
    if not _NAME.fullmatch(name):
        raise KeymapError(f"CONFIG_KEYBOARD_KEYMAP={setting!r} names no keymap")
    return name


def _sources(console_data: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    root = console_data / "usr" / "share" / "keymaps" / "i386"
    for path in sorted(root.glob("*/*.kmap.gz")):
        if path.parent.name != "include":
            found.setdefault(path.name.removesuffix(".kmap.gz"), path)
    return found


def compile_keymap(setting: str, lock: Lock, cache: Path) -> bytes:
    """The binary keymap for the setting's value; KeymapError if there is none."""
    name = keymap_name(setting)
    sources = _sources(unpack(lock.deb("console-data"), cache))
    source = sources.get(name)
    if source is None:
        close = [n for n in sources if n.split("-")[0] == name.split("-")[0]]
        hint = f" (close: {', '.join(close[:8])})" if close else ""
        raise KeymapError(f"CONFIG_KEYBOARD_KEYMAP={setting!r}: console-data has no keymap "
                          f"named {name!r}{hint}")
    loadkeys = unpack(lock.deb("kbd"), cache) / "bin" / "loadkeys"
    done = subprocess.run([str(loadkeys), "-b", str(source)], capture_output=True,
                          timeout=60, check=False)
    if done.returncode != 0 or not done.stdout.startswith(BKEYMAP_MAGIC):
        said = done.stderr.decode(errors="replace").strip()[-300:]
        raise KeymapError(f"loadkeys could not compile {source.name}: {said}")
    return done.stdout
