"""Boot benchmark of the qemu-swtpm board: where the time and memory go.

    .venv/bin/python -m tools.bench_boot [--boots 5] [--memory-search] [--no-build] [--importtime]
                                         [--no-baseline] [--zstd-level 19]

Prints the initramfs sizes (raw, xz, zstd, per component, from a full build),
then the median over several cold boots (fresh TPM, TOTP sealed to the
image, an owner key in it and the test OS disk attached, so the boot asks
nothing) of: QEMU start -> kernel, kernel -> /init, /init -> Python, the
first screen, the TOTP code on screen (shown while the drivers load) and the
main menu (with the stages between: imports, TPM, unseal, drivers and event
log, /boot and keyring), and the guest's memory.
Each boot is followed by one of the shell runtime the project is measured
against (tools/bench_shell_baseline.py: ../shared/baselines/heads-shell, same
kernel, firmware and QEMU flags), so both medians and their ratio come from
one run; --no-baseline leaves it out.
With --memory-search, the smallest guest RAM that still reaches the menu.
With --importtime, one more boot with `runtime.importtime` on the kernel
command line (Python's -X importtime in the guest): the slowest imports.
Every boot has `runtime.trace` on its command line (tools/board_console.py):
the stage lines read here reach the console only then; the TOTP secret is
sealed to that same command line.
Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

# Also run as a file (tools/bench_boot.py): the repository must be importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools import bench_shell_baseline as shell
from tools.board_console import Boot, BootTimeout, boot
from tools.boards import load_board_table
from tools.make_os_disk import make_os_disk
from tools.owner_key import make_owner_key
from tools.provision_board import seal_totp

REPO = Path(__file__).resolve().parents[1]
BOARD = "qemu-swtpm"


def _init_uptime(b: Boot) -> float:
    found = b.wait_for_console(r"init: stage=init uptime=([\d.]+)")
    return float(found.group(1))


MAIN_MENU = "boot menu"
#: ../shared/baselines/heads-shell/build_initrd.sh compresses its image with zstd -19
SHELL_ZSTD_LEVEL = 19


def _power_off(running: Boot) -> None:
    running.press("p")
    running.wait_for_screen("Power off now?", timeout=60)
    running.press("y")


def one_boot(
    initrd: Path, disk: Path, memory: int | None = None, timeout: float = 300
) -> dict[str, float]:
    """A cold boot to the main menu: the image carries an owner key, the OS disk
    gives /boot, the TOTP secret is sealed to the image's PCR 9, so no question
    is asked on the way."""
    directory = Path(tempfile.mkdtemp(prefix="bench-", dir="/tmp"))
    try:
        running = boot(BOARD, directory, initrd)
        running.instance.memory_mib = memory
        running.instance.disks = [disk]
        # PCR 9 measures the command line exactly as this boot passes it (trace on).
        seal_totp(directory / "tpm", initrd.read_bytes(), running.kernel_cmdline(), os.urandom(20))
        with running:
            running.wait_for_screen(MAIN_MENU, timeout=timeout)
            screen = running.screen_text()
            _power_off(running)
            running.wait_exit(120)  # the stage log is printed on the way out
            uptime = _init_uptime(running)
            at_init = running.arrival(r"init: stage=init")
            stages = running.stages()

            def at(name: str) -> float:
                return stages[name][0]

            # the code is on screen while the drivers load (a progress screen),
            # or, when it did not unseal then, on the main menu
            shown = at("totp-shown") if "totp-shown" in stages else at("menu-shown")
            figures = {
                "power-on->TOTP on screen": at_init - uptime + shown,
                "qemu->kernel": at_init - uptime,
                "kernel->/init": uptime,
                "/init->python": at("python-started") - uptime,
                "/init->first screen": at("ui-up") - uptime,
                "/init->TOTP on screen": shown - uptime,
                "/init->menu": at("menu-shown") - uptime,
                "  python->UI up": at("ui-up") - at("python-started"),
                "  UI up->state machine imported": at("imports-machine") - at("ui-up"),
                "  ->TPM imported": at("imports-tpm") - at("imports-machine"),
                "  TPM connect": at("tpm-connected") - at("imports-tpm"),
                "  TOTP blob read": at("totp-blob-read") - at("tpm-connected"),
                "  TOTP unseal": at("totp") - at("totp-blob-read"),
                "  TOTP on screen": shown - at("totp"),
                "  drivers, event log": at("devices-ready") - shown,
                "  /boot, keyring, TOTP again": at("menu-shown") - at("devices-ready"),
            }
            for part in stages["menu-shown"][1].split():
                key, _, value = part.partition("=")
                if key in ("peak_rss_kib", "guest_used_kib"):
                    figures[key] = float(value)
            if "TOTP: " not in screen or "TOTP: none" in screen:
                figures["totp_missing"] = 1.0
            return figures
    finally:
        shutil.rmtree(directory, ignore_errors=True)


IMPORT_LINE = re.compile(r"import time:\s+\d+ \|\s+(\d+) \|( *)(\S+)")


def slowest_imports(initrd: Path, disk: Path) -> list[tuple[float, str]]:
    """Boot once with runtime.importtime; (cumulative seconds, module), slowest first,
    for every import made at any depth."""
    directory = Path(tempfile.mkdtemp(prefix="bench-", dir="/tmp"))
    try:
        running = boot(BOARD, directory, initrd)
        running.instance.extra_cmdline = "runtime.importtime"
        running.instance.disks = [disk]
        with running:
            running.wait_for_screen("TOTP code cannot be shown", timeout=300)
            running.press("i")  # Heads: i ignore and continue
            running.wait_for_screen(MAIN_MENU, timeout=60)
            _power_off(running)
            running.wait_exit(120)
            found = IMPORT_LINE.findall(running.console_text())
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return sorted(((int(us) / 1e6, f"{indent}{name}") for us, indent, name in found), reverse=True)


def summarize(runs: list[dict[str, float]], board: dict[str, Any]) -> None:
    print(
        f"\nmedian of {len(runs)} cold boots (OVMF, TCG, -cpu max, 1 vCPU, "
        f"{board['qemu']['memory_mib']} MiB, fresh TPM with a sealed TOTP secret):"
    )
    for key in runs[0]:
        if key == "totp_missing":
            continue
        values = [r[key] for r in runs if key in r]
        median = statistics.median(values)
        if key.endswith("_kib"):
            print(f"  {key:<20} {median / 1024:7.1f} MiB")
        else:
            print(f"  {key:<20} {median:7.2f} s   (min {min(values):.2f}, max {max(values):.2f})")
    if any("totp_missing" in r for r in runs):
        print("  WARNING: some boots showed no TOTP code")


def compare(
    runs: list[dict[str, float]], shell_runs: list[dict[str, float]], shell_out: Path
) -> None:
    """The project against the shell runtime, booted in turn in the same run."""
    ours_init = statistics.median(r["/init->TOTP on screen"] for r in runs)
    ours_power = statistics.median(r["power-on->TOTP on screen"] for r in runs)
    shell_init = statistics.median(r["/init->TOTP shown"] for r in shell_runs)
    shell_power = statistics.median(r["power-on->TOTP"] for r in shell_runs)
    print(f"\nbeside the shell runtime (medians of {len(runs)} and {len(shell_runs)} boots):")
    print(
        f"  /init -> TOTP     project {ours_init:6.2f} s   shell {shell_init:6.2f} s   "
        f"project/shell {ours_init / shell_init:.2f} (aim: 0.50 or less)"
    )
    print(
        f"  power-on -> TOTP  project {ours_power:6.2f} s   shell {shell_power:6.2f} s   "
        f"project/shell {ours_power / shell_power:.2f} (aim: 1.00 or less)"
    )
    sizes = shell.image_sizes(shell_out)
    print("  shell image: " + ", ".join(f"{k} {v / 2**20:.1f} MiB" for k, v in sizes.items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--boots", type=int, default=5)
    parser.add_argument(
        "--no-build",
        action="store_true",
        help="use build/qemu-swtpm as it is (its size report too)",
    )
    parser.add_argument(
        "--importtime",
        action="store_true",
        help="also boot once with -X importtime and list the slowest imports",
    )
    parser.add_argument(
        "--no-baseline",
        action="store_true",
        help="boot only the project's image, not the shell runtime beside it",
    )
    parser.add_argument(
        "--zstd-level",
        type=int,
        default=SHELL_ZSTD_LEVEL,
        help=f"the image's zstd level (default {SHELL_ZSTD_LEVEL}: the shell runtime's, so "
        "both images are compressed alike; the board's own is faster to build)",
    )
    parser.add_argument(
        "--memory-search",
        action="store_true",
        help="also find the smallest guest RAM that reaches the menu",
    )
    args = parser.parse_args(argv)
    out = REPO / "build" / "bench"
    if not args.no_build:
        print("building (full size report, xz included; with an owner key)...", flush=True)
        owner = make_owner_key(out)
        owner.remove()  # only the public key goes into the image
        subprocess.run(
            [
                sys.executable,
                str(REPO / "build_initrd.py"),
                "--board",
                BOARD,
                "--out",
                str(out),
                "--owner-key",
                str(out / "owner.asc"),
                "--zstd-level",
                str(args.zstd_level),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            timeout=3600,
        )
        make_os_disk(out / "os-disk.img")
    disk = out / "os-disk.img"
    print((out / "size-report.txt").read_text())
    initrd = out / "initrd.cpio.zst"
    board = load_board_table(BOARD)

    shell_image, shell_state = None, out / "shell-tpm"
    if not args.no_baseline:
        try:
            shell_image = shell.build_shell_image(out / "shell")
            shutil.rmtree(shell_state, ignore_errors=True)
            shell.provision(shell_image, shell_state)
        except (shell.BaselineUnavailable, BootTimeout) as err:
            print(f"no shell runtime beside it: {err}", flush=True)
            shell_image = None
    runs, shell_runs = [], []
    for i in range(args.boots):
        runs.append(one_boot(initrd, disk))
        line = f"boot {i + 1}/{args.boots}: /init -> menu {runs[-1]['/init->menu']:.2f} s"
        if shell_image is not None:
            shell_runs.append(shell.timed_boot(shell_image, shell_state))
            line += f"; shell /init -> TOTP {shell_runs[-1]['/init->TOTP shown']:.2f} s"
        print(line, flush=True)
    if runs:
        summarize(runs, board)
    if runs and shell_runs:
        compare(runs, shell_runs, out / "shell")

    if args.importtime:
        print(
            "\nslowest imports in the guest (cumulative, -X importtime; the changed command "
            "line changes PCR 9, so this boot's TOTP is refused):"
        )
        for seconds, module in slowest_imports(initrd, disk)[:15]:
            print(f"  {seconds:6.3f} s  {module}")

    if args.memory_search:
        smallest = None
        for memory in (512, 384, 256, 192, 160, 128, 112, 96):
            try:
                one_boot(initrd, disk, memory=memory, timeout=240)
            except (BootTimeout, AssertionError, KeyError) as err:
                print(f"  {memory} MiB: did not reach the menu ({str(err).splitlines()[0]})")
                break
            smallest = memory
            print(f"  {memory} MiB: reached the menu", flush=True)
        print(f"smallest guest RAM that reaches the menu: {smallest} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
