"""Launch a board in QEMU with its own software TPM.

    .venv/bin/python -m tools.qemu_board [--board qemu-swtpm] [--fresh-tpm] [--disk IMG] [--trace]

A board instance (default build/instances/<board>) keeps the TPM state and
the copy of the OVMF variables, so a second boot sees the same TPM (and the
same PCR 1 and 7). Serial console on this terminal; Ctrl-C goes to the guest;
power off from the runtime's menu to leave (or kill QEMU).

The console shows only what the user must see. --trace adds `runtime.trace`
to the kernel command line: /init and the runtime then print their stage
lines there too (the test and benchmark harness, tools/board_console.py,
always does). The command line is measured into PCR 9, so a secret sealed
without the word is refused with it, and the other way round: every PCR 9
prediction takes the command line from kernel_cmdline().
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from runtime.bootlog import TRACE_PARAM
from tools.boards import load_board_table
from tools.initrd.cache import default_cache_dir
from tools.initrd.lock import load_lock
from tools.initrd.pool import unpack
from tools.swtpm import Swtpm

REPO = Path(__file__).resolve().parents[1]


def kvm_works() -> bool:
    """/dev/kvm can exist without VMX/SVM (as on these machines): check both."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
        fd = os.open("/dev/kvm", os.O_RDWR)
        os.close(fd)
    except OSError:
        return False
    return " vmx" in flags or " svm" in flags


def kernel_cmdline(base: str, trace: bool = False, extra: str = "") -> str:
    """The command line QEMU passes to the kernel, which PCR 9 measures: the
    board's, then the trace switch, then ``extra``. Boots and PCR 9
    predictions both build it here, so they cannot disagree."""
    return " ".join(word for word in (base, TRACE_PARAM if trace else "", extra) if word)


@dataclass
class BoardFiles:
    """The host files a boot needs, taken from the locked packages."""

    kernel: Path
    ovmf_code: Path
    ovmf_vars_template: Path
    cmdline: str
    qemu: dict[str, object]


def board_files(board: str, cache: Path | None = None) -> BoardFiles:
    config = load_board_table(board)
    cache = cache or default_cache_dir()
    lock = load_lock()
    kernel_tree = unpack(lock.deb(config["kernel"]["package"]), cache)
    firmware = config["firmware"]
    ovmf_tree = unpack(lock.deb(firmware["package"]), cache)
    return BoardFiles(
        kernel=kernel_tree / "boot" / f"vmlinuz-{config['kernel']['release']}",
        ovmf_code=ovmf_tree / firmware["code"],
        ovmf_vars_template=ovmf_tree / firmware["vars"],
        cmdline=config["kernel"]["cmdline"],
        qemu=config["qemu"],
    )


@dataclass
class BoardInstance:
    """One machine: its TPM state and firmware variables live in `directory`."""

    board: str
    directory: Path
    initrd: Path
    disks: list[Path] = field(default_factory=list)
    memory_mib: int | None = None
    extra_cmdline: str = ""
    trace: bool = False  # True: `runtime.trace`, the stage lines on the console
    with_tpm: bool = True  # False: a machine without a TPM
    #: More QEMU arguments (e.g. the software HOTP token's serial port).
    extra_args: list[str] = field(default_factory=list)
    swtpm: Swtpm | None = None

    @property
    def tpm_dir(self) -> Path:
        return self.directory / "tpm"

    @property
    def ctrl_socket(self) -> Path:
        return self.directory / "swtpm.ctrl"

    def reset(self) -> None:
        """Forget the TPM state and firmware variables: a factory-new machine."""
        shutil.rmtree(self.directory, ignore_errors=True)

    def prepare(self, files: BoardFiles) -> None:
        self.tpm_dir.mkdir(parents=True, exist_ok=True)
        vars_copy = self.directory / "OVMF_VARS.fd"
        if not vars_copy.exists():
            shutil.copyfile(files.ovmf_vars_template, vars_copy)

    def start_swtpm(self) -> None:
        if not self.with_tpm:
            return
        self.swtpm = Swtpm(self.tpm_dir, for_qemu=True, ctrl=self.ctrl_socket).start()

    def stop_swtpm(self) -> None:
        if self.swtpm is not None:
            self.swtpm.stop()
        self.swtpm = None

    def kernel_cmdline(self, files: BoardFiles) -> str:
        """This instance's kernel command line (what PCR 9 measures)."""
        return kernel_cmdline(files.cmdline, self.trace, self.extra_cmdline)

    def qemu_command(self, files: BoardFiles) -> list[str]:
        qemu = files.qemu
        accel = (
            ["-accel", "kvm", "-cpu", "host"] if kvm_works() else ["-accel", "tcg", "-cpu", "max"]
        )
        memory = self.memory_mib or int(str(qemu["memory_mib"]))
        cmdline = self.kernel_cmdline(files)
        argv = [
            "qemu-system-x86_64",
            "-machine",
            str(qemu["machine"]),
            *accel,
            "-m",
            str(memory),
            "-smp",
            str(qemu["cpus"]),
            "-display",
            "none",
            "-monitor",
            "none",
            "-no-reboot",
            "-chardev",
            "stdio,id=console,signal=off",
            "-serial",
            "chardev:console",
            "-drive",
            f"if=pflash,format=raw,unit=0,readonly=on,file={files.ovmf_code}",
            "-drive",
            f"if=pflash,format=raw,unit=1,file={self.directory / 'OVMF_VARS.fd'}",
            "-kernel",
            str(files.kernel),
            "-initrd",
            str(self.initrd),
            "-append",
            cmdline,
            "-nic",
            "none",
        ]
        if self.with_tpm:
            argv += [
                "-chardev",
                f"socket,id=chrtpm,path={self.ctrl_socket}",
                "-tpmdev",
                "emulator,id=tpm0,chardev=chrtpm",
                "-device",
                f"{qemu['tpm_device']},tpmdev=tpm0",
            ]
        for i, disk in enumerate(self.disks):
            argv += [
                "-drive",
                f"if=none,id=disk{i},format=raw,file={disk}",
                "-device",
                f"virtio-blk-pci,drive=disk{i}",
            ]
        return argv + self.extra_args


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--board", default="qemu-swtpm")
    parser.add_argument("--initrd", type=Path, help="default build/<board>/initrd.cpio.zst")
    parser.add_argument("--instance", type=Path, help="default build/instances/<board>")
    parser.add_argument(
        "--fresh-tpm",
        action="store_true",
        help="start from a factory-new TPM and firmware variables",
    )
    parser.add_argument(
        "--disk",
        type=Path,
        action="append",
        default=[],
        help="a raw disk image (virtio), may be repeated",
    )
    parser.add_argument("--memory", type=int, help="guest RAM in MiB (default: the board's)")
    parser.add_argument(
        "--no-tpm",
        action="store_true",
        help="a machine without a TPM (to see how the runtime copes)",
    )
    parser.add_argument(
        "--trace",
        action="store_true",
        help=f"the stage lines on the console ({TRACE_PARAM} on the kernel "
        "command line; it changes PCR 9, see tools.provision_board --trace)",
    )
    parser.add_argument(
        "--print-command", action="store_true", help="print the QEMU command and exit"
    )
    args = parser.parse_args(argv)
    initrd = args.initrd or REPO / "build" / args.board / "initrd.cpio.zst"
    if not initrd.exists():
        print(
            f"qemu_board: no initramfs at {initrd}; build it with: "
            f".venv/bin/python build_initrd.py --board {args.board}",
            file=sys.stderr,
        )
        return 1
    instance = BoardInstance(
        args.board,
        args.instance or REPO / "build" / "instances" / args.board,
        initrd,
        args.disk,
        args.memory,
        with_tpm=not args.no_tpm,
        trace=args.trace,
    )
    if args.fresh_tpm:
        instance.reset()
    files = board_files(args.board)
    instance.prepare(files)
    command = instance.qemu_command(files)
    if args.print_command:
        print(" ".join(command))
        return 0
    instance.start_swtpm()
    try:
        # QEMU owns the terminal; ignore Ctrl-C here so it reaches the guest.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            return subprocess.run(command, check=False).returncode
        finally:
            signal.signal(signal.SIGINT, previous)
    finally:
        instance.stop_swtpm()


if __name__ == "__main__":
    sys.exit(main())
