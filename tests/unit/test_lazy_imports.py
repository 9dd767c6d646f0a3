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


#: result types the Platform protocol names (pure, a few lines each): loading them is free
START_PATH_ALLOWED = (
    "runtime.integrity",
    "runtime.integrity.boot_report",
    "runtime.integrity.gpg_limits",
    "runtime.integrity.keyring",
)


def test_the_start_path_does_not_load_the_later_phases() -> None:
    """What runs before the first screen (runtime.state.startup's main: the driver, the
    device platform, the steps, the UI) loads neither /boot's checks, the boot menu's
    parsers, kexec, gpg nor the TPM stack: each is loaded when its phase starts."""
    code = (
        "import sys\n"
        "import runtime.state.startup, runtime.state.driver, runtime.state.device_platform\n"
        "import runtime.state.steps, runtime.ui\n"
        "late = ('runtime.integrity', 'runtime.kexec', 'runtime.boot_configs', 'gnupg')\n"
        "print(' '.join(m for m in sys.modules if m.startswith(late) or m == 'tpm2_pytss'))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert sorted(set(out.stdout.split()) - set(START_PATH_ALLOWED)) == []
