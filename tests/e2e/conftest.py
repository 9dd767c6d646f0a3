"""Fixtures of the QEMU tier: initramfs builds shared by the whole session.

Two builds differ in one byte of one file (the user configuration placed in
the image), so tests can prove that the firmware's measurement sees it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tools.boards import load_board_table

REPO = Path(__file__).resolve().parents[2]
BOARD = "qemu-swtpm"
USER_CONFIG_A = b"# user configuration of test build A\n"
USER_CONFIG_B = b"# user configuration of test build B\n"  # one byte differs


def build(out: Path, user_config: bytes) -> Path:
    config = out / "user-config.toml"
    out.mkdir(parents=True, exist_ok=True)
    config.write_bytes(user_config)
    subprocess.run([sys.executable, str(REPO / "build_initrd.py"), "--board", BOARD, "--quick",
                    "--out", str(out), "--user-config", str(config)],
                   check=True, timeout=1800, stdout=subprocess.DEVNULL)
    return out / "initrd.cpio.zst"


@pytest.fixture(scope="session")
def board_cmdline() -> str:
    return str(load_board_table(BOARD)["kernel"]["cmdline"])


@pytest.fixture(scope="session")
def initrd_a(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("build-a"), USER_CONFIG_A)


@pytest.fixture(scope="session")
def initrd_b(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("build-b"), USER_CONFIG_B)


@pytest.fixture
def short_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short path: Unix socket paths are limited to 108 bytes."""
    import tempfile

    return Path(tempfile.mkdtemp(prefix="board-", dir="/tmp"))
