"""Opening the TPM and the sessions every other TPM module shares.

One ``Tpm`` object lives for the whole boot: importing tpm2-pytss and
starting a salted session are the expensive parts, so both happen once and
the sessions are reused (a policy session is restarted rather than recreated).
Sessions are salted with the persistent primary key, so passphrases and
secrets never cross the TPM bus in clear.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from types import TracebackType

from tpm2_pytss import ESAPI, TSS2_Exception
from tpm2_pytss.constants import ESYS_TR, TPM2_ALG, TPM2_SE, TPM2_SU, TPMA_SESSION
from tpm2_pytss.types import TPM2B_SENSITIVE_CREATE, TPMT_SYM_DEF, TPMU_SYM_KEY_BITS, TPMU_SYM_MODE

from runtime.tpm import handles
from runtime.tpm.errors import (
    RC_INITIALIZE,
    PrimaryKeyMissing,
    TpmAbsent,
    base_code,
    translate,
    translated,
)
from runtime.tpm.measurement_log import MeasurementLog
from runtime.tpm.templates import primary_template

#: Environment variable that names the TCTI, e.g. ``swtpm:path=/tmp/x/sock``.
TCTI_ENV = "RUNTIME_TPM_TCTI"
KERNEL_DEVICES = ("/dev/tpmrm0", "/dev/tpm0")


@dataclass(frozen=True)
class TctiSpec:
    """Which TCTI library to load and its configuration string."""

    name: str
    config: str

    @classmethod
    def parse(cls, text: str) -> TctiSpec:
        name, _, config = text.partition(":")
        if not name:
            raise ValueError(f"not a TCTI specification: {text!r}")
        return cls(name, config)

    def __str__(self) -> str:
        return f"{self.name}:{self.config}" if self.config else self.name


def find_tcti() -> TctiSpec:
    """The TCTI to use: the environment override, else the kernel's TPM device."""
    override = os.environ.get(TCTI_ENV)
    if override:
        return TctiSpec.parse(override)
    for device in KERNEL_DEVICES:
        if os.path.exists(device):  # not pathlib: 0.1 s to import at boot under TCG
            return TctiSpec("device", device)
    raise TpmAbsent("No TPM found: neither /dev/tpmrm0 nor /dev/tpm0 exists.",
                    summary="No TPM was found.")


def _aes128cfb() -> TPMT_SYM_DEF:
    return TPMT_SYM_DEF(
        algorithm=TPM2_ALG.AES,
        keyBits=TPMU_SYM_KEY_BITS(aes=128),
        mode=TPMU_SYM_MODE(aes=TPM2_ALG.CFB),
    )


class Tpm:
    """An open TPM: the ESAPI context, the shared sessions and the measurement log."""

    def __init__(self, esapi: ESAPI, tcti: TctiSpec, journal: str | None = None) -> None:
        self.esapi = esapi
        self.tcti = tcti
        #: extends are also written here, and earlier runs' read back (log_journal.py)
        self.journal = journal
        self.log = MeasurementLog()
        if journal is not None:
            from runtime.tpm.log_journal import load

            self.log = load(journal)
        self._primary: ESYS_TR | None = None
        self._hmac_session: ESYS_TR | None = None
        self._policy_session: ESYS_TR | None = None
        self._ephemeral: ESYS_TR | None = None

    @classmethod
    def connect(cls, tcti: TctiSpec | str | None = None, journal: str | None = None) -> Tpm:
        """Open the TPM named by ``tcti`` (default: ``find_tcti()``); ``journal``
        keeps the measurement log across the runtime's restarts."""
        # libtss2 prints its own errors to stderr; the runtime reports them itself.
        os.environ.setdefault("TSS2_LOG", "all+NONE")
        spec = find_tcti() if tcti is None else (
            tcti if isinstance(tcti, TctiSpec) else TctiSpec.parse(tcti)
        )
        try:
            esapi = ESAPI(str(spec))
        except TSS2_Exception as exc:
            raise TpmAbsent(
                f"Cannot open the TPM at {spec}: it does not answer.", rc=exc.rc
            ) from exc
        return cls(esapi, spec, journal)

    def startup(self, clear: bool = True) -> None:
        """Send TPM2_Startup. Firmware does this on real boards; a bare swtpm needs it."""
        try:
            self.esapi.startup(TPM2_SU.CLEAR if clear else TPM2_SU.STATE)
        except TSS2_Exception as exc:
            if base_code(exc.rc) != RC_INITIALIZE:  # already started: fine
                raise translate(exc, "Starting the TPM") from exc

    # -- the storage primary key -------------------------------------------------

    def primary(self) -> ESYS_TR:
        """The persistent primary key at Heads' handle; PrimaryKeyMissing if absent."""
        if self._primary is None:
            with translated("Loading the TPM storage key", missing=PrimaryKeyMissing):
                self._primary = self.esapi.tr_from_tpmpublic(handles.PRIMARY_KEY)
        return self._primary

    def has_primary(self) -> bool:
        try:
            self.primary()
        except PrimaryKeyMissing:
            return False
        return True

    def forget_primary(self) -> None:
        """Drop cached handles after the TPM was cleared or the key replaced."""
        self.flush_sessions()
        if self._primary is not None:
            with contextlib.suppress(TSS2_Exception):
                self.esapi.tr_close(self._primary)
        self._primary = None

    # -- sessions ----------------------------------------------------------------

    def _salt_key(self) -> ESYS_TR:
        """The key that salts sessions: the storage primary, or, on a TPM without
        one (before ownership), a throw-away key in the NULL hierarchy, so that
        even the first passphrases set are encrypted on the bus."""
        if self.has_primary():
            return self.primary()
        if self._ephemeral is None:
            with translated("Creating a session key"):
                self._ephemeral, _, _, _, _ = self.esapi.create_primary(
                    TPM2B_SENSITIVE_CREATE(), primary_template(), ESYS_TR.NULL
                )
        return self._ephemeral

    def _start_salted_session(self, session_type: TPM2_SE, attributes: int) -> ESYS_TR:
        with translated("Starting a TPM session"):
            session = self.esapi.start_auth_session(
                tpm_key=self._salt_key(),
                bind=ESYS_TR.NONE,
                session_type=session_type,
                symmetric=_aes128cfb(),
                auth_hash=TPM2_ALG.SHA256,
            )
            self.esapi.trsess_set_attributes(session, attributes)
        return session

    def hmac_session(self) -> ESYS_TR:
        """A salted HMAC session that encrypts command and response parameters."""
        if self._hmac_session is None:
            self._hmac_session = self._start_salted_session(
                TPM2_SE.HMAC,
                TPMA_SESSION.CONTINUESESSION | TPMA_SESSION.DECRYPT | TPMA_SESSION.ENCRYPT,
            )
        return self._hmac_session

    def policy_session(self) -> ESYS_TR:
        """A salted policy session, restarted for each use, that encrypts responses."""
        if self._policy_session is None:
            self._policy_session = self._start_salted_session(
                TPM2_SE.POLICY, TPMA_SESSION.CONTINUESESSION | TPMA_SESSION.ENCRYPT
            )
        else:
            with translated("Restarting the TPM policy session"):
                self.esapi.policy_restart(self._policy_session)
        return self._policy_session

    def discard_policy_session(self) -> None:
        """Forget the policy session after a failure; the next use starts a new one."""
        if self._policy_session is not None:
            self._flush(self._policy_session)
            self._policy_session = None

    def flush_sessions(self) -> None:
        for session in (self._hmac_session, self._policy_session):
            if session is not None:
                self._flush(session)
        if self._ephemeral is not None:
            self._flush(self._ephemeral)
        self._hmac_session = None
        self._policy_session = None
        self._ephemeral = None

    def _flush(self, handle: ESYS_TR) -> None:
        # Already gone is fine: a failed command can end a session.
        with contextlib.suppress(TSS2_Exception):
            self.esapi.flush_context(handle)

    # -- lifetime ----------------------------------------------------------------

    def close(self) -> None:
        self.flush_sessions()
        self.esapi.close()

    def __enter__(self) -> Tpm:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
