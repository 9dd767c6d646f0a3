"""Opening the TPM and the sessions every other TPM module shares.

One ``Tpm`` object lives for the whole boot: importing tpm2-pytss and
starting a salted session are the expensive parts, so both happen once and
the sessions are reused (a policy session is restarted rather than recreated).
Sessions are salted with the persistent primary key, so passphrases and
secrets never cross the TPM bus in clear. That protects against listening
on the bus only: a device on it can answer ReadPublic with a key of its own.
So the firmware may pin the key's Name (CONFIG_TPM_PRIMARY_NAME, measured
with the owner's settings); with a pin, no session is salted with any other
key, and the Name is recomputed here from the public area the salt is
encrypted to, never taken from the TPM's answer.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import struct
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
    TpmError,
    TpmIdentityChanged,
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
    raise TpmAbsent(
        "No TPM found: neither /dev/tpmrm0 nor /dev/tpm0 exists.", summary="No TPM was found."
    )


#: TPM_ALG_ID of a Name's hash -> its hashlib name
_NAME_HASHES = {0x0004: "sha1", 0x000B: "sha256", 0x000C: "sha384", 0x000D: "sha512"}
#: IESYSC_KEY_RSRC: a serialized ESYS_TR that holds a key's public area
_KEY_RESOURCE = 1


def object_name(public_area: bytes) -> bytes:
    """The TPM Name of an object from its marshalled TPMT_PUBLIC: the name
    algorithm's ID followed by that algorithm's digest of the whole area."""
    if len(public_area) < 4:
        raise ValueError("the public area is too short")
    alg = public_area[2:4]  # TPMT_PUBLIC starts with type, then nameAlg
    hash_name = _NAME_HASHES.get(int.from_bytes(alg, "big"))
    if hash_name is None:
        raise ValueError(f"unknown name algorithm 0x{alg.hex()}")
    return alg + hashlib.new(hash_name, public_area).digest()


def key_record(serialized: bytes) -> tuple[int, bytes, bytes]:
    """(TPM handle, Name, marshalled TPMT_PUBLIC) of a serialized ESYS_TR of a
    key, the format `tpm2 readpublic -t` writes: what ESAPI itself holds and
    encrypts a session's salt to."""
    try:
        handle, name_size = struct.unpack_from(">IH", serialized, 0)
        offset = 6 + name_size
        name = serialized[6:offset]
        kind, public_size = struct.unpack_from(">IH", serialized, offset)
    except struct.error:
        raise ValueError("the key record is truncated") from None
    public = serialized[offset + 6 :]
    if len(name) != name_size or kind != _KEY_RESOURCE or len(public) != public_size:
        raise ValueError("not the record of a key")
    return handle, name, public


def checked_primary_name(serialized: bytes, pinned: bytes | None) -> bytes:
    """The Name of the storage key ESAPI holds, recomputed from its public area;
    TpmIdentityChanged if the TPM's answer contradicts itself or the pin."""
    try:
        handle, answered, public = key_record(serialized)
        computed = object_name(public)
    except ValueError as err:
        raise TpmIdentityChanged(
            f"The TPM storage key's public area cannot be checked: {err}"
        ) from None
    if handle != handles.PRIMARY_KEY:
        raise TpmIdentityChanged(f"The storage key record names handle 0x{handle:08x}")
    # A real TPM never answers with a Name that is not its public area's:
    # refused even without a pin.
    if not hmac.compare_digest(computed, answered):
        raise TpmIdentityChanged(
            f"ReadPublic(0x{handle:08x}) answered Name {answered.hex()} for a public "
            f"area whose Name is {computed.hex()}"
        )
    if pinned is not None and not hmac.compare_digest(computed, pinned):
        raise TpmIdentityChanged(
            f"The TPM storage key's Name is {computed.hex()}; the firmware pins "
            f"{pinned.hex()} (CONFIG_TPM_PRIMARY_NAME)"
        )
    return computed


def _aes128cfb() -> TPMT_SYM_DEF:
    return TPMT_SYM_DEF(
        algorithm=TPM2_ALG.AES,
        keyBits=TPMU_SYM_KEY_BITS(aes=128),
        mode=TPMU_SYM_MODE(aes=TPM2_ALG.CFB),
    )


class Tpm:
    """An open TPM: the ESAPI context, the shared sessions and the measurement log."""

    def __init__(
        self,
        esapi: ESAPI,
        tcti: TctiSpec,
        journal: str | None = None,
        pinned_primary_name: bytes | None = None,
    ) -> None:
        self.esapi = esapi
        self.tcti = tcti
        #: extends are also written here, and earlier runs' read back (log_journal.py)
        self.journal = journal
        self.log = MeasurementLog()
        if journal is not None:
            from runtime.tpm.log_journal import load

            self.log = load(journal)
        self._pinned = pinned_primary_name
        self._primary: ESYS_TR | None = None
        self._primary_name = b""  # recomputed, set with _primary
        self._hmac_session: ESYS_TR | None = None
        self._policy_session: ESYS_TR | None = None
        self._ephemeral: ESYS_TR | None = None

    @classmethod
    def connect(
        cls,
        tcti: TctiSpec | str | None = None,
        journal: str | None = None,
        pinned_primary_name: bytes | None = None,
    ) -> Tpm:
        """Open the TPM named by ``tcti`` (default: ``find_tcti()``); ``journal``
        keeps the measurement log across the runtime's restarts; sessions are
        salted only with a storage key of Name ``pinned_primary_name``, if given."""
        # libtss2 prints its own errors to stderr; the runtime reports them itself.
        os.environ.setdefault("TSS2_LOG", "all+NONE")
        spec = (
            find_tcti()
            if tcti is None
            else (tcti if isinstance(tcti, TctiSpec) else TctiSpec.parse(tcti))
        )
        try:
            esapi = ESAPI(str(spec))
        except TSS2_Exception as exc:
            raise TpmAbsent(
                f"Cannot open the TPM at {spec}: it does not answer.", rc=exc.rc
            ) from exc
        return cls(esapi, spec, journal, pinned_primary_name)

    def startup(self, clear: bool = True) -> None:
        """Send TPM2_Startup. Firmware does this on real boards; a bare swtpm needs it."""
        try:
            self.esapi.startup(TPM2_SU.CLEAR if clear else TPM2_SU.STATE)
        except TSS2_Exception as exc:
            if base_code(exc.rc) != RC_INITIALIZE:  # already started: fine
                raise translate(exc, "Starting the TPM") from exc

    # -- the storage primary key -------------------------------------------------

    def primary(self) -> ESYS_TR:
        """The persistent primary key at Heads' handle; PrimaryKeyMissing if absent,
        TpmIdentityChanged if it is not the pinned one."""
        if self._primary is None:
            with translated("Loading the TPM storage key", missing=PrimaryKeyMissing):
                primary = self.esapi.tr_from_tpmpublic(handles.PRIMARY_KEY)
            try:
                # Checked on what ESAPI keeps, not on a second ReadPublic: that
                # record's public area is what session salts are encrypted to.
                with translated("Checking the TPM storage key"):
                    record = bytes(self.esapi.tr_serialize(primary))
                self._primary_name = checked_primary_name(record, self._pinned)
            except TpmError:
                # ESAPI would reuse the record for the handle's next lookup
                with contextlib.suppress(TSS2_Exception):
                    self.esapi.tr_close(primary)
                raise
            self._primary = primary
        return self._primary

    @property
    def identity_pinned(self) -> bool:
        """Whether the storage key is pinned: without a pin, sessions resist
        listening on the TPM bus but not a device answering in the TPM's place."""
        return self._pinned is not None

    def pin_primary_name(self, name: bytes | None) -> None:
        """Pin the storage key's Name (None: no pin); what was opened before is
        dropped, so the next session is salted with a checked key."""
        self._pinned = name
        self.forget_primary()

    def primary_name(self) -> str:
        """The storage key's Name in hex, recomputed from its public area (what
        CONFIG_TPM_PRIMARY_NAME takes); PrimaryKeyMissing if there is none."""
        self.primary()
        return self._primary_name.hex()

    def check_identity(self) -> None:
        """With a pin, TpmIdentityChanged unless the TPM holds the pinned storage
        key; without one, nothing. Run before anything secret is asked for."""
        if self._pinned is not None and not self.has_primary():
            raise self._no_pinned_key()

    def _no_pinned_key(self) -> TpmIdentityChanged:
        return TpmIdentityChanged(
            f"The firmware pins a TPM storage key (CONFIG_TPM_PRIMARY_NAME), but the "
            f"TPM has none at 0x{handles.PRIMARY_KEY:08x}"
        )

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
        self._primary_name = b""

    # -- sessions ----------------------------------------------------------------

    def _salt_key(self) -> ESYS_TR:
        """The key that salts sessions: the storage primary, or, on a TPM without
        one (before ownership), a throw-away key in the NULL hierarchy, so that
        even the first passphrases set are encrypted on the bus. That key cannot
        be pinned: with a pin, no storage key means no session."""
        if self.has_primary():
            return self.primary()
        if self._pinned is not None:
            raise self._no_pinned_key()
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

    def audit_session(self) -> ESYS_TR:
        """A new HMAC session salted with the storage key only (never the
        throw-away one), for commands that take no authorization (PCR_Read):
        AUDIT makes the TPM HMAC its answer with the session key, and ESAPI
        refuses an answer whose HMAC is wrong. Only what holds the key's private
        part knows the salt, so with a pin the answer is the TPM's. Not kept:
        the caller flushes it. PrimaryKeyMissing without a storage key."""
        key = self.primary()
        with translated("Starting a TPM audit session"):
            session = self.esapi.start_auth_session(
                tpm_key=key,
                bind=ESYS_TR.NONE,
                session_type=TPM2_SE.HMAC,
                symmetric=_aes128cfb(),
                auth_hash=TPM2_ALG.SHA256,
            )
            self.esapi.trsess_set_attributes(
                session, TPMA_SESSION.CONTINUESESSION | TPMA_SESSION.AUDIT
            )
        return session

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
