"""Kernel modules: each is measured into the modules PCR, then loaded from the
very bytes that were measured (init_module on the buffer, not the file, so
nothing can change between the two)."""

from __future__ import annotations

import ctypes
import errno
import os
from dataclasses import dataclass

from runtime import bootlog
from runtime.tpm.connection import Tpm
from runtime.tpm.pcrs import extend

MODULE_LIST = "/etc/modules.load"


@dataclass(frozen=True)
class ModuleResult:
    path: str
    loaded: bool
    problem: str = ""


def module_list(path: str = MODULE_LIST) -> list[str]:
    try:
        with open(path, encoding="utf-8") as f:
            return [line.strip() for line in f if line.strip() and not line.startswith("#")]
    except FileNotFoundError:
        return []


def _init_module(image: bytes) -> int:
    """0, or the errno of init_module(2)."""
    libc = ctypes.CDLL(None, use_errno=True)
    buffer = ctypes.create_string_buffer(image, len(image))
    if libc.init_module(buffer, ctypes.c_ulong(len(image)), b"") == 0:
        return 0
    return ctypes.get_errno()


def measure_and_load(tpm: Tpm | None, pcr: int, paths: list[str]) -> list[ModuleResult]:
    """Load each module from the bytes measured into ``pcr`` (without a TPM:
    loaded unmeasured, so the disks still come up)."""
    results = []
    for path in paths:
        try:
            with open(path, "rb") as f:
                image = f.read()
        except OSError as err:
            results.append(ModuleResult(path, False, f"cannot read it: {err.strerror}"))
            continue
        # Measure first: a module that fails to load was still offered to the kernel.
        if tpm is not None:
            extend(tpm, pcr, image, f"kernel module {os.path.basename(path)}", "module")
            bootlog.stage("module-measured", module=os.path.basename(path))
        code = _init_module(image)
        bootlog.stage("module", module=os.path.basename(path), errno=code)
        if code in (0, errno.EEXIST):
            results.append(ModuleResult(path, True))
        else:
            results.append(ModuleResult(path, False, os.strerror(code)))
    return results
