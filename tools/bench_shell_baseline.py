"""The shell runtime the boot benchmark measures the project against, booted on the same board.

The shell runtime (../shared/baselines/heads-shell: busybox sh as /init, tpm2-tools run as
Heads runs them, oathtool, whiptail) is built by its own script from this machine's Debian
binaries, then booted on the qemu-swtpm board's kernel, firmware and QEMU flags, with the
board's command line plus its own `hb.*` words. Its first boot on a blank TPM seals its TOTP
secret to the PCRs and powers off; each timed boot starts from a copy of that TPM state.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from tools.board_console import Boot, boot

REPO = Path(__file__).resolve().parents[1]
SHELL_DIR = REPO.parent / "shared" / "baselines" / "heads-shell"
BOARD = "qemu-swtpm"
#: print the TOTP and power off; the PCRs it seals to (PCR 9: the initrd and command line)
SHELL_CMDLINE = "hb.mode=auto hb.pcrs=0,1,2,3,4,7,9 hb.term=vt100"
#: what its build script copies from this machine, and the Debian packages that hold them
NEEDED = {
    "/usr/bin/tpm2": "tpm2-tools",
    "/usr/bin/whiptail": "whiptail",
    "/usr/bin/oathtool": "oathtool",
    "/usr/bin/cpio": "cpio",
    "/usr/bin/zstd": "zstd",
    "/usr/bin/xz": "xz-utils",
}
BUILD_TIMEOUT_S = 600
HB_T = re.compile(r"HB_T ([\d.]+) (\w+)")


class BaselineUnavailable(RuntimeError):
    """The shell runtime cannot be built here; str() says what to do."""


def _static_busybox() -> bool:
    # the script copies /bin/busybox alone, without libraries: only a static one runs
    try:
        done = subprocess.run(
            ["file", "-L", "/bin/busybox"], capture_output=True, text=True, timeout=30, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return "statically linked" in done.stdout or "static-pie" in done.stdout


def build_shell_image(out: Path) -> Path:
    """shell.cpio.zst, built by the baseline's own script into ``out``."""
    if not (SHELL_DIR / "build_initrd.sh").is_file():
        raise BaselineUnavailable(f"the shell runtime is not at {SHELL_DIR}")
    missing = sorted({pkg for path, pkg in NEEDED.items() if not os.path.exists(path)})
    if not _static_busybox():
        missing.append("busybox-static")
    if missing:
        raise BaselineUnavailable(
            "the shell runtime is built from this machine's binaries: "
            f"apt-get install {' '.join(missing)}"
        )
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OUT": str(out), "ROOTFS": str(out / "rootfs")}
    try:
        subprocess.run(
            ["bash", str(SHELL_DIR / "build_initrd.sh")],
            env=env,
            check=True,
            timeout=BUILD_TIMEOUT_S,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
    except (OSError, subprocess.SubprocessError) as err:
        said = getattr(err, "stderr", b"") or b""
        last = said.decode(errors="replace").strip().splitlines()[-1:] or [str(err)]
        raise BaselineUnavailable(f"its build script failed: {last[0]}") from None
    return out / "shell.cpio.zst"


def image_sizes(out: Path) -> dict[str, int]:
    """Bytes of the shell runtime's image: raw cpio, xz -9, zstd -19."""
    names = {"raw": "shell.cpio", "xz": "shell.cpio.xz", "zstd": "shell.cpio.zst"}
    return {k: (out / n).stat().st_size for k, n in names.items() if (out / n).exists()}


def _shell_boot(directory: Path, image: Path) -> Boot:
    running = boot(BOARD, directory, image)
    running.instance.extra_cmdline = SHELL_CMDLINE
    return running


def provision(image: Path, state: Path, timeout: float = 300) -> None:
    """The first boot on a blank TPM: the shell runtime seals its secret and powers off."""
    with _shell_boot(state, image) as running:
        running.wait_exit(timeout)
    if "HB_PROVISION done" not in running.console_text():
        failed = re.search(r"HB_FAIL [^\r\n]*", running.console_text())
        why = failed.group(0) if failed else "it powered off without saying so"
        raise BaselineUnavailable(f"the shell runtime could not provision its TPM ({why})")


def timed_boot(image: Path, state: Path, timeout: float = 300) -> dict[str, float]:
    """One boot from a copy of the provisioned TPM: /init -> TOTP shown (guest uptime),
    QEMU start -> TOTP line (host time)."""
    directory = Path(tempfile.mkdtemp(prefix="bench-shell-", dir="/tmp"))
    try:
        shutil.copytree(state / "tpm", directory / "tpm")
        with _shell_boot(directory, image) as running:
            running.wait_for_console(r"HB_TOTP \d{6}", timeout=timeout)
            running.wait_exit(120)
            marks = {step: float(up) for up, step in HB_T.findall(running.console_text())}
            return {
                "/init->TOTP shown": marks["totp_shown"] - marks["init_start"],
                "power-on->TOTP": running.arrival(r"HB_TOTP \d{6}"),
            }
    finally:
        shutil.rmtree(directory, ignore_errors=True)
