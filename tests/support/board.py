"""The board the TPM tier's tests enrol and seal on: Heads' PCR roles on a
board that exists nowhere (its console and kernel are never used)."""

from __future__ import annotations

from runtime.config.board import BoardConfig

TEST_BOARD = BoardConfig(
    "test",
    "test board",
    "/dev/ttyS0",
    80,
    24,
    runtime_pcr=9,
    firmware_pcrs=(0, 4, 9),
    seal_pcrs=(0, 1, 2, 3, 4, 7, 9),
    modules_pcr=5,
    kernel_release="k",
)
