"""/init's two settings (CONFIG_RECOVERY_KEY, CONFIG_BOOT_RECOVERY_SERIAL): the
build resolves them with the runtime's parser (build_initrd.init_values) and
/init reads the files it writes; its shell functions run here with the
image's busybox when the build cache has it (else /bin/sh)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from build_initrd import init_values
from runtime.config import Layer, load_settings
from tests.conftest import REPO_ROOT

INIT = REPO_ROOT / "initrd_overlay" / "init"
CACHED_BUSYBOX = sorted(Path.home().glob(".cache/heads-runtime/unpacked/busybox_*/bin/busybox"))
SHELL = [str(CACHED_BUSYBOX[0]), "sh"] if CACHED_BUSYBOX else ["/bin/sh"]
SERIAL = next((f"/dev/ttyS{n}" for n in range(4) if os.path.exists(f"/dev/ttyS{n}")), None)


def _function(name: str) -> str:
    found = re.search(rf"^{name}\(\) {{\n.*?^}}\n", INIT.read_text(), re.S | re.M)
    assert found, name
    return found.group(0)


def values(tmp_path: Path, text: str, owner_key: bool = True) -> dict[str, str]:
    path = tmp_path / "config.user"
    path.write_bytes(text.encode())
    return init_values(load_settings([Layer("your settings", str(path))]).settings, owner_key)


def run_init(tmp_path: Path, call: str, files: dict[str, str], console: str | None = "tty0") -> str:
    """``call`` after /init's functions, reading these init values."""
    init_dir = tmp_path / "init"
    init_dir.mkdir(exist_ok=True)
    for name, value in files.items():
        (init_dir / name).write_text(value + "\n")
    active = tmp_path / "active"
    if console is not None:
        active.write_text(console + "\n")
    script = (
        (_function("init_value") + _function("recovery_serial"))
        .replace("/etc/runtime/init/", f"{init_dir}/")
        .replace("/sys/class/tty/console/active", str(active))
    )
    done = subprocess.run(
        [*SHELL, "-c", script + call], capture_output=True, text=True, timeout=30, check=True
    )
    return done.stdout.rstrip("\n")


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("CONFIG_RECOVERY_KEY=R\n", "R"),
        ("export CONFIG_RECOVERY_KEY='!'\n", "!"),
        ('CONFIG_RECOVERY_KEY="x"\r\n', "x"),  # a CRLF line: read as the runtime reads it
        ("CONFIG_RECOVERY_KEY='x\n", "r"),  # an unclosed quote: skipped, the default
        ("   CONFIG_RECOVERY_KEY=q   # the q key\n", "q"),
    ],
)
def test_the_recovery_key_is_the_runtimes_reading(tmp_path: Path, text: str, key: str) -> None:
    found = values(tmp_path, text)
    assert found["recovery-key"] == key
    assert run_init(tmp_path, "init_value recovery-key", found) == key


@pytest.mark.parametrize(
    "text",
    [
        "CONFIG_BOOT_RECOVERY_SERIAL='/dev/ttyS1\n",  # skipped by the runtime: no listener
        'CONFIG_BOOT_RECOVERY_SERIAL="/dev/tty"S1\n',
        'CONFIG_BOOT_RECOVERY_SERIAL="/dev/sda"\n',
        'CONFIG_BOOT_RECOVERY_SERIAL="$(reboot)"\n',
    ],
)
def test_a_line_the_runtime_does_not_take_gets_no_listener(tmp_path: Path, text: str) -> None:
    assert values(tmp_path, text)["recovery-serial"] == ""


def test_no_owner_key_or_the_tokens_line_gets_no_listener(tmp_path: Path) -> None:
    line = 'CONFIG_BOOT_RECOVERY_SERIAL="/dev/ttyS1"\n'
    assert values(tmp_path, line)["recovery-serial"] == "/dev/ttyS1"
    assert values(tmp_path, line, owner_key=False)["recovery-serial"] == ""
    token = 'CONFIG_HOTPKEY=y\nCONFIG_HOTP_TOKEN="serial:/dev/ttyS1"\n'
    assert values(tmp_path, line + token)["recovery-serial"] == ""


@pytest.mark.skipif(SERIAL is None, reason="this host has no /dev/ttyS* to stand in")
@pytest.mark.parametrize(
    ("value", "console", "listens"),
    [
        (SERIAL, "tty0", True),
        (SERIAL, f"tty0 {(SERIAL or '').removeprefix('/dev/')}", False),  # the console itself
        (SERIAL, None, False),  # the consoles cannot be read: not risked
        ("/dev/ttyS99", "tty0", False),  # no such line here
        ("", "tty0", False),
    ],
)
def test_init_checks_the_line_at_boot(
    tmp_path: Path, value: str, console: str | None, listens: bool
) -> None:
    found = run_init(tmp_path, "recovery_serial", {"recovery-serial": value}, console)
    assert found == (value if listens else "")


def test_without_the_files_init_keeps_its_defaults(tmp_path: Path) -> None:
    assert run_init(tmp_path, "init_value recovery-key", {}) == ""
    assert run_init(tmp_path, "recovery_serial", {}) == ""
    assert "wanted=r" in INIT.read_text()


def test_the_listener_runs_the_gate_and_the_shell_on_its_line() -> None:
    listener = _function("serial_recovery")
    gate = listener.index("-m runtime.recovery")
    shell = listener.index("setsid -c sh")
    assert gate < shell and "if /usr/bin/python3.11" in listener[:gate]
    assert listener.count('<"$1" >"$1"') == 2  # the gate and the shell on the serial line
    assert "sleep" in listener  # a hung-up line does not spin
    assert 'serial_recovery "$serial" &' in INIT.read_text()
