"""TPM2_Shutdown(CLEAR) before the machine powers off, reboots or hands over
with kexec, as Heads does (tpmr shutdown).

A TPM that sees a power-on without an orderly shutdown before it counts one
dictionary-attack failure at its next TPM2_Startup if a DA-protected
authorization (a passphrase-protected sealed secret, a counter Heads defined
without NO_DA) was used since the last orderly shutdown: unclean reboots alone
would lock the owner out in the end. swtpm does so (tests/tpm/test_orderly_shutdown.py).

Why here too: Linux sends TPM2_Shutdown(CLEAR) itself on reboot, power-off
and kexec (tpm_class_shutdown in drivers/char/tpm/tpm-chip.c, run by
device_shutdown()), but only through a bound TPM driver, on kernels that have
it (2017 on), and not on every path (kexec with preserve_context, a TPM
reached through another transport). A second TPM2_Shutdown changes nothing.
"""

from __future__ import annotations

from tpm2_pytss.constants import TPM2_SU

from runtime import bootlog
from runtime.error_detail import describe, detail
from runtime.tpm.connection import Tpm
from runtime.tpm.errors import TpmError, translated


def orderly_shutdown(tpm: Tpm) -> str:
    """Flush the Tpm's sessions, then send TPM2_Shutdown(CLEAR); one line for
    the log. Must be the last TPM command: one that uses a DA-protected
    authorization after it makes the shutdown unorderly again. A failure is
    logged, never raised: the machine goes down anyway."""
    # First: no session of this runtime is left for the next kernel, and the
    # kernel's resource manager (/dev/tpmrm0) has nothing to save after the shutdown.
    tpm.flush_sessions()
    try:
        with translated("Shutting the TPM down (TPM2_Shutdown)"):
            tpm.esapi.shutdown(TPM2_SU.CLEAR)
    except TpmError as err:
        detail("tpm-shutdown", describe(err))
        bootlog.stage("tpm-shutdown", orderly=False)
        return f"TPM2_Shutdown(CLEAR) failed: {err.message}"
    bootlog.stage("tpm-shutdown", orderly=True)
    return "Sent TPM2_Shutdown(CLEAR): the TPM saw an orderly shutdown"
