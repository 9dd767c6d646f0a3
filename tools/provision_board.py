"""Seal a TOTP secret in a QEMU board instance's TPM, from the host, to the
PCR 9 value the firmware will measure for a given initramfs.

    .venv/bin/python -m tools.provision_board [--initrd build/qemu-swtpm/initrd.cpio.zst] [--trace]

A developer's stand-in for the first-ownership flow (which the runtime's UI
does on real hardware): the board's TPM is cleared and owned, and the next
boot of that initramfs shows a TOTP code; any other initramfs is refused.
Prints the otpauth URI (and a QR code) for a phone.

PCR 9 measures the kernel command line too: seal with --trace for a board
started with `tools.qemu_board --trace` (or `tools/run --trace`), without it
for one started without.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from pathlib import Path

from runtime.tpm.pcr_math import Bank, extend

REPO = Path(__file__).resolve().parents[1]
# OVMF passes this to the kernel after the -append text (QEMU's initrd file name).
OVMF_INITRD_SUFFIX = " initrd=initrd"
DEFAULT_OWNER = b"owner passphrase"


def predicted_pcr9(initrd: bytes, cmdline: str) -> bytes:
    """PCR 9 after Linux's EFI stub: its command line (UTF-16LE with a NUL, as
    OVMF passes it), then the initramfs file exactly as QEMU was given it."""
    options = (cmdline + OVMF_INITRD_SUFFIX + "\0").encode("utf-16-le")
    value = extend(Bank.SHA256, Bank.SHA256.zero(), hashlib.sha256(options).digest())
    return extend(Bank.SHA256, value, hashlib.sha256(initrd).digest())


def seal_totp(
    tpm_state_dir: Path, initrd: bytes, cmdline: str, secret: bytes, owner: bytes = DEFAULT_OWNER
) -> bytes:
    """Clear and own the instance's TPM, seal ``secret`` to the predicted PCR 9.

    Returns the predicted PCR 9 value. The instance's QEMU must not be running.
    """
    from runtime.tpm import handles, nv, ownership, sealing
    from runtime.tpm.connection import Tpm
    from tools.swtpm import Swtpm

    pcr9 = predicted_pcr9(initrd, cmdline)
    with Swtpm(tpm_state_dir) as swtpm:
        tpm = Tpm.connect(swtpm.tcti)
        try:
            ownership.clear_tpm(tpm, owner)
            ownership.take_ownership(tpm, owner)
            sealed = sealing.seal(tpm, secret, [9], pcr_values={9: pcr9})
            nv.store_sealed(tpm, sealed, handles.TOTP_SEALED_NV, owner)
        finally:
            tpm.close()
    return pcr9


def main(argv: list[str] | None = None) -> int:
    from runtime.secrets.otp_enrol import otpauth_uri
    from tools.boards import load_board_table
    from tools.qemu_board import BoardInstance, kernel_cmdline

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--board", default="qemu-swtpm")
    parser.add_argument("--initrd", type=Path)
    parser.add_argument("--instance", type=Path)
    parser.add_argument(
        "--trace",
        action="store_true",
        help="for boots with the stage trace on (tools.qemu_board --trace)",
    )
    args = parser.parse_args(argv)
    initrd = args.initrd or REPO / "build" / args.board / "initrd.cpio.zst"
    board = load_board_table(args.board)
    instance = BoardInstance(
        args.board, args.instance or REPO / "build" / "instances" / args.board, initrd
    )
    instance.tpm_dir.mkdir(parents=True, exist_ok=True)
    secret = os.urandom(20)  # 160 bits, as RFC 4226 recommends and Heads uses
    cmdline = kernel_cmdline(board["kernel"]["cmdline"], trace=args.trace)
    pcr9 = seal_totp(instance.tpm_dir, initrd.read_bytes(), cmdline, secret)
    uri = otpauth_uri(secret, args.board)
    print(f"sealed a TOTP secret to PCR 9 = {pcr9.hex()}")
    print(uri)
    import segno

    segno.make(uri, error="l").terminal(compact=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
