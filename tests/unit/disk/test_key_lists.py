"""The DUK's files in /boot (heads-facts.md §2.1 PCR 6, §3): the exact bytes
Heads writes, the header measurement against real `sha256sum` output over a
shell glob, and hostile input that must only ever raise KeyListError."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime.disk.key_lists import (
    CRYPTTAB_OVERRIDES_FILE,
    KEY_DEVICES_FILE,
    KEY_LVM_FILE,
    LUKS_HEADER_HASH_FILE,
    MAX_FILE_BYTES,
    MAX_KEY_DEVICES,
    CrypttabOverride,
    HeaderHash,
    KeyDevice,
    KeyListError,
    format_crypttab_overrides,
    format_header_hashes,
    format_header_measurement,
    format_key_devices,
    format_key_lvm,
    header_backup_path,
    is_device_path,
    measurement_digest,
    parse_crypttab_overrides,
    parse_header_measurement,
    parse_key_devices,
    parse_key_lvm,
)

C_LOCALE = {"LC_ALL": "C", "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
UUID_A = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
UUID_B = "f0e1d2c3-b4a5-4968-8776-655443322110"

# ---------------------------------------------------------------- strategies

_component = st.from_regex(r"[A-Za-z0-9_+-][A-Za-z0-9._+-]{0,11}", fullmatch=True).filter(
    lambda c: ".." not in c
)
device_paths = st.lists(_component, min_size=1, max_size=4).map(lambda cs: "/dev/" + "/".join(cs))
luks_uuids = st.from_regex(r"[0-9a-fA-F-]{1,40}", fullmatch=True)
override_paths = st.builds(
    lambda dirs, stem: "/".join([*dirs, stem + "crypttab"]),
    st.lists(_component, max_size=3),
    st.from_regex(r"[A-Za-z0-9._+-]{0,6}", fullmatch=True),
).filter(lambda p: ".." not in p)
#: printable text and tabs: what a crypttab line may hold
crypttab_lines = st.text(
    st.characters(blacklist_categories=("C", "Z"), whitelist_characters=" \t"), max_size=60
)
#: bytes near the formats: their separators, path characters, and the bytes to refuse
hostile_bytes = st.one_of(
    st.binary(max_size=300),
    st.text(
        st.sampled_from([*"/dev_vda2-+.: \t\n\r\0#0af:crypttab", "é", "\u2028", "\x0b"]),
        max_size=300,
    ).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.lists(st.sampled_from([b"\xff", b"\xc3", b"/dev/vda2 ", UUID_A.encode(), b"\n"])).map(
        b"".join
    ),
)


def _digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


# ---------------------------------------------------------------- kexec_key_devices.txt


def test_key_devices_parse_what_heads_writes() -> None:
    text = f"/dev/vda2 {UUID_A}\n/dev/mapper/qubes_dom0-root {UUID_B.upper()}\n".encode()
    assert parse_key_devices(text) == [
        KeyDevice("/dev/vda2", UUID_A),
        KeyDevice("/dev/mapper/qubes_dom0-root", UUID_B.upper()),  # LUKS1: as stored
    ]
    assert format_key_devices(parse_key_devices(text)) == text


def test_key_devices_read_as_the_shell_reads_them() -> None:
    # blanks around and between fields, blank lines, no newline at the end
    text = f"\n  /dev/sda2\t {UUID_A}  \n\n/dev/vg+x/lv {UUID_B}".encode()
    assert parse_key_devices(text) == [
        KeyDevice("/dev/sda2", UUID_A),
        KeyDevice("/dev/vg+x/lv", UUID_B),
    ]
    assert format_key_devices(parse_key_devices(text)) == (
        f"/dev/sda2 {UUID_A}\n/dev/vg+x/lv {UUID_B}\n".encode()
    )


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (b"", "lists no device"),
        (b"\n \n", "lists no device"),
        (f"/dev/../etc/shadow {UUID_A}\n".encode(), "line 1"),
        (f"/dev//vda {UUID_A}\n".encode(), "line 1"),
        (f"/dev/vda/ {UUID_A}\n".encode(), "line 1"),
        (f"/dev/./vda {UUID_A}\n".encode(), "line 1"),
        (f"/dev/ {UUID_A}\n".encode(), "line 1"),
        (f"/tmp/x {UUID_A}\n".encode(), "line 1"),
        (f"dev/vda {UUID_A}\n".encode(), "line 1"),
        (f"/dev/vd a {UUID_A}\n".encode(), "line 1"),
        (f"/dev/vda;rm {UUID_A}\n".encode(), "line 1"),
        (f"/dev/vda2 {UUID_A} luks\n".encode(), "line 1"),
        (b"/dev/vda2\n", "line 1"),
        (f"/dev/vda2\x0b{UUID_A}\n".encode(), "line 1"),  # not a blank to `read`
        (b"/dev/vda2 0a1b-xyz\n", "line 1"),
        (b"/dev/vda2 " + b"a" * 41 + b"\n", "line 1"),
        (f"/dev/vda2 {UUID_A}\n/dev/vda2 {UUID_B}\n".encode(), "line 2"),
        (f"/dev/vda2 {UUID_A}\n/dev/vdb2 {UUID_A}\n".encode(), "line 2"),
        (f"/dev/vda2 {UUID_A}\r\n".encode(), "line 1"),
        (f"/dev/vda2 {UUID_A}\n/dev/vdb\0 {UUID_B}\n".encode(), "line 2"),
        (f"/dev/vda2 {UUID_A}\n/dev/vdb\xff {UUID_B}\n".encode("latin-1"), "line 2"),
        ((f"/dev/vda2 {UUID_A}\n" * (MAX_KEY_DEVICES + 1)).encode(), "more than"),
        (b" " * (MAX_FILE_BYTES + 1), "larger than"),
    ],
)
def test_key_devices_refuse_what_heads_never_writes(text: bytes, words: str) -> None:
    with pytest.raises(KeyListError) as caught:
        parse_key_devices(text)
    assert KEY_DEVICES_FILE in str(caught.value)
    assert words in str(caught.value)


def test_key_devices_format_refuses_bad_entries() -> None:
    for devices in (
        [],
        [KeyDevice("/dev/vda2 x", UUID_A)],
        [KeyDevice("/dev/vda2", "not-a-uuid")],
        [KeyDevice("/dev/vda2", UUID_A), KeyDevice("/dev/vda2", UUID_B)],
    ):
        with pytest.raises(KeyListError):
            format_key_devices(devices)


@given(
    st.lists(
        st.builds(KeyDevice, device_paths, luks_uuids),
        min_size=1,
        max_size=8,
        unique_by=(lambda d: d.device, lambda d: d.luks_uuid),
    )
)
def test_key_devices_round_trip(devices: list[KeyDevice]) -> None:
    assert parse_key_devices(format_key_devices(devices)) == devices


def test_device_path_rule() -> None:
    good = ["/dev/vda2", "/dev/nvme0n1p3", "/dev/mapper/luks-x", "/dev/vg_1/lv.root", "/dev/a+b"]
    bad = ["/dev", "/dev/", "/dev/a/", "/dev//a", "/dev/a/../b", "/dev/a..b", "/dev/.", "/dev/a b"]
    bad += ["/dev/a:b", "/dev/a\\b", "/dev/ä", "/dev/" + "a" * 251, "/proc/x", "/dev/a\n"]
    assert [p for p in good if not is_device_path(p)] == []
    assert [p for p in bad if is_device_path(p)] == []


# ---------------------------------------------------------------- kexec_key_lvm.txt


def test_key_lvm() -> None:
    assert parse_key_lvm(b"qubes_dom0\n") == "qubes_dom0"
    assert parse_key_lvm(b"\n  vg+1.x-y \n\n") == "vg+1.x-y"
    assert parse_key_lvm(b"vg") == "vg"
    assert format_key_lvm("qubes_dom0") == b"qubes_dom0\n"
    assert parse_key_lvm(format_key_lvm("a" * 127)) == "a" * 127


@pytest.mark.parametrize(
    "text",
    [
        *(b"", b"\n\n", b"-vg\n", b".\n", b"..\n", b"a" * 128 + b"\n", b"vg name\n", b"vg/x\n"),
        *(b"vg\nvg2\n", b"vg\0\n", b"vg\r\n", b"v\xe9\n", b"\n" * 10 + b"vg\n"),
    ],
)
def test_key_lvm_refusals(text: bytes) -> None:
    with pytest.raises(KeyListError, match=re.escape(KEY_LVM_FILE)):
        parse_key_lvm(text)


@given(st.from_regex(r"[A-Za-z0-9+_.][A-Za-z0-9+_.-]{0,126}", fullmatch=True))
def test_key_lvm_round_trip(name: str) -> None:
    if name in (".", ".."):
        with pytest.raises(KeyListError):
            format_key_lvm(name)
    else:
        assert parse_key_lvm(format_key_lvm(name)) == name


# ---------------------------------------------------------------- the header measurement

#: byte order differs from the dict's order and from a locale's: upper case, '_' and
#: digits sort as bytes (sda10 before sda9, 'Z' before '_' before 'a')
GLOB_ORDER_DEVICES = [
    "/dev/vda2",
    "/dev/sda9",
    "/dev/sda10",
    "/dev/Zed",
    "/dev/mapper/luks-x",
    "/dev/a_b",
    "/dev/vg+1/lv-root",
]


def test_backup_path_is_heads_name() -> None:
    assert header_backup_path("/dev/vda2") == "/tmp/lukshdr-_dev_vda2"
    assert header_backup_path("/dev/mapper/x", "/d") == "/d/lukshdr-_dev_mapper_x"
    with pytest.raises(KeyListError):
        header_backup_path("/dev/../x")


def _write_backups(devices: list[str], backup_dir: str) -> dict[str, bytes]:
    digests = {}
    for n, device in enumerate(devices):
        content = f"LUKS header of {device} {n}".encode() * (n + 1)
        Path(header_backup_path(device, backup_dir)).write_bytes(content)
        digests[device] = _digest(content)
    return digests


def test_measurement_equals_sha256sum_over_the_glob(tmp_path: Path) -> None:
    """What `sha256sum <dir>/lukshdr-*` prints, glob and all, byte for byte."""
    digests = _write_backups(GLOB_ORDER_DEVICES, str(tmp_path))
    script = 'sha256sum "$1"/lukshdr-*'
    real = subprocess.run(
        ["bash", "-c", script, "sh", str(tmp_path)],
        env=C_LOCALE,
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    ours = format_header_measurement(digests, backup_dir=str(tmp_path))
    assert ours == real
    assert format_header_hashes(parse_header_measurement(ours, backup_dir=str(tmp_path))) == ours


@pytest.mark.skipif(shutil.which("busybox") is None, reason="busybox not installed")
def test_measurement_equals_busybox_sha256sum_over_the_glob(tmp_path: Path) -> None:
    """Heads' own tools: busybox's shell expands the glob, its sha256sum hashes."""
    digests = _write_backups(GLOB_ORDER_DEVICES, str(tmp_path))
    real = subprocess.run(
        ["busybox", "sh", "-c", 'busybox sha256sum "$1"/lukshdr-*', "sh", str(tmp_path)],
        env=C_LOCALE,
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    assert format_header_measurement(digests, backup_dir=str(tmp_path)) == real


def test_measurement_names_the_real_tmp_files() -> None:
    """The default names are /tmp/lukshdr-...: written there for real (names no
    other test uses) and hashed by sha256sum, then removed."""
    tag = uuid.uuid4().hex[:12]
    devices = [f"/dev/test-{tag}-b", f"/dev/test-{tag}-a/p1"]
    paths = [header_backup_path(d) for d in devices]
    assert all(p.startswith("/tmp/lukshdr-_dev_test-") for p in paths)
    try:
        digests = {}
        for device, path in zip(devices, paths, strict=True):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(device.encode())
            digests[device] = _digest(device.encode())
        real = subprocess.run(
            ["sha256sum", *sorted(paths, key=os.fsencode)],
            env=C_LOCALE,
            capture_output=True,
            check=True,
            timeout=60,
        ).stdout
        assert format_header_measurement(digests) == real
        assert measurement_digest(real) == hashlib.sha256(real).digest()
    finally:
        for path in paths:
            if os.path.lexists(path):
                os.unlink(path)


def test_measurement_digest_is_sha256_of_the_file(tmp_path: Path) -> None:
    text = format_header_measurement({"/dev/vda2": _digest(b"h")})
    (tmp_path / "luksDump.txt").write_bytes(text)
    real = subprocess.run(
        ["sha256sum", str(tmp_path / "luksDump.txt")], capture_output=True, check=True, timeout=60
    ).stdout
    assert measurement_digest(text).hex() == real.split()[0].decode()


def test_measurement_refusals_when_building() -> None:
    with pytest.raises(KeyListError, match="no LUKS header"):
        format_header_measurement({})
    with pytest.raises(KeyListError, match="share one header backup name"):
        format_header_measurement({"/dev/a_b": _digest(b"1"), "/dev/a/b": _digest(b"2")})
    with pytest.raises(KeyListError, match="not a sha256"):
        format_header_measurement({"/dev/vda2": b"short"})
    with pytest.raises(KeyListError):
        format_header_measurement({"/dev/vda2/../x": _digest(b"")})


def _line(name: str, digest: str = "ab" * 32) -> bytes:
    return f"{digest}  {name}\n".encode()


@pytest.mark.parametrize(
    "text",
    [
        b"",
        _line("/tmp/lukshdr-_dev_vda2")[:-1],  # cut short
        _line("/tmp/lukshdr-_dev_vda2", "AB" * 32),  # sha256sum prints lower case
        _line("/tmp/lukshdr-_dev_vda2", "ab" * 31),
        b"ab" * 32 + b" /tmp/lukshdr-_dev_vda2\n",
        b"ab" * 32 + b" */tmp/lukshdr-_dev_vda2\n",
        _line("/tmp/lukshdr-_dev_vdb") + _line("/tmp/lukshdr-_dev_vda"),  # not the glob's order
        _line("/tmp/lukshdr-_dev_vda") + _line("/tmp/lukshdr-_dev_vda"),
        _line("/tmp/luksDump.txt"),
        _line("/tmp/lukshdr-_etc_passwd"),
        _line("/tmp/lukshdr-_dev_.._x"),
        _line("/tmp/lukshdr-_dev_a b"),
        _line("/boot/lukshdr-_dev_vda2"),
        _line("/tmp/lukshdr-_dev_vda2").replace(b"\n", b"\r\n"),
        "\\" + _line("/tmp/lukshdr-_dev_vda2").decode(),
    ],
)
def test_measurement_parse_refusals(text: bytes | str) -> None:
    data = text.encode() if isinstance(text, str) else text
    with pytest.raises(KeyListError, match=re.escape(LUKS_HEADER_HASH_FILE)):
        parse_header_measurement(data)


@given(st.dictionaries(device_paths, st.binary(min_size=32, max_size=32), min_size=1, max_size=8))
def test_measurement_round_trip(digests: dict[str, bytes]) -> None:
    names = {header_backup_path(d) for d in digests}
    if len(names) < len(digests):  # /dev/a_b and /dev/a/b meet
        with pytest.raises(KeyListError):
            format_header_measurement(digests)
        return
    text = format_header_measurement(digests)
    parsed = parse_header_measurement(text)
    assert {h.backup_path: h.digest for h in parsed} == {
        header_backup_path(d): v for d, v in digests.items()
    }
    assert [h.backup_path.encode() for h in parsed] == sorted(n.encode() for n in names)
    assert format_header_hashes(parsed) == text
    assert format_header_hashes(list(reversed(parsed))) == text


def test_header_hashes_format_sorts() -> None:
    a = HeaderHash("/tmp/lukshdr-_dev_a", _digest(b"a"))
    b = HeaderHash("/tmp/lukshdr-_dev_b", _digest(b"b"))
    assert format_header_hashes([b, a]) == format_header_hashes([a, b])
    for name in ("/tmp/lukshdr-_dev_a\nb", "/tmp/lukshdr-_dev_a\\b", ""):
        with pytest.raises(KeyListError):
            format_header_hashes([HeaderHash(name, _digest(b"a"))])


# ---------------------------------------------------------------- crypttab overrides


def test_overrides_parse_heads_form() -> None:
    text = (
        f"/etc/crypttab:luks-{UUID_A} UUID={UUID_A} /secret.key luks,discard\n"
        "/cryptroot/crypttab:sda3_crypt /dev/disk/by-path/pci-0000:00:1f.2-ata-1 /secret.key luks\n"
        "/cryptroot/crypttab:\n"
        "/etc/crypttab:# a comment\tkept\n"
    ).encode()
    overrides = parse_crypttab_overrides(text)
    assert overrides == [
        CrypttabOverride("etc/crypttab", f"luks-{UUID_A} UUID={UUID_A} /secret.key luks,discard"),
        CrypttabOverride(
            "cryptroot/crypttab",
            "sda3_crypt /dev/disk/by-path/pci-0000:00:1f.2-ata-1 /secret.key luks",
        ),
        CrypttabOverride("cryptroot/crypttab", ""),
        CrypttabOverride("etc/crypttab", "# a comment\tkept"),
    ]
    assert format_crypttab_overrides(overrides) == text


def test_overrides_accept_a_relative_path() -> None:
    assert parse_crypttab_overrides(b"etc/crypttab:x y\n") == [
        CrypttabOverride("etc/crypttab", "x y")
    ]
    assert format_crypttab_overrides([CrypttabOverride("etc/crypttab", "x y")]) == (
        b"/etc/crypttab:x y\n"
    )


@pytest.mark.parametrize(
    "text",
    [
        b"",
        b"/etc/crypttab luks x\n",
        b"/etc/../etc/crypttab:x\n",
        b"../crypttab:x\n",
        b"/etc/passwd:root::0:0\n",
        b"//etc/crypttab:x\n",
        b"/etc//crypttab:x\n",
        b"/etc/./crypttab:x\n",
        b"/etc/crypt tab:x\n",
        b"/etc/crypttab.d:x\n",
        b"/etc/crypttab:a\x07b\n",
        b"/etc/crypttab:a\x1bb\n",
        b"/etc/crypttab:a\rb\n",
        b"/etc/crypttab:a\0b\n",
        b"/etc/crypttab:\xff\n",
        b"/etc/crypttab:a\xe2\x80\xa8b\n",  # U+2028, a line break to some readers
        b"/etc/crypttab:" + b"a" * 4097 + b"\n",
        b"/etc/crypttab:x\n" * 1025,
    ],
)
def test_overrides_refusals(text: bytes) -> None:
    with pytest.raises(KeyListError, match=re.escape(CRYPTTAB_OVERRIDES_FILE)):
        parse_crypttab_overrides(text)


@given(st.lists(st.builds(CrypttabOverride, override_paths, crypttab_lines), min_size=1))
def test_overrides_round_trip(overrides: list[CrypttabOverride]) -> None:
    text = format_crypttab_overrides(overrides)
    assert parse_crypttab_overrides(text) == overrides
    assert format_crypttab_overrides(parse_crypttab_overrides(text)) == text


def test_overrides_format_refuses_bad_entries() -> None:
    for overrides in (
        [],
        [CrypttabOverride("/etc/crypttab", "x")],  # the model's path is relative
        [CrypttabOverride("etc/crypttab", "x\ny")],
        [CrypttabOverride("etc/shadow", "x")],
    ):
        with pytest.raises(KeyListError):
            format_crypttab_overrides(overrides)


# ---------------------------------------------------------------- every parser, hostile bytes

PARSERS: list[Callable[[bytes], object]] = [
    parse_key_devices,
    parse_key_lvm,
    parse_header_measurement,
    parse_crypttab_overrides,
]


@settings(max_examples=400)
@given(hostile_bytes)
def test_parsers_raise_only_their_error(data: bytes) -> None:
    for parse in PARSERS:
        try:
            parse(data)
        except KeyListError as err:
            assert str(err)  # a message, naming the file
            assert ".txt" in str(err)


@given(hostile_bytes)
def test_what_parses_formats_back_and_parses_the_same(data: bytes) -> None:
    try:
        devices = parse_key_devices(data)
    except KeyListError:
        pass
    else:
        assert parse_key_devices(format_key_devices(devices)) == devices
    try:
        overrides = parse_crypttab_overrides(data)
    except KeyListError:
        pass
    else:
        assert parse_crypttab_overrides(format_crypttab_overrides(overrides)) == overrides
