"""The crypttab lines of the key cpio (heads-facts.md §5.4): the default lines,
the overrides made from an OS initrd's crypttab at setup, and the files made
from them at kexec. The lines are read back by the shell's `read` (as Debian's
initramfs scripts read crypttab) and by systemd's crypttab generator (dracut's
initramfs), so the key file they name is the one the OS will use."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime.disk.crypttab import (
    DEFAULT_CRYPTTAB_PATHS,
    SECRET_KEY_PATH,
    CrypttabError,
    crypttabs_from_overrides,
    default_crypttab_line,
    default_crypttabs,
    override_lines,
    with_secret_key,
)
from runtime.disk.key_lists import (
    MAX_FILE_BYTES,
    CrypttabOverride,
    KeyDevice,
    format_crypttab_overrides,
    is_crypttab_text,
    parse_crypttab_overrides,
)

UUID_A = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
UUID_B = "f0e1d2c3-b4a5-4968-8776-655443322110"
SYSTEMD_GENERATOR = Path("/lib/systemd/system-generators/systemd-cryptsetup-generator")

#: a Debian initramfs's cryptroot/crypttab beside dracut-style entries and the noise
#: a hand-edited file carries
OS_CRYPTTAB = (
    b"# <target name>\t<source device>\t<key file>\t<options>\n"
    b"   # an indented comment\n"
    b"\n"
    b"sda3_crypt UUID=" + UUID_A.encode() + b" none luks,discard\n"
    b"  nonesuch\tUUID=none-of-it\tnone\tluks  \n"
    b"swap /dev/sda4 /dev/urandom swap,cipher=aes-xts-plain64\n"
    b"data /dev/sdb1 /etc/keys/data.key luks\n"
    b"plain /dev/sdc1\n"
    b"dash /dev/sdd1 - luks\n"
    b"lonely\n"
    b"# caf\xe9: a Latin-1 comment, never read\n"
)


def test_default_line_is_heads_line() -> None:
    assert default_crypttab_line(UUID_A) == (
        f"luks-{UUID_A} UUID={UUID_A} /secret.key luks,discard"
    )
    assert SECRET_KEY_PATH == "/secret.key"


def test_default_crypttabs_write_both_paths_alike() -> None:
    files = default_crypttabs([UUID_B, UUID_A])
    assert list(files) == ["etc/crypttab", "cryptroot/crypttab"] == list(DEFAULT_CRYPTTAB_PATHS)
    expected = (
        f"luks-{UUID_B} UUID={UUID_B} /secret.key luks,discard\n"
        f"luks-{UUID_A} UUID={UUID_A} /secret.key luks,discard\n"
    ).encode()
    assert files["etc/crypttab"] == files["cryptroot/crypttab"] == expected


@pytest.mark.parametrize(
    "uuids", [[], [UUID_A, UUID_A], ["x y"], ["a\nb"], [""], ["0" * 41], ["UUID=abc"]]
)
def test_default_crypttabs_refusals(uuids: list[str]) -> None:
    with pytest.raises(CrypttabError):
        default_crypttabs(uuids)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("name /dev/x none luks", "name /dev/x /secret.key luks"),
        ("name /dev/x none", "name /dev/x /secret.key"),
        ("name UUID=abc", "name UUID=abc /secret.key"),
        ("name\tUUID=abc\tnone\tluks,discard", "name\tUUID=abc\t/secret.key\tluks,discard"),
        ("  name  /dev/x   none  luks  ", "name  /dev/x   /secret.key  luks"),
        ("nonesuch UUID=none-x none none", "nonesuch UUID=none-x /secret.key none"),
        ("name /dev/x /etc/key luks", "name /dev/x /etc/key luks"),
        ("name /dev/x - luks", "name /dev/x - luks"),  # '-' is a file name to Debian
        ("name /dev/x NONE luks", "name /dev/x NONE luks"),
        ("name /dev/x /secret.key luks", "name /dev/x /secret.key luks"),
        ("name", "name"),
        ("", ""),
    ],
)
def test_with_secret_key(line: str, expected: str) -> None:
    assert with_secret_key(line) == expected


def test_override_lines_from_an_os_crypttab() -> None:
    overrides = override_lines("/cryptroot/crypttab", OS_CRYPTTAB)
    assert all(o.path == "cryptroot/crypttab" for o in overrides)
    assert [o.line for o in overrides] == [
        f"sda3_crypt UUID={UUID_A} /secret.key luks,discard",
        "nonesuch\tUUID=none-of-it\t/secret.key\tluks",
        "swap /dev/sda4 /dev/urandom swap,cipher=aes-xts-plain64",
        "data /dev/sdb1 /etc/keys/data.key luks",
        "plain /dev/sdc1 /secret.key",
        "dash /dev/sdd1 - luks",
        "lonely",
    ]
    assert override_lines("cryptroot/crypttab", OS_CRYPTTAB) == overrides


def test_with_the_key_devices_only_their_entries_get_the_key_file() -> None:
    devices = [KeyDevice("/dev/vda3", UUID_A.upper()), KeyDevice("/dev/sdc1", UUID_B)]
    crypttab = (
        OS_CRYPTTAB
        + (
            f"by_uuid /dev/disk/by-uuid/{UUID_B} none luks\n"
            f"other UUID={UUID_B}0 none luks\n"
            "unlisted /dev/sde1 none luks\n"
            f"scripted UUID={UUID_A} none luks,keyscript=/lib/cryptsetup/askpass\n"
            f"sized UUID={UUID_A} none luks,keyfile-size=32\n"
        ).encode()
    )
    lines = [o.line for o in override_lines("cryptroot/crypttab", crypttab, devices)]
    assert lines == [
        # its UUID, compared without case as blkid and udev show it
        f"sda3_crypt UUID={UUID_A} /secret.key luks,discard",
        "nonesuch\tUUID=none-of-it\tnone\tluks",
        "swap /dev/sda4 /dev/urandom swap,cipher=aes-xts-plain64",
        "data /dev/sdb1 /etc/keys/data.key luks",
        "plain /dev/sdc1",  # its path: another disk, maybe, under the OS's kernel
        "dash /dev/sdd1 - luks",
        "lonely",
        f"by_uuid /dev/disk/by-uuid/{UUID_B} /secret.key luks",
        f"other UUID={UUID_B}0 none luks",
        "unlisted /dev/sde1 none luks",
        # options that would give /secret.key another meaning: left asking
        f"scripted UUID={UUID_A} none luks,keyscript=/lib/cryptsetup/askpass",
        f"sized UUID={UUID_A} none luks,keyfile-size=32",
    ]


def test_override_lines_of_a_crypttab_without_entries() -> None:
    assert override_lines("etc/crypttab", b"# nothing here\n\n") == []
    assert override_lines("etc/crypttab", b"") == []


@pytest.mark.parametrize(
    ("path", "crypttab", "words"),
    [
        ("etc/passwd", b"x /dev/x none\n", "not a crypttab path"),
        ("../etc/crypttab", b"x /dev/x none\n", "not a crypttab path"),
        ("etc//crypttab", b"x /dev/x none\n", "not a crypttab path"),
        ("etc/crypttab", b"x /dev/x none\r\n", "line 1 holds a carriage return"),
        ("etc/crypttab", b"# c\nx /dev/x\0 none\n", "NUL"),
        ("etc/crypttab", b"# c\nx /dev/caf\xe9 none\n", "line 2 is not UTF-8"),
        ("etc/crypttab", b"x /dev/x none\x1b[2J\n", "line 1 holds a control character"),
        ("etc/crypttab", b"x /dev/" + b"a" * 5000 + b" none\n", "too long"),
        ("etc/crypttab", b"#" * (MAX_FILE_BYTES + 1), "larger than"),
        ("etc/crypttab", b"x /dev/x none\n" * 1025, "more than"),
    ],
)
def test_override_lines_refusals(path: str, crypttab: bytes, words: str) -> None:
    with pytest.raises(CrypttabError) as caught:
        override_lines(path, crypttab)
    assert words in str(caught.value)


def test_crypttabs_from_overrides_append_per_path() -> None:
    overrides = [
        CrypttabOverride("cryptroot/crypttab", "a UUID=1 /secret.key luks"),
        CrypttabOverride("etc/crypttab", "b UUID=2 /secret.key luks"),
        CrypttabOverride("cryptroot/crypttab", "c UUID=3 /secret.key luks"),
    ]
    assert crypttabs_from_overrides(overrides) == {
        "cryptroot/crypttab": b"a UUID=1 /secret.key luks\nc UUID=3 /secret.key luks\n",
        "etc/crypttab": b"b UUID=2 /secret.key luks\n",
    }
    assert list(crypttabs_from_overrides(overrides)) == ["cryptroot/crypttab", "etc/crypttab"]
    assert crypttabs_from_overrides([]) == {}


def test_crypttabs_from_overrides_refuse_what_was_not_checked() -> None:
    for bad in (
        CrypttabOverride("/etc/crypttab", "x"),
        CrypttabOverride("etc/shadow", "x"),
        CrypttabOverride("etc/crypttab", "x\ny"),
    ):
        with pytest.raises(CrypttabError):
            crypttabs_from_overrides([bad])


def test_setup_to_kexec_through_the_boot_file() -> None:
    """Setup makes the lines, /boot keeps them in Heads' form, kexec rebuilds the file."""
    overrides = override_lines("/cryptroot/crypttab", OS_CRYPTTAB)
    stored = format_crypttab_overrides(overrides)
    assert stored.startswith(b"/cryptroot/crypttab:sda3_crypt UUID=")
    files = crypttabs_from_overrides(parse_crypttab_overrides(stored))
    assert list(files) == ["cryptroot/crypttab"]
    assert files["cryptroot/crypttab"].decode().splitlines() == [o.line for o in overrides]


def _shell_fields(text: bytes, tmp_path: Path) -> list[list[str]]:
    """The fields `read -r name source key options` gives, as Debian's scripts read."""
    (tmp_path / "crypttab").write_bytes(text)
    script = 'while read -r n s k o; do printf "%s|%s|%s|%s\\n" "$n" "$s" "$k" "$o"; done < "$1"'
    out = subprocess.run(
        ["sh", "-c", script, "sh", str(tmp_path / "crypttab")],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    return [line.split("|") for line in out.decode().splitlines()]


def test_the_shell_reads_the_key_file_field(tmp_path: Path) -> None:
    default = default_crypttabs([UUID_A])["etc/crypttab"]
    assert _shell_fields(default, tmp_path) == [
        [f"luks-{UUID_A}", f"UUID={UUID_A}", "/secret.key", "luks,discard"]
    ]
    rebuilt = crypttabs_from_overrides(override_lines("cryptroot/crypttab", OS_CRYPTTAB))
    fields = _shell_fields(rebuilt["cryptroot/crypttab"], tmp_path)
    assert [f[2] for f in fields] == [
        "/secret.key",
        "/secret.key",
        "/dev/urandom",
        "/etc/keys/data.key",
        "/secret.key",
        "-",
        "",
    ]


@pytest.mark.skipif(not SYSTEMD_GENERATOR.exists(), reason="systemd's crypttab generator absent")
def test_systemd_reads_the_key_file(tmp_path: Path) -> None:
    """dracut's initramfs runs this generator over etc/crypttab."""
    crypttab = tmp_path / "crypttab"
    os_lines = b"".join(OS_CRYPTTAB.splitlines(keepends=True)[:5])  # comments and two entries
    crypttab.write_bytes(
        default_crypttabs([UUID_A])["etc/crypttab"]
        + crypttabs_from_overrides(override_lines("etc/crypttab", os_lines))["etc/crypttab"]
    )
    units = tmp_path / "units"
    units.mkdir()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "SYSTEMD_CRYPTTAB": str(crypttab),
        "SYSTEMD_PROC_CMDLINE": "",  # not this host's luks.* options
    }
    subprocess.run(
        [str(SYSTEMD_GENERATOR), str(units), str(units), str(units)],
        env=env,
        capture_output=True,
        check=True,
        timeout=60,
    )
    starts = sorted(
        line
        for unit in units.glob("systemd-cryptsetup@*.service")
        for line in unit.read_text().splitlines()
        if line.startswith("ExecStart=")
    )
    assert starts == [
        "ExecStart=/lib/systemd/systemd-cryptsetup attach "
        f"'luks-{UUID_A}' '/dev/disk/by-uuid/{UUID_A}' '/secret.key' 'luks,discard'",
        "ExecStart=/lib/systemd/systemd-cryptsetup attach "
        "'nonesuch' '/dev/disk/by-uuid/none-of-it' '/secret.key' 'luks'",
        "ExecStart=/lib/systemd/systemd-cryptsetup attach "
        f"'sda3_crypt' '/dev/disk/by-uuid/{UUID_A}' '/secret.key' 'luks,discard'",
    ]


# ---------------------------------------------------------------- properties

#: crypttab-like text: its separators, the key words, and bytes to refuse
os_crypttabs = st.one_of(
    st.binary(max_size=400),
    st.lists(
        st.sampled_from(
            [
                *(b"none", b"name", b"/dev/sda1", b"UUID=ab", b"luks", b"-", b"#", b" ", b"\t"),
                *(b"\n", b"\r", b"\0", b"\xff", b"\x1b", "é".encode(), "\u2028".encode()),
            ]
        ),
        max_size=60,
    ).map(b"".join),
)


@settings(max_examples=400)
@given(os_crypttabs)
def test_override_lines_raise_only_their_error_and_store_cleanly(crypttab: bytes) -> None:
    try:
        overrides = override_lines("etc/crypttab", crypttab)
    except CrypttabError as err:
        assert "etc/crypttab" in str(err)
        return
    # whatever setup makes, /boot can hold and kexec can rebuild
    stored = format_crypttab_overrides(overrides) if overrides else b""
    if overrides:
        assert parse_crypttab_overrides(stored) == overrides
        assert crypttabs_from_overrides(overrides)["etc/crypttab"].count(b"\n") == len(overrides)


crypttab_text = st.text(
    st.characters(blacklist_categories=("C", "Z"), whitelist_characters=" \t"), max_size=60
)


@given(crypttab_text)
def test_with_secret_key_is_stable(line: str) -> None:
    once = with_secret_key(line)
    assert with_secret_key(once) == once
    assert is_crypttab_text(once) or len(once) > len(line)
    fields = once.split()
    if len(fields) >= 2:
        assert fields[2] != "none"
