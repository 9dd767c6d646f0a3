"""CONFIG_KEYBOARD_KEYMAP at build time: the pinned kbd compiles the pinned
console-data keymap into busybox loadkmap's format; Heads' paths name the same
keymap; an unknown name stops the build with the names that exist."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from tools.initrd import keymap
from tools.initrd.cache import default_cache_dir
from tools.initrd.lock import load_lock

#: loadkmap reads the magic, then for each of 256 tables a flag byte and, where
#: it is 1, 128 little-endian 16-bit entries
NR_KEYS, MAX_NR_KEYMAPS = 128, 256


def tables(data: bytes) -> dict[int, list[int]]:
    assert data.startswith(keymap.BKEYMAP_MAGIC)
    flags = data[len(keymap.BKEYMAP_MAGIC) : len(keymap.BKEYMAP_MAGIC) + MAX_NR_KEYMAPS]
    rest = data[len(keymap.BKEYMAP_MAGIC) + MAX_NR_KEYMAPS :]
    found: dict[int, list[int]] = {}
    for index, flag in enumerate(flags):
        if flag:
            chunk, rest = rest[: 2 * NR_KEYS], rest[2 * NR_KEYS :]
            found[index] = [
                int.from_bytes(chunk[i : i + 2], "little") for i in range(0, 2 * NR_KEYS, 2)
            ]
    assert rest == b""
    return found


@pytest.fixture(scope="module")
def cache() -> Path:
    return default_cache_dir()


def test_a_german_layout_swaps_y_and_z(cache: Path) -> None:
    data = keymap.compile_keymap("de-latin1", load_lock(), cache)
    plain = tables(data)[0]
    # keycode 21 is the key labelled Y on a US keyboard, 44 the one labelled Z
    assert chr(plain[21] & 0xFF) == "z" and chr(plain[44] & 0xFF) == "y"


def test_heads_paths_name_the_same_keymap(cache: Path) -> None:
    lock = load_lock()
    by_name = keymap.compile_keymap("de-latin1", lock, cache)
    for setting in (
        "/usr/lib/kbd/keymaps/i386/qwertz/de-latin1.map",
        "/usr/share/keymaps/i386/qwertz/de-latin1.kmap.gz",
    ):
        assert keymap.compile_keymap(setting, lock, cache) == by_name
    assert keymap.compile_keymap("de-latin1", lock, cache) == by_name  # reproducible


def test_us_keeps_the_us_layout(cache: Path) -> None:
    plain = tables(
        keymap.compile_keymap("/usr/lib/kbd/keymaps/i386/qwerty/us.map", load_lock(), cache)
    )[0]
    assert chr(plain[21] & 0xFF) == "y" and chr(plain[44] & 0xFF) == "z"


@pytest.mark.parametrize(
    "setting",
    ["/usr/lib/kbd/keymaps/i386/qwertz/nonesuch.map", "../../etc/passwd", "de latin1", "/x/.map"],
)
def test_an_unknown_keymap_stops_the_build_with_a_reason(cache: Path, setting: str) -> None:
    with pytest.raises(keymap.KeymapError) as err:
        keymap.compile_keymap(setting, load_lock(), cache)
    assert "CONFIG_KEYBOARD_KEYMAP" in str(err.value)


def test_a_close_name_is_suggested(cache: Path) -> None:
    with pytest.raises(keymap.KeymapError) as err:
        keymap.compile_keymap("de-nonesuch", load_lock(), cache)
    assert "de-latin1" in str(err.value)


def test_the_sources_are_console_data_keymaps(cache: Path) -> None:
    from tools.initrd.pool import unpack

    root = unpack(load_lock().deb("console-data"), cache)
    source = next(root.glob("usr/share/keymaps/i386/qwertz/de-latin1.kmap.gz"))
    assert b"keymaps" in gzip.decompress(source.read_bytes())


def test_an_empty_layout_is_refused() -> None:
    """loadkeys can exit 0 having written the magic and no table."""
    empty = keymap.BKEYMAP_MAGIC + bytes(MAX_NR_KEYMAPS)
    assert keymap.layout_problem(empty) == "no plain table"
    assert keymap.layout_problem(b"not a keymap") == "not a binary keymap"
    only_plain = keymap.BKEYMAP_MAGIC + b"\x01" + bytes(MAX_NR_KEYMAPS - 1) + bytes(2 * NR_KEYS)
    assert "letter keys without a character" in keymap.layout_problem(only_plain)
    assert keymap.layout_problem(only_plain[:-2]) == "truncated"


def test_every_qwerty_and_qwertz_keymap_compiles(cache: Path) -> None:
    """The layouts a Heads board names (us, de, fr, uk, ...) all make a full table."""
    from tools.initrd.pool import unpack

    lock = load_lock()
    root = unpack(lock.deb("console-data"), cache) / "usr" / "share" / "keymaps" / "i386"
    names = sorted(
        p.name.removesuffix(".kmap.gz")
        for d in ("qwerty", "qwertz", "azerty")
        for p in (root / d).glob("*.kmap.gz")
    )
    assert len(names) > 50
    for name in ("us", "uk", "de", "fr-latin1", "es", "it", "sg-latin1"):
        assert name in names
        assert keymap.layout_problem(keymap.compile_keymap(name, lock, cache)) == ""


@pytest.mark.parametrize("name", ["cz-lat2", "ru", "gr", "et"])
def test_a_layout_in_another_charset_is_refused(cache: Path, name: str) -> None:
    """Its letters would arrive as Latin-1 ones: a PIN typed with it is not
    what the keys show."""
    with pytest.raises(keymap.KeymapError) as err:
        keymap.compile_keymap(name, load_lock(), cache)
    assert "only Latin-1 layouts" in str(err.value)
