"""Fixtures of the QEMU tier: initramfs builds shared by the whole session.

The images carry an owner key (made here with gpg, so the recovery shell asks
for its signature) and owner settings that turn the HOTP check on with the
software token on the guest's second serial port. Two builds differ in one
byte of that settings file, so tests can prove that the firmware's
measurement sees it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.console_steps import Token
from tools.board_console import harness_cmdline
from tools.owner_key import OwnerKey

REPO = Path(__file__).resolve().parents[2]
BOARD = "qemu-swtpm"
SETTINGS = (
    b'export CONFIG_HOTPKEY=y\nexport CONFIG_HOTP_TOKEN="serial:/dev/ttyS1"\n'
    b'export CONFIG_BOARD_NAME="QEMU e2e"\n'
)
USER_CONFIG_A = SETTINGS + b"# owner settings of test build A\n"
USER_CONFIG_B = SETTINGS + b"# owner settings of test build B\n"  # one byte differs


def build(out: Path, user_config: bytes, owner: OwnerKey, signing: bool = False) -> Path:
    """An initramfs with these owner settings and key; ``signing`` puts the
    owner's secret key inside too (test images only), so the firmware can
    sign /boot without an OpenPGP card."""
    config = out / "config.user"
    out.mkdir(parents=True, exist_ok=True)
    config.write_bytes(user_config)
    secret = (
        ["--owner-secret-key", str(owner.export_secret(out / "owner-secret.asc"))]
        if signing
        else []
    )
    subprocess.run(
        [
            sys.executable,
            str(REPO / "build_initrd.py"),
            "--board",
            BOARD,
            "--quick",
            "--out",
            str(out),
            "--user-config",
            str(config),
            "--owner-key",
            str(owner.public),
            *secret,
        ],
        check=True,
        timeout=1800,
        stdout=subprocess.DEVNULL,
    )
    return out / "initrd.cpio.zst"


@pytest.fixture(autouse=True)
def on_the_qemu_worker(request: pytest.FixtureRequest) -> None:
    """Under ``--dist loadgroup`` (tools/test) every QEMU test runs on one worker:
    two TCG guests side by side starve each other's console timeouts and double
    the suite's time. pytest-xdist marks a grouped test by suffixing its node id;
    a test without it means the grouping broke (as a pytest upgrade once did)."""
    # pytest-xdist sets "loadgroup" on its workers (where "dist" reads "no").
    if not request.config.getoption("loadgroup", False):
        return
    if not request.node.nodeid.endswith("@qemu"):
        pytest.fail(
            "the QEMU tier is not kept on one xdist worker: check that this pytest "
            "and pytest-xdist honour xdist_group (see pyproject.toml)"
        )


@pytest.fixture(scope="session")
def board_cmdline() -> str:
    """The kernel command line tools.board_console.boot() passes (trace word
    included), which PCR 9 measures."""
    return harness_cmdline(BOARD)


@pytest.fixture(scope="session")
def initrd_a(tmp_path_factory: pytest.TempPathFactory, owner_key: OwnerKey) -> Path:
    return build(tmp_path_factory.mktemp("build-a"), USER_CONFIG_A, owner_key)


@pytest.fixture(scope="session")
def initrd_b(tmp_path_factory: pytest.TempPathFactory, owner_key: OwnerKey) -> Path:
    return build(tmp_path_factory.mktemp("build-b"), USER_CONFIG_B, owner_key)


@pytest.fixture(scope="session")
def os_disk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tools.make_os_disk import make_os_disk

    return make_os_disk(tmp_path_factory.mktemp("os-disk") / "os-disk.img").image


@pytest.fixture(scope="module")
def machine() -> Iterator[Path]:
    """One board instance (its TPM state, its OVMF variables) per test module:
    the module's tests are one machine's story."""
    directory = Path(tempfile.mkdtemp(prefix="board-", dir="/tmp"))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def disk(machine: Path, os_disk: Path) -> Path:
    """The module machine's own copy of the test OS disk, to sign and change."""
    copy = machine / "os-disk.img"
    shutil.copyfile(os_disk, copy)
    return copy


@pytest.fixture(scope="module")
def token(machine: Path) -> Iterator[Token]:
    """The machine's software HOTP token (tools/soft_token.py), running."""
    running = Token(machine)
    running.start()
    yield running
    running.stop()


@pytest.fixture
def short_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short path: Unix socket paths are limited to 108 bytes."""
    return Path(tempfile.mkdtemp(prefix="board-", dir="/tmp"))
