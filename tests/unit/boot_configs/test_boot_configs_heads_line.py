"""Heads' entry line: exact round trips for every shape, names, malformed lines."""

from __future__ import annotations

import pytest

from runtime.boot_configs.entry import BootEntry, ConfigSyntaxError, EntryKind, Module
from runtime.boot_configs.heads_line import HeadsLine, format_heads_line, parse_heads_line

ROUND_TRIPS = [
    "Debian GNU/Linux|elf|kernel /vmlinuz-6.1|initrd /initrd.img-6.1"
    "|append root=/dev/sda1 ro quiet",
    "two initrds|elf|kernel /vmlinuz|initrd /ucode.img|initrd /initrd.img|append ro",
    "no append|elf|kernel /boot/memtest86+.bin",
    "no append, initrd|elf|kernel /vmlinuz|initrd /initrd.img",
    "empty append|elf|kernel /vmlinuz|append ",
    "spaced  append|elf|kernel /vmlinuz|append  quiet  splash ",
    "Qubes, with Xen 4.17|xen|kernel /xen.gz placeholder console=none|module /vmlinuz root=x ro"
    "|module /initramfs.img",
    "xen bare|xen|kernel /xen.gz|module /vmlinuz|module /initrd.img",
    "multiboot|multiboot|kernel /mb.elf a=b|module /mod1 x y|module /mod2",
    "no modules|multiboot|kernel /mb.elf",
    "|elf|kernel /vmlinuz",
]


@pytest.mark.parametrize("text", ROUND_TRIPS)
def test_round_trip_exact(text: str) -> None:
    parsed = parse_heads_line(text)
    assert format_heads_line(parsed) == text
    # the entry alone prints the same unless the wrapper's extra facts matter
    if parsed.type_word != "multiboot" and not parsed.empty_append:
        assert format_heads_line(parsed.entry) == text


def test_elf_fields() -> None:
    line = parse_heads_line(ROUND_TRIPS[1])
    assert line.type_word == "elf"
    e = line.entry
    assert e.kind is EntryKind.LINUX
    assert e.name == "two initrds"
    assert e.kernel == "/vmlinuz"
    assert e.initrds == ("/ucode.img", "/initrd.img")
    assert e.cmdline == "ro"
    assert e.modules == ()


def test_xen_fields() -> None:
    line = parse_heads_line(ROUND_TRIPS[6])
    assert line.type_word == "xen"
    e = line.entry
    assert e.kind is EntryKind.MULTIBOOT
    assert e.name == "Qubes, with Xen 4.17"
    assert e.kernel == "/xen.gz"
    assert e.cmdline == "placeholder console=none"
    assert e.modules == (Module("/vmlinuz", "root=x ro"), Module("/initramfs.img", ""))


def test_multiboot_word_is_kept() -> None:
    line = parse_heads_line("m|multiboot|kernel /k|module /m")
    assert line.type_word == "multiboot"
    assert format_heads_line(line).startswith("m|multiboot|")
    # a bare entry prints with Heads' usual word for multiboot entries
    assert format_heads_line(line.entry).startswith("m|xen|")


def test_names_with_spaces_and_pipes() -> None:
    entry = BootEntry(
        name="Fedora | rescue  (6.5)", kind=EntryKind.LINUX, kernel="/vmlinuz", cmdline="ro"
    )
    text = format_heads_line(entry)
    assert text == "Fedora  rescue  (6.5)|elf|kernel /vmlinuz|append ro"
    assert parse_heads_line(text).entry.name == "Fedora  rescue  (6.5)"


def test_plain_elf_kind_prints_as_elf() -> None:
    entry = BootEntry(name="memtest", kind=EntryKind.ELF, kernel="/memtest")
    assert format_heads_line(entry) == "memtest|elf|kernel /memtest"


def test_wrapper_empty_append() -> None:
    entry = BootEntry(name="e", kind=EntryKind.LINUX, kernel="/k")
    text = format_heads_line(HeadsLine(entry, "elf", empty_append=True))
    assert text == "e|elf|kernel /k|append "


@pytest.mark.parametrize(
    "text",
    [
        "",
        "name",
        "name|elf",
        "name|elf|",
        "name|bzimage|kernel /vmlinuz",
        "name|elf|kernel",
        "name|elf|kernel ",
        "name|elf|kernel /a /b",
        "name|elf|initrd /i|kernel /k",
        "name|elf|kernel /k|append ro|initrd /i",
        "name|elf|kernel /k|append a|append b",
        "name|elf|kernel /k|initrd",
        "name|elf|kernel /k|initrd /a b",
        "name|elf|kernel /k|module /m",
        "name|elf|kernel /k|bogus x",
        "name|xen|kernel /x.gz |module /m",
        "name|xen|kernel /x.gz|module",
        "name|xen|kernel /x.gz|module  /m",
        "name|xen|kernel /x.gz|initrd /i",
        "name|xen|module /m",
        "name|elf|kernel /k\n",
        "a\rb|elf|kernel /k",
    ],
)
def test_malformed(text: str) -> None:
    with pytest.raises(ConfigSyntaxError):
        parse_heads_line(text)


@pytest.mark.parametrize(
    "entry",
    [
        BootEntry(name="x", kind=EntryKind.LINUX, kernel="/a b"),
        BootEntry(name="x", kind=EntryKind.LINUX, kernel=""),
        BootEntry(name="x", kind=EntryKind.LINUX, kernel="/k", initrds=("/i|j",)),
        BootEntry(name="x", kind=EntryKind.LINUX, kernel="/k", cmdline="a|b"),
        BootEntry(name="x", kind=EntryKind.LINUX, kernel="/k", modules=(Module("/m"),)),
        BootEntry(name="x", kind=EntryKind.MULTIBOOT, kernel="/k", initrds=("/i",)),
        BootEntry(name="x", kind=EntryKind.MULTIBOOT, kernel="/k", modules=(Module("/m", "\n"),)),
    ],
)
def test_unprintable_entries(entry: BootEntry) -> None:
    with pytest.raises(ConfigSyntaxError):
        format_heads_line(entry)
