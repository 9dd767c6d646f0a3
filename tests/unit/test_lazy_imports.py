"""Importing the TPM package's pure face must not load tpm2-pytss (about 1 s under TCG)."""

from __future__ import annotations

import subprocess
import sys


def test_pure_modules_do_not_import_tpm2_pytss() -> None:
    code = (
        "import sys\n"
        "import runtime.tpm, runtime.tpm.eventlog, runtime.tpm.policy_math, "
        "runtime.tpm.measurement_log, runtime.tpm.nv_attrs, runtime.tpm.handles\n"
        "print('tpm2_pytss' in sys.modules, 'cryptography' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.split() == ["False", "False"]


def test_the_start_path_does_not_load_the_later_phases() -> None:
    """The TOTP screen comes first: /boot's checks, the boot menu's parsers and kexec are
    loaded when their phase starts, not while the machine shows the first screen."""
    code = (
        "import sys\n"
        "import runtime.state.startup\n"
        "late = ('runtime.integrity', 'runtime.kexec', 'runtime.boot_configs')\n"
        "print(sorted(m for m in sys.modules if m.startswith(late)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"
