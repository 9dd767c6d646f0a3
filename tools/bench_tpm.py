"""Benchmark: one boot's TPM work through the runtime's layer and through tpm2-tools.

One boot's work: read PCRs 0-7, unseal the TOTP secret (PCR policy), read the
rollback counter, unseal the passphrase-protected disk key (PCR policy +
passphrase). tpm2-tools runs it the way Heads does, one process per step.
Everything runs against the same swtpm in one run. Prints medians and
ratios; asserts nothing about time.

  warm: one long-lived interpreter; each boot opens the TPM, starts its
        sessions, does the four steps and closes (imports already done)
  cold: a fresh interpreter per boot that imports the layer and does the steps
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from runtime.tpm import handles
from runtime.tpm.connection import Tpm
from runtime.tpm.counters import create_counter, increment_counter
from runtime.tpm.ownership import reset_tpm
from runtime.tpm.sealing import seal, store_persistent
from tools.bench_boot_steps import (
    DISK_KEY,
    DUK_PASS,
    DUK_PCRS,
    TOTP_PCRS,
    TOTP_SECRET,
    boot_steps,
    one_boot,
)
from tools.swtpm import Swtpm

OWNER = b"bench owner"
REPO = Path(__file__).resolve().parent.parent


def prepare(tcti: str) -> int:
    """Own the TPM, seal both secrets at Heads' handles, make a counter; return its index."""
    with Tpm.connect(tcti) as tpm:
        tpm.startup()
        reset_tpm(tpm, OWNER)
        store_persistent(tpm, seal(tpm, TOTP_SECRET, TOTP_PCRS), handles.TOTP_SECRET, OWNER)
        duk = seal(tpm, DISK_KEY, DUK_PCRS, passphrase=DUK_PASS)
        store_persistent(tpm, duk, handles.DISK_UNLOCK_KEY, OWNER)
        counter = create_counter(tpm, OWNER)
        increment_counter(tpm, counter)
        return counter


def tpm2_tools_boot(tcti: str, counter: int, workdir: Path) -> None:
    env = dict(os.environ, TPM2TOOLS_TCTI=tcti, TSS2_LOG="all+NONE")
    session = str(workdir / "session.ctx")

    def tool(*args: str) -> None:
        subprocess.run(
            ["tpm2", *args],
            env=env,
            check=True,
            timeout=30,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def unseal(handle: int, pcrs: tuple[int, ...], password: bytes | None) -> None:
        tool("startauthsession", "--policy-session", "-S", session)
        tool("policypcr", "-S", session, "-l", "sha256:" + ",".join(map(str, pcrs)))
        auth = f"session:{session}"
        if password is not None:
            tool("policyauthvalue", "-S", session)
            auth += "+hex:" + password.hex()
        tool("unseal", "-c", f"0x{handle:08x}", "-p", auth, "-o", str(workdir / "out"))
        tool("flushcontext", session)

    tool("pcrread", "-Q", "-o", str(workdir / "pcrs"), "sha256:0,1,2,3,4,5,6,7")
    unseal(handles.TOTP_SECRET, TOTP_PCRS, None)
    tool("nvread", f"0x{counter:08x}", "-o", str(workdir / "counter"))
    unseal(handles.DISK_UNLOCK_KEY, DUK_PCRS, DUK_PASS)


def timed(fn: Callable[[], None], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def cold_boot(tcti: str, counter: int) -> None:
    """One boot in a fresh interpreter that imports only the layer."""
    subprocess.run(
        [sys.executable, "-s", "-E", "-m", "tools.bench_boot_steps", tcti, f"{counter:x}"],
        cwd=REPO,
        check=True,
        timeout=60,
        env=dict(os.environ, TSS2_LOG="all+NONE"),
    )


def ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:7.1f} ms"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=20, help="boots per measurement")
    args = parser.parse_args(argv)
    with Swtpm() as sw, tempfile.TemporaryDirectory() as tmp:
        counter = prepare(sw.tcti)
        workdir = Path(tmp)
        one_boot(sw.tcti, counter)  # first use loads libraries; not counted
        tools = timed(lambda: tpm2_tools_boot(sw.tcti, counter, workdir), args.runs)
        warm = timed(lambda: one_boot(sw.tcti, counter), args.runs)
        with Tpm.connect(sw.tcti) as tpm:
            boot_steps(tpm, counter)
            steps = timed(lambda: boot_steps(tpm, counter), args.runs)
        cold = timed(lambda: cold_boot(sw.tcti, counter), args.runs)
    print(f"One boot's TPM work, median of {args.runs} runs, same swtpm:")
    print(f"  tpm2-tools, one process per step (11 processes): {ms(tools)}")
    print(
        f"  layer, warm (open TPM + sessions + 4 steps):       {ms(warm)}"
        f"   {statistics.median(tools) / statistics.median(warm):5.1f}x faster"
    )
    print(
        f"  layer, steps only (sessions already open):       {ms(steps)}"
        f"   {statistics.median(tools) / statistics.median(steps):5.1f}x faster"
    )
    print(
        f"  layer, cold (new interpreter + imports + all):   {ms(cold)}"
        f"   {statistics.median(tools) / statistics.median(cold):5.1f}x faster"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
