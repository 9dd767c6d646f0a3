"""/init's own reading of the two settings it needs before the runtime runs
(CONFIG_RECOVERY_KEY, CONFIG_BOOT_RECOVERY_SERIAL): its shell functions, run
with /bin/sh against settings files in a temporary directory."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

INIT = REPO_ROOT / "initrd_overlay" / "init"


def _function(name: str) -> str:
    text = INIT.read_text()
    found = re.search(rf"^{name}\(\) {{\n.*?^}}\n", text, re.S | re.M)
    assert found, name
    return found.group(0)


def run_init(tmp_path: Path, call: str, files: dict[str, str], console: str = "tty0") -> str:
    """``call`` after /init's functions, the image's paths moved under tmp_path."""
    etc = tmp_path / "etc" / "runtime"
    etc.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (etc / name).write_text(text)
    (tmp_path / "active").write_text(console + "\n")
    script = (_function("setting") + _function("recovery_serial")).replace(
        "/etc/runtime/", f"{etc}/").replace("/sys/class/tty/console/active",
                                            str(tmp_path / "active"))
    done = subprocess.run(["/bin/sh", "-c", script + call], capture_output=True, text=True,
                          timeout=30, check=True)
    return done.stdout.strip()


def test_the_last_layer_that_sets_a_key_wins(tmp_path: Path) -> None:
    files = {"defaults.config": 'export CONFIG_RECOVERY_KEY="r"\n',
             "board.config": "CONFIG_RECOVERY_KEY=x\n",
             "config.user": "# nothing\nexport CONFIG_RECOVERY_KEY='R'\n"}
    assert run_init(tmp_path, "setting CONFIG_RECOVERY_KEY", files) == "R"
    del files["config.user"]
    (tmp_path / "etc" / "runtime" / "config.user").unlink(missing_ok=True)
    assert run_init(tmp_path, "setting CONFIG_RECOVERY_KEY", files) == "x"


def test_a_key_is_not_mistaken_for_a_longer_one(tmp_path: Path) -> None:
    files = {"defaults.config": 'CONFIG_BOOT_RECOVERY_SERIAL_X="/dev/ttyS1"\n'
                                'CONFIG_BOOT_RECOVERY_SERIAL=""\n'}
    assert run_init(tmp_path, "setting CONFIG_BOOT_RECOVERY_SERIAL", files) == ""


SERIAL = next((f"/dev/ttyS{n}" for n in range(4)
               if os.path.exists(f"/dev/ttyS{n}")), None)


@pytest.mark.skipif(SERIAL is None, reason="this host has no /dev/ttyS* to stand in")
@pytest.mark.parametrize(("value", "console", "listens"), [
    (SERIAL, "tty0", True),
    (SERIAL, f"tty0 {(SERIAL or '').removeprefix('/dev/')}", False),  # the console itself
    ("/dev/ttyS99", "tty0", False),  # no such line
    ("/dev/tty1", "tty0", False),  # a virtual terminal: the menus' screen
    ("/dev/sda", "tty0", False),
    ("", "tty0", False),
])
def test_the_recovery_listener_line(tmp_path: Path, value: str, console: str,
                                    listens: bool) -> None:
    files = {"config.user": f'export CONFIG_BOOT_RECOVERY_SERIAL="{value}"\n'}
    found = run_init(tmp_path, "recovery_serial", files, console)
    assert found == (value if listens else "")


def test_the_listener_runs_the_gate_and_the_shell_on_its_line() -> None:
    listener = _function("serial_recovery")
    gate = listener.index("-m runtime.recovery")
    shell = listener.index("setsid -c sh")
    assert gate < shell and 'if /usr/bin/python3.11' in listener[:gate]
    assert listener.count('<"$1" >"$1"') == 2  # the gate and the shell on the serial line
    assert "sleep" in listener  # a hung-up line does not spin
    text = INIT.read_text()
    assert 'serial_recovery "$serial" &' in text
