"""busybox built from its pinned Debian source (tools/initrd/busybox_build.py):
exactly the recipe's applets, the image's symlinks among them; linked like
Debian's (PIE, full RELRO, libc only); its sh runs /init's constructs and
functions with its own applets; a second build in another directory, with
another umask and time zone, gives the same bytes.

The first build (about 30 s) goes into the ordinary cache and is reused
afterwards; the second is always compiled afresh."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pytest
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile

from tests.conftest import REPO_ROOT
from tests.support.second_build import build_elsewhere
from tools.initrd import elf
from tools.initrd.busybox_build import APPLETS, build_busybox, listed_applets
from tools.initrd.cache import default_cache_dir
from tools.initrd.lock import load_lock

pytestmark = [pytest.mark.build, pytest.mark.xdist_group("build"), pytest.mark.timeout(1800)]

INIT = REPO_ROOT / "initrd_overlay" / "init"
TIMEOUT = 60


@pytest.fixture(scope="module")
def built() -> Path:
    return build_busybox(load_lock(), default_cache_dir())


@pytest.fixture
def bin_dir(built: Path, tmp_path: Path) -> Path:
    """A /bin of the image's symlinks to the built busybox: a script's commands
    are the built applets, never the host's programs."""
    folder = tmp_path / "bin"
    folder.mkdir()
    (folder / "busybox").symlink_to(built)
    for applet in APPLETS:
        (folder / applet).symlink_to("busybox")
    return folder


def run_sh(
    bin_dir: Path, script: str, cwd: Path, stdin: int | None = subprocess.DEVNULL
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(bin_dir / "sh"), "-c", script],
        cwd=cwd,
        env={"PATH": str(bin_dir), "LC_ALL": "C"},
        stdin=stdin,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def test_the_applets_are_the_recipe_s(built: Path) -> None:
    listed = listed_applets(built)
    assert sorted(listed) == sorted(APPLETS)  # the image links each (tests/build/test_image.py)
    # the runtime's forms
    for applet in ("mount", "umount", "hwclock", "poweroff", "reboot", "sh", "setsid"):
        assert applet in listed, applet


def test_linked_like_debian_s_against_libc_only(built: Path) -> None:
    assert elf.needed(str(built)) == (["libc.so.6"], "/lib64/ld-linux-x86-64.so.2")
    with built.open("rb") as f:
        image = ELFFile(f)
        assert image["e_type"] == "ET_DYN"  # PIE
        assert image.get_section_by_name(".symtab") is None  # stripped
        flags = [
            tag.entry.d_val
            for section in image.iter_sections()
            if isinstance(section, DynamicSection)
            for tag in section.iter_tags()
            if tag.entry.d_tag == "DT_FLAGS"
        ]
        assert flags and flags[0] & 0x8  # DF_BIND_NOW: full RELRO
        assert any(s["p_type"] == "PT_GNU_RELRO" for s in image.iter_segments())


SCRIPT = r"""
set -u
double() { echo $(( $1 * 2 )); }
[ "$(double 21)" = 42 ] || exit 10
test -d / && [ ! -e /nonexistent ] || exit 11
[[ "abc" == a* ]] || exit 12
v="/dev/ttyS1"; [ "${v#/dev/}" = ttyS1 ] || exit 13
printf '%s\n' one two three > list.txt
[ "$(wc -l < list.txt)" -eq 3 ] || exit 14
[ "$(sort -r list.txt | head -n 1)" = two ] || exit 15
[ "$(tr a-z A-Z < list.txt | sed -n '2p' | cut -c1-2)" = TW ] || exit 16
echo "ttyS0 tty1" | grep -qw ttyS0 || exit 17
echo "ttyS10" | grep -qw ttyS1 && exit 18
case " quiet runtime.trace " in *" runtime.trace "*) traced=1 ;; *) traced= ;; esac
[ -n "$traced" ] || exit 19
read -r first rest < list.txt; [ "$first" = one ] || exit 20
head -c 3 list.txt | grep -q '^one$' || exit 21
sha256sum list.txt > sums && sha256sum -c -s sums || exit 22
echo changed >> list.txt; sha256sum -c -s sums 2>/dev/null && exit 23
mkdir -p a/b && touch a/b/f && ln -s b/f a/l && [ "$(find a -type f | wc -l)" -eq 1 ] || exit 24
( sleep 0; exit 3 ) & wait $!; [ $? -eq 3 ] || exit 25
command -v grep > /dev/null || exit 26
printf 'b 1\na 2\n' > keyed; [ "$(sort -t ' ' -k 2 keyed | head -n 1)" = "b 1" ] || exit 27
df -h . > /dev/null || exit 28
find . -maxdepth 0 -newer list.txt > /dev/null || exit 29
echo done
"""


def test_sh_runs_init_s_constructs_with_the_built_applets(bin_dir: Path, tmp_path: Path) -> None:
    done = run_sh(bin_dir, SCRIPT, tmp_path)
    assert (done.returncode, done.stdout, done.stderr) == (0, "done\n", "")


def test_read_takes_a_fractional_timeout_and_init_s_read_flags(
    bin_dir: Path, tmp_path: Path
) -> None:
    # /init: read -r -s -n 1 -t 0.5 key </dev/console, on a line where nobody types
    script = 'read -r -s -n 1 -t 0.3 key; echo "status=$? key=${key:-}"'
    silent, writer = os.pipe()  # kept open: no end of file, only the timeout
    try:
        started = time.monotonic()
        done = run_sh(bin_dir, script, tmp_path, stdin=silent)
        waited = time.monotonic() - started
    finally:
        os.close(silent)
        os.close(writer)
    assert done.stderr == ""
    status, key = done.stdout.split()
    # timed out after 0.3 s (busybox says 1; a timeout it could not read would
    # fail at once, in words on stderr)
    assert status == "status=1" and key == "key="
    assert 0.25 < waited < 10


def _function(name: str) -> str:
    found = re.search(rf"^{name}\(\) {{\n.*?^}}\n", INIT.read_text(), re.S | re.M)
    assert found, name
    return found.group(0)


def test_init_s_own_functions_run(bin_dir: Path, tmp_path: Path) -> None:
    values = tmp_path / "init"
    values.mkdir()
    (values / "recovery-serial").write_text("/dev/null\n")  # a character device
    (tmp_path / "active").write_text("tty0 ttyS0\n")
    script = (
        (_function("init_value") + _function("recovery_serial"))
        .replace("/etc/runtime/init/", f"{values}/")
        .replace("/sys/class/tty/console/active", str(tmp_path / "active"))
    )
    done = run_sh(bin_dir, script + "init_value recovery-serial; recovery_serial", tmp_path)
    assert (done.returncode, done.stdout, done.stderr) == (0, "/dev/null\n/dev/null\n", "")


def test_init_clears_the_environment_the_kernel_command_line_gave_it(
    bin_dir: Path, tmp_path: Path
) -> None:
    planted = {
        "LD_PRELOAD": "/boot/evil.so",
        "TSS2_LOG": "all+TRACE",
        "RUNTIME_TPM_TCTI": "device:/dev/ttyS1",
        "ENV": "/media/profile",
        "PYTHONPATH": "/media",
    }
    done = subprocess.run(
        [
            str(bin_dir / "sh"),
            "-c",
            _function("clean_environment") + f"clean_environment; PATH={bin_dir}; env",
        ],
        env={"PATH": str(bin_dir), **planted},
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    left = {line.split("=", 1)[0] for line in done.stdout.splitlines()}
    assert not left & set(planted), done.stdout


def test_setsid_c_runs_the_shell(bin_dir: Path, tmp_path: Path) -> None:
    done = subprocess.run(
        [str(bin_dir / "setsid"), "-c", "sh", "-c", "exit 7"],
        env={"PATH": str(bin_dir)},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert done.returncode == 7, done.stderr


def test_a_second_build_elsewhere_is_bit_identical(
    built: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    again = build_elsewhere(build_busybox, tmp_path, monkeypatch)
    assert again != built
    assert again.read_bytes() == built.read_bytes()
    # the .config Kconfig settled is kept beside each tree, and is the same
    entry, other = built.parents[2], again.parents[2]
    assert (entry / "config").read_text() == (other / "config").read_text()
