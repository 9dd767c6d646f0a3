"""gnupg built from its pinned Debian source (tools/initrd/gnupg_build.py): the
five programs need no SQLite, LDAP or GnuTLS; the built gpg and gpg-agent make
a key and sign through the agent, the built agent starts the built scdaemon,
and the built gpgv accepts the signature and refuses a changed file; a second
build in another directory, with another umask and time zone, gives the same
bytes.

The first build (about 2 minutes on two busy cores) goes into the ordinary
cache and is reused afterwards; the second is always compiled afresh."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

from runtime.integrity.gpg_signer import stop_gpg_daemons
from tests.support.second_build import build_elsewhere, tree
from tools.initrd import elf
from tools.initrd.cache import default_cache_dir
from tools.initrd.gnupg_build import FORBIDDEN_LIBRARIES, PROGRAMS, build_gnupg
from tools.initrd.lock import load_lock

pytestmark = [pytest.mark.build, pytest.mark.xdist_group("build"), pytest.mark.timeout(3600)]

KEY_SPEC = (
    "%no-protection\nKey-Type: eddsa\nKey-Curve: ed25519\nKey-Usage: sign\n"
    "Name-Real: Source Build\nName-Email: source-build@example.org\nExpire-Date: 0\n%commit\n"
)
TIMEOUT = 120


@pytest.fixture(scope="module")
def built() -> dict[str, Path]:
    return build_gnupg(load_lock(), default_cache_dir())


def run(argv: list[str | Path], stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [str(a) for a in argv], input=stdin, capture_output=True, timeout=TIMEOUT, check=False
    )


def test_the_programs_need_no_sqlite_ldap_or_tls(built: dict[str, Path]) -> None:
    assert sorted(built) == sorted(PROGRAMS)
    for image_path, path in built.items():
        names, _ = elf.needed(str(path))
        assert names, image_path
        assert not [n for n in names if n.startswith(FORBIDDEN_LIBRARIES)], (image_path, names)
        assert stat.S_IMODE(path.stat().st_mode) == 0o755
    # what gpg did pull in, and scdaemon's internal CCID driver (libusb)
    assert "libsqlite3.so.0" not in elf.needed(str(built["usr/bin/gpg"]))[0]
    assert "libusb-1.0.so.0" in elf.needed(str(built["usr/lib/gnupg/scdaemon"]))[0]


def _dynamic_symbols(path: Path) -> set[str]:
    with path.open("rb") as f:
        section = ELFFile(f).get_section_by_name(".dynsym")
        assert isinstance(section, SymbolTableSection)
        return {symbol.name for symbol in section.iter_symbols()}


def test_programs_are_stripped_and_debians_patches_hold(built: dict[str, Path]) -> None:
    for path in built.values():
        with path.open("rb") as f:
            assert ELFFile(f).get_section_by_name(".symtab") is None, path
    # Debian's patch (applied to configure.ac, so configure was regenerated)
    # makes the daemons holding secrets refuse ptrace: prctl(PR_SET_DUMPABLE, 0).
    for daemon in ("usr/bin/gpg-agent", "usr/lib/gnupg/scdaemon"):
        assert "prctl" in _dynamic_symbols(built[daemon]), daemon


def test_scdaemon_has_the_internal_ccid_driver(built: dict[str, Path]) -> None:
    # --gpgconf-list offers disable-ccid only when the CCID driver is compiled in.
    done = run([built["usr/lib/gnupg/scdaemon"], "--gpgconf-list"])
    assert done.returncode == 0, done.stderr
    assert b"\ndisable-ccid:" in b"\n" + done.stdout


@pytest.fixture
def gpg_home(built: dict[str, Path]) -> Iterator[Path]:
    """An empty GnuPG home under /tmp (the agent's socket path must stay short)
    whose agent runs the built scdaemon; its daemons are stopped at the end."""
    home = Path(tempfile.mkdtemp(prefix="gpg-src-", dir="/tmp"))
    home.chmod(0o700)
    (home / "gpg-agent.conf").write_text(f"scdaemon-program {built['usr/lib/gnupg/scdaemon']}\n")
    try:
        yield home
    finally:
        run([built["usr/bin/gpgconf"], "--homedir", home, "--kill", "all"])
        stop_gpg_daemons(str(home))
        shutil.rmtree(home, ignore_errors=True)


def assuan(socket_path: str, command: str) -> list[str]:
    """One Assuan command to a daemon's socket: its data lines (D), which must
    end with OK."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(TIMEOUT)
        conn.connect(socket_path)
        reader = conn.makefile("rb")
        assert reader.readline().startswith(b"OK"), "the daemon did not greet"
        conn.sendall(command.encode() + b"\n")
        data: list[str] = []
        while True:
            line = reader.readline().decode().rstrip("\n")
            if line.startswith("D "):
                data.append(line[2:])
            elif line.startswith(("OK", "ERR")) or not line:
                assert line.startswith("OK"), f"{command}: {line or 'connection closed'}"
                return data


def test_built_gpg_signs_through_built_agent_and_built_gpgv_verifies(
    built: dict[str, Path], gpg_home: Path, tmp_path: Path
) -> None:
    gpg: list[str | Path] = [built["usr/bin/gpg"], "--homedir", gpg_home, "--batch"]
    agent: list[str | Path] = ["--agent-program", built["usr/bin/gpg-agent"]]
    made = run([*gpg, *agent, "--gen-key"], stdin=KEY_SPEC.encode())
    assert made.returncode == 0, made.stderr

    # The agent gpg started is the built one, and it starts the built scdaemon.
    dirs = run([built["usr/bin/gpgconf"], "--homedir", gpg_home, "--list-dirs", "agent-socket"])
    agent_socket = dirs.stdout.decode().strip()
    (pid,) = assuan(agent_socket, "GETINFO pid")
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
    except PermissionError:
        exe = None  # a daemon that refuses ptrace hides its exe from other users
    if exe is not None:
        assert Path(exe) == built["usr/bin/gpg-agent"]
    assert assuan(agent_socket, "SCD GETINFO version") == ["2.2.40"]

    document = tmp_path / "boot.txt"
    document.write_bytes(b"kernel and initrd hashes\n")
    signature = tmp_path / "boot.txt.sig"
    signed = run([*gpg, *agent, "--detach-sign", "--output", signature, document])
    assert signed.returncode == 0, signed.stderr
    keyring = tmp_path / "owner.gpg"
    exported = run([*gpg, "--export", "--output", keyring])
    assert exported.returncode == 0 and keyring.stat().st_size > 0, exported.stderr

    gpgv: list[str | Path] = [built["usr/bin/gpgv"], "--keyring", keyring]
    good = run([*gpgv, "--status-fd", "1", signature, document])
    assert good.returncode == 0, good.stderr
    assert b"[GNUPG:] GOODSIG" in good.stdout and b"VALIDSIG" in good.stdout

    document.write_bytes(b"kernel and initrd hashes, changed\n")
    bad = run([*gpgv, "--status-fd", "1", signature, document])
    assert bad.returncode != 0
    assert b"[GNUPG:] BADSIG" in bad.stdout and b"GOODSIG" not in bad.stdout


def test_a_second_build_elsewhere_is_bit_identical(
    built: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    again = build_elsewhere(build_gnupg, tmp_path, monkeypatch)
    first_root = built["usr/bin/gpg"].parents[2]
    second_root = again["usr/bin/gpg"].parents[2]
    assert first_root != second_root
    for image_path in PROGRAMS:
        assert built[image_path].read_bytes() == again[image_path].read_bytes(), image_path
    assert tree(first_root) == tree(second_root)
