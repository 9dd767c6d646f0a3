"""The keyboard layout CONFIG_KEYBOARD_KEYMAP names, compiled at build time.

The image carries one binary keymap (busybox loadkmap's format), made by the
pinned kbd's `loadkeys -b` from the pinned console-data's keymap source, not
kbd or the sources themselves. Only Latin-1 layouts are built (most of
Western Europe's): the binary format holds 8-bit characters, which the
kernel reads as Latin-1. Heads' values are paths such as
/usr/lib/kbd/keymaps/i386/qwertz/de-latin1.map: the keymap's name is what
counts (de-latin1), looked up among console-data's i386 keymaps.
"""

from __future__ import annotations

import gzip
import re
import subprocess
import tempfile
from pathlib import Path

from runtime.image_files import KEYMAP_PATH, in_image
from tools.initrd.lock import Lock
from tools.initrd.pool import unpack

#: where /init's loadkmap finds it in the image
IMAGE_PATH = in_image(KEYMAP_PATH)
BKEYMAP_MAGIC = b"bkeymap"
_NR_KEYS, _MAX_NR_KEYMAPS = 128, 256
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
    console_data = unpack(lock.deb("console-data"), cache)
    sources = _sources(console_data)
    source = sources.get(name)
    if source is None:
        close = [n for n in sources if n.split("-")[0] == name.split("-")[0]]
        hint = f" (close: {', '.join(close[:8])})" if close else ""
        raise KeymapError(
            f"CONFIG_KEYBOARD_KEYMAP={setting!r}: console-data has no keymap named {name!r}{hint}"
        )
    outside = not_latin_1(gzip.decompress(source.read_bytes()))
    if outside:
        # the 8-bit table would hold another charset's bytes, which the
        # kernel reads as Latin-1: the keys would type other letters
        raise KeymapError(
            f"CONFIG_KEYBOARD_KEYMAP={setting!r}: {name} has letters "
            f"outside Latin-1 ({outside}), and only Latin-1 layouts are "
            "built (a passphrase typed with it would not be what the keys "
            "show)"
        )
    loadkeys = unpack(lock.deb("kbd"), cache) / "bin" / "loadkeys"
    keymaps = console_data / "usr" / "share" / "keymaps"
    with tempfile.TemporaryDirectory(prefix="keymaps-") as tmp:
        # loadkeys runs `sh -c "gzip -d ..."` on a compressed file, with the
        # path unquoted: it is given plain files, and no PATH to find gzip in
        plain = _decompressed(keymaps, Path(tmp)) / source.relative_to(keymaps)
        done = subprocess.run(
            [str(loadkeys), "-b", str(plain.with_suffix(""))],
            capture_output=True,
            timeout=60,
            check=False,
            cwd=tmp,
            env={"PATH": "/nonexistent", "LC_ALL": "C"},
        )
    said = done.stderr.decode(errors="replace").strip()[-300:]
    if done.returncode != 0:
        raise KeymapError(f"loadkeys could not compile {source.name}: {said}")
    problem = layout_problem(done.stdout)
    if problem:
        raise KeymapError(f"loadkeys made no usable layout of {source.name} ({problem}): {said}")
    return done.stdout


_CHARSET = re.compile(rb'^\s*charset\s+"([^"]+)"', re.M)
_SCRIPTS = re.compile(
    rb"\b(Cyrillic|Greek|Hebrew|Arabic|Thai|Armenian|Georgian|Ukrainian|"
    rb"Serbian|Macedonia|Byelorussian|Kana|Hangul)_\w+"
)
_CODEPOINT = re.compile(rb"\bU\+([0-9A-Fa-f]{4})")
# a raw 8-bit code on a keycode line (ru: KOI8-R bytes with no charset line)
_RAW_HIGH = re.compile(
    rb"^[^!#\n]*keycode\s+\d+\s*=[^!#\n]*?(?<![\w+])\+?"
    rb"(12[89]|1[3-9]\d|2[0-4]\d|25[0-5]|0x[89a-fA-F][0-9a-fA-F])\b",
    re.M,
)


def not_latin_1(source: bytes) -> str:
    """What in a keymap's source is outside Latin-1 (empty: nothing): a
    charset line, a non-Latin script's keysym names, a code point above 0xFF."""
    charset = _CHARSET.search(source)
    if charset and charset.group(1).lower() != b"iso-8859-1":
        return f"charset {charset.group(1).decode('ascii', 'replace')}"
    script = _SCRIPTS.search(source)
    if script:
        return f"{script.group(0).decode('ascii', 'replace')} and others"
    wide = next((m for m in _CODEPOINT.finditer(source) if int(m.group(1), 16) > 0xFF), None)
    if wide:
        return f"U+{wide.group(1).decode()}"
    raw = _RAW_HIGH.search(source)
    if raw and not charset:
        return f"the raw code {raw.group(1).decode()} with no charset named"
    return ""


def _decompressed(root: Path, into: Path) -> Path:
    """A copy of the keymap tree with every file decompressed (names without .gz)."""
    out = into / "keymaps"
    for path in sorted(root.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        target = out / path.relative_to(root)
        data = path.read_bytes()
        if path.suffix == ".gz":
            target, data = target.with_suffix(""), gzip.decompress(data)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return out


#: the keys of the letter rows (Q..P, A..L, Z..M on a US keyboard)
LETTER_KEYCODES = (*range(16, 26), *range(30, 39), *range(44, 51))


def layout_problem(data: bytes) -> str:
    """Empty when ``data`` is a binary keymap whose plain table maps every
    letter key (loadkeys can exit 0 having written an empty one)."""
    if not data.startswith(BKEYMAP_MAGIC):
        return "not a binary keymap"
    start = len(BKEYMAP_MAGIC)
    flags = data[start : start + _MAX_NR_KEYMAPS]
    if len(flags) < _MAX_NR_KEYMAPS or not flags[0]:
        return "no plain table"
    table = data[start + _MAX_NR_KEYMAPS : start + _MAX_NR_KEYMAPS + 2 * _NR_KEYS]
    if len(table) < 2 * _NR_KEYS or len(data) != start + _MAX_NR_KEYMAPS + 2 * _NR_KEYS * sum(
        1 for f in flags if f
    ):
        return "truncated"
    unmapped = [
        code
        for code in LETTER_KEYCODES
        if int.from_bytes(table[2 * code : 2 * code + 2], "little") in (0, 0xF200)
    ]
    return f"letter keys without a character: {unmapped}" if unmapped else ""
