"""The TPM 2.0 layer, over tpm2-pytss ESAPI.

Pure modules (no TPM, no tpm2-pytss import; importing this package loads only pure ones):
  lazy_crypto      lets tpm2-pytss run without `cryptography` (the image leaves it out)
  pcr_math         PCR banks, extend, prediction
  pcr_roles        what each PCR the runtime uses stands for; PCR 4's boot modes
  policy_math      policy digests computed offline (PolicyPCR, PolicyAuthValue, PolicyNV)
  eventlog         the firmware's binary TCG event log: parse and replay
  measurement_log  the runtime's own in-RAM log of extends, and its replay
  log_journal      that log kept in a RAM file across the runtime's restarts
  nv_attrs         NV attributes and the rollback-counter checks
  errors           typed errors with plain-words messages
  handles          handles and NV indexes, in Heads' numbering

Modules over tpm2-pytss (importing one imports it); all but templates talk to the TPM:
  connection  Tpm.connect(): the ESAPI context and its shared salted sessions
  templates   object templates: the storage primary key and sealed data
  pcrs        read and extend PCRs (every extend is logged)
  sealing     seal / unseal small secrets to PCRs and an optional passphrase
  nv          NV define / write / read / undefine; sealed blobs in NV
  counters    monotonic counters for rollback protection
  ownership   clear, take ownership, dictionary-attack state
  power_state TPM2_Shutdown before power-off, reboot and the hand-over
  rng         random bytes from the TPM
"""

from runtime.tpm import lazy_crypto

# Before any module below imports tpm2_pytss: the image has no `cryptography` (lazy_crypto).
lazy_crypto.install()

from runtime.tpm.errors import (  # noqa: E402
    NvIndexMissing,
    PcrsChanged,
    PrimaryKeyMissing,
    SealedObjectMissing,
    TpmAbsent,
    TpmCommandError,
    TpmError,
    TpmFailureMode,
    TpmLockedOut,
    TpmObjectMissing,
    WrongOwnerPassphrase,
    WrongPassphrase,
)
from runtime.tpm.pcr_math import Bank  # noqa: E402

__all__ = [
    "Bank",
    "NvIndexMissing",
    "PcrsChanged",
    "PrimaryKeyMissing",
    "SealedObjectMissing",
    "TpmAbsent",
    "TpmCommandError",
    "TpmError",
    "TpmFailureMode",
    "TpmLockedOut",
    "TpmObjectMissing",
    "WrongOwnerPassphrase",
    "WrongPassphrase",
]
