"""NV indexes: define, write, read, undefine; sealed blobs kept in NV.

An index found at one of this runtime's handles is read only when it is
exactly the index this runtime defines there (``NvSpec``, ``mismatch``): an
index created with the platform's authorisation survives a TPM reset, so
whoever had that authorisation may have left one there with a content they
chose.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable
from dataclasses import dataclass

from tpm2_pytss.constants import ESYS_TR, TPM2_ALG, TPM2_CAP, TPM2_PT_NV
from tpm2_pytss.types import TPM2B_NV_PUBLIC, TPMS_NV_PUBLIC

from runtime.tpm import handles
from runtime.tpm.connection import Tpm
from runtime.tpm.errors import (
    LAYER_TPM,
    RC_AUTH_FAIL,
    RC_BAD_AUTH,
    RC_HIERARCHY,
    RC_NV_DEFINED,
    NvIndexForeign,
    NvIndexMissing,
    NvSlotHeld,
    TpmError,
    base_code,
    layer_of,
    translated,
)
from runtime.tpm.nv_attrs import NvAttr
from runtime.tpm.sealing import SealedSecret

#: A conservative chunk for NV reads and writes when the TPM does not say.
DEFAULT_NV_BUFFER = 512
#: Room for a sealed blob in NV; a PCR+passphrase blob is about 300 bytes.
SEALED_BLOB_CAPACITY = 1024
#: The name algorithm of every index this runtime defines (TPM_ALG_SHA256).
NAME_ALG = int(TPM2_ALG.SHA256)
#: Every attribute bit but WRITTEN, the one the TPM sets (at the first write).
_DEFINED_BITS = 0xFFFFFFFF ^ int(NvAttr.WRITTEN)


@dataclass(frozen=True)
class NvInfo:
    """An index's public area and Name as the TPM reported them (NV_ReadPublic)."""

    index: int  # the handle asked for
    attributes: int
    size: int
    name: bytes
    name_alg: int = NAME_ALG
    auth_policy: bytes = b""
    public_index: int | None = None  # nvIndex in the public area; None: the same as index


@dataclass(frozen=True)
class NvSpec:
    """How this runtime defines an index: what one found must be, exactly."""

    attributes: int  # without WRITTEN, which the TPM sets at the first write
    size: int
    auth_policy: bytes = b""
    name_alg: int = NAME_ALG


def public_area(
    index: int, attributes: int, size: int, auth_policy: bytes = b"", name_alg: int = NAME_ALG
) -> bytes:
    """TPMS_NV_PUBLIC marshalled as the TPM hashes it for the index's Name."""
    return (
        struct.pack(">IHI", index, name_alg, attributes)
        + struct.pack(">H", len(auth_policy))
        + auth_policy
        + struct.pack(">H", size)
    )


def nv_name(
    index: int, attributes: int, size: int, auth_policy: bytes = b"", name_alg: int = NAME_ALG
) -> bytes | None:
    """nameAlg || H(TPMS_NV_PUBLIC); None for a name algorithm other than SHA-256.

    hashlib, not tpm2-pytss's get_name(): that loads the `cryptography`
    backend (lazy_crypto.py)."""
    if name_alg != NAME_ALG:
        return None
    digest = hashlib.sha256(public_area(index, attributes, size, auth_policy, name_alg))
    return struct.pack(">H", name_alg) + digest.digest()


def mismatch(found: NvInfo, spec: NvSpec) -> str | None:
    """Why ``found`` is not an index defined as ``spec`` (technical words, for the
    log); None when it is exactly that, written or not yet.

    The Name binds the whole public area (TPM 2.0 Part 1, "NV Index Name"): the
    one the TPM reported must be the hash of the public area it reported (a bus
    interposer answers both, so each is checked against the other) and the hash
    of the one this runtime defines.
    """
    public_index = found.index if found.public_index is None else found.public_index
    if found.name_alg != spec.name_alg:
        return f"its name algorithm is 0x{found.name_alg:04x}, not 0x{spec.name_alg:04x}"
    if (
        nv_name(public_index, found.attributes, found.size, found.auth_policy, found.name_alg)
        != found.name
    ):
        return "the Name the TPM reported is not that of the public area it reported"
    written = found.attributes & int(NvAttr.WRITTEN)
    if (
        nv_name(
            found.index,
            spec.attributes & _DEFINED_BITS | written,
            spec.size,
            spec.auth_policy,
            spec.name_alg,
        )
        == found.name
    ):
        return None
    # How it differs, for the log.
    if public_index != found.index:
        return f"the TPM described index 0x{public_index:08x} instead"
    if found.attributes & NvAttr.PLATFORMCREATE and not spec.attributes & NvAttr.PLATFORMCREATE:
        # named first: such an index survives a TPM reset
        return f"it was created with the platform's authorization (0x{found.attributes:08x})"
    if found.attributes & _DEFINED_BITS != spec.attributes & _DEFINED_BITS:
        return (
            f"its attributes are 0x{found.attributes & _DEFINED_BITS:08x}, "
            f"not 0x{spec.attributes & _DEFINED_BITS:08x}"
        )
    if found.auth_policy != spec.auth_policy:
        return f"its authorization policy is {found.auth_policy.hex() or 'empty'}"
    if found.size != spec.size:
        return f"it holds {found.size} bytes, not {spec.size}"
    return "its Name is not the one this runtime's definition gives"


def nv_buffer_max(tpm: Tpm) -> int:
    """The most bytes one NV_Read/NV_Write moves (TPM_PT_NV_BUFFER_MAX)."""
    with translated("Reading TPM properties"):
        _, data = tpm.esapi.get_capability(TPM2_CAP.TPM_PROPERTIES, TPM2_PT_NV.BUFFER_MAX, 1)
    for prop in data.data.tpmProperties:
        if int(prop.property) == int(TPM2_PT_NV.BUFFER_MAX):
            return int(prop.value)
    return DEFAULT_NV_BUFFER


def open_index(tpm: Tpm, index: int) -> ESYS_TR:
    """An ESAPI handle for a defined NV index; the caller closes it (tr_close)."""
    if not handles.is_nv_index(index):
        raise ValueError(f"0x{index:08x} is not an NV index")
    with translated(f"Opening NV index 0x{index:08x}", missing=NvIndexMissing):
        return tpm.esapi.tr_from_tpmpublic(index)


def info(tpm: Tpm, index: int) -> NvInfo:
    """Attributes, size and name of an index; NvIndexMissing if it is not defined."""
    handle = open_index(tpm, index)
    try:
        return _info_of(tpm, handle, index)
    finally:
        tpm.esapi.tr_close(handle)


def _info_of(tpm: Tpm, handle: ESYS_TR, index: int) -> NvInfo:
    with translated(f"Reading NV index 0x{index:08x}", missing=NvIndexMissing):
        public, name = tpm.esapi.nv_read_public(handle)
    area = public.nvPublic
    return NvInfo(
        index,
        int(area.attributes),
        int(area.dataSize),
        bytes(name),
        name_alg=int(area.nameAlg),
        auth_policy=bytes(area.authPolicy),
        public_index=int(area.nvIndex),
    )


def _refuse_foreign(found: NvInfo, spec: NvSpec) -> None:
    problem = mismatch(found, spec)
    if problem is not None:
        raise NvIndexForeign(
            f"NV index 0x{found.index:08x} is not defined as this runtime defines it: {problem}",
            problem=problem,
        )


def exists(tpm: Tpm, index: int) -> bool:
    try:
        info(tpm, index)
    except NvIndexMissing:
        return False
    return True


def define(
    tpm: Tpm,
    index: int,
    size: int,
    attributes: int,
    owner_auth: bytes,
    index_auth: bytes = b"",
    policy: bytes = b"",
) -> None:
    """Define an NV index with owner authorisation."""
    if not handles.is_nv_index(index):
        raise ValueError(f"0x{index:08x} is not an NV index")
    public = TPM2B_NV_PUBLIC(
        nvPublic=TPMS_NV_PUBLIC(
            nvIndex=index,
            nameAlg=TPM2_ALG.SHA256,
            attributes=attributes,
            authPolicy=policy,
            dataSize=size,
        )
    )
    tpm.esapi.tr_set_auth(ESYS_TR.OWNER, owner_auth)
    with translated(
        f"Defining NV index 0x{index:08x}", auth="TPM owner passphrase", owner_auth=True
    ):
        handle = tpm.esapi.nv_define_space(index_auth, public, session1=tpm.hmac_session())
    tpm.esapi.tr_close(handle)


def undefine(tpm: Tpm, index: int, owner_auth: bytes) -> None:
    handle = open_index(tpm, index)
    tpm.esapi.tr_set_auth(ESYS_TR.OWNER, owner_auth)
    with translated(
        f"Removing NV index 0x{index:08x}",
        auth="TPM owner passphrase",
        owner_auth=True,
        missing=NvIndexMissing,
    ):
        tpm.esapi.nv_undefine_space(handle, session1=tpm.hmac_session())


def _platform_refused(err: TpmError) -> bool:
    """The platform hierarchy refused: its authorization is not empty (set by the
    firmware or by this runtime's lock) or it is disabled."""
    return (
        err.rc is not None
        and layer_of(err.rc) == LAYER_TPM
        and base_code(err.rc) in (RC_BAD_AUTH, RC_AUTH_FAIL, RC_HIERARCHY)
    )


def _slot_held(index: int, why: str) -> NvSlotHeld:
    return NvSlotHeld(
        f"NV index 0x{index:08x} was created with the platform's authorization "
        f"and cannot be removed: {why}"
    )


def undefine_platform_index(tpm: Tpm, index: int) -> None:
    """Remove an index created with the platform's authorization, trying the empty
    platform authorization (coreboot leaves it so until the runtime locks it);
    NvSlotHeld when the platform hierarchy refuses."""
    handle = open_index(tpm, index)
    tpm.esapi.tr_set_auth(ESYS_TR.PLATFORM, b"")
    try:
        with translated(
            f"Removing NV index 0x{index:08x} (platform)",
            auth="platform authorization",
            missing=NvIndexMissing,
        ):
            tpm.esapi.nv_undefine_space(
                handle, auth_handle=ESYS_TR.PLATFORM, session1=tpm.hmac_session()
            )
    except TpmError as err:
        tpm.esapi.tr_close(handle)
        tpm.flush_sessions()  # a failed authorization may end the session
        if _platform_refused(err):
            raise _slot_held(index, err.message) from err
        raise


def remove_foreign(tpm: Tpm, index: int, spec: NvSpec, owner_auth: bytes) -> str | None:
    """Remove an index at ``index`` that is not defined exactly as ``spec``: with
    the owner's authorization, or, when it was created with the platform's, the
    empty platform authorization. An index defined as ``spec``, or none, is
    left as it is.

    Returns why the index found was removed (technical words), None when none
    was. NvSlotHeld, nothing changed, when it cannot be removed.
    """
    try:
        found = info(tpm, index)
    except NvIndexMissing:
        return None
    problem = mismatch(found, spec)
    if problem is None:
        return None
    if found.attributes & NvAttr.PLATFORMCREATE:
        if found.attributes & NvAttr.POLICY_DELETE:
            # only TPM2_NV_UndefineSpaceSpecial with its own policy removes it
            raise _slot_held(index, "only its own policy may remove it")
        undefine_platform_index(tpm, index)
    else:
        undefine(tpm, index, owner_auth)
    return problem


def claim(tpm: Tpm, index: int, spec: NvSpec, owner_auth: bytes) -> str | None:
    """Make ``index`` an index defined exactly as ``spec`` (owner authorization):
    one that is already is kept, content and all; any other is removed first
    (``remove_foreign``, whose answer this returns); then a missing one is defined."""
    removed = remove_foreign(tpm, index, spec, owner_auth)
    if removed is None and exists(tpm, index):
        return None
    try:
        define(tpm, index, spec.size, spec.attributes, owner_auth, policy=spec.auth_policy)
    except TpmError as err:
        # defined, yet NV_ReadPublic did not show it: a platform index is hidden
        # so while the platform's NV is disabled (phEnableNV clear)
        if err.rc is not None and base_code(err.rc) == RC_NV_DEFINED:
            raise _slot_held(index, err.message) from err
        raise
    return removed


def _auth_handle(tpm: Tpm, handle: ESYS_TR, owner_auth: bytes | None, auth: bytes) -> ESYS_TR:
    if owner_auth is not None:
        tpm.esapi.tr_set_auth(ESYS_TR.OWNER, owner_auth)
        return ESYS_TR.OWNER
    tpm.esapi.tr_set_auth(handle, auth)
    return handle


def write(
    tpm: Tpm,
    index: int,
    data: bytes,
    offset: int = 0,
    *,
    owner_auth: bytes | None = None,
    auth: bytes = b"",
) -> None:
    """Write ``data`` at ``offset``, with the owner's or the index's authorisation.

    Each NV_Write is atomic in the TPM; data longer than one NV buffer is
    written in several commands and is then not atomic as a whole.
    """
    handle = open_index(tpm, index)
    try:
        auth_handle = _auth_handle(tpm, handle, owner_auth, auth)
        step = nv_buffer_max(tpm) if len(data) > DEFAULT_NV_BUFFER else len(data) or 1
        what = "TPM owner passphrase" if owner_auth is not None else "NV index passphrase"
        with translated(
            f"Writing NV index 0x{index:08x}",
            auth=what,
            owner_auth=owner_auth is not None,
            missing=NvIndexMissing,
        ):
            for start in range(0, len(data), step):
                tpm.esapi.nv_write(
                    handle,
                    data[start : start + step],
                    offset + start,
                    auth_handle=auth_handle,
                    session1=tpm.hmac_session(),
                )
    finally:
        tpm.esapi.tr_close(handle)


def read(
    tpm: Tpm,
    index: int,
    size: int | None = None,
    offset: int = 0,
    *,
    owner_auth: bytes | None = None,
    auth: bytes = b"",
) -> bytes:
    """Read ``size`` bytes (default: the whole index) from ``offset``.

    Reads with an empty authorization use a plain password session, as Heads'
    reads do: with libtss2 3.2.1 each HMAC-session command costs about 5 ms of
    client CPU in OpenSSL 3.0's algorithm lookups, against 0.1 ms for this.
    What is read here is public (counters, TPM-encrypted blobs); the response
    is not authenticated, so a bus interposer could forge it: security
    decisions on a counter value are
    to be bound inside the TPM (PolicyNV in a sealing policy), not on this read.
    """
    handle = open_index(tpm, index)
    try:
        total = size if size is not None else _info_of(tpm, handle, index).size - offset
        return _read_open(tpm, handle, index, total, offset, owner_auth, auth)
    finally:
        tpm.esapi.tr_close(handle)


def read_checked(
    tpm: Tpm, index: int, size: int, check: Callable[[NvInfo], None], offset: int = 0
) -> bytes:
    """Read ``size`` bytes at ``offset`` once ``check`` has accepted the index's
    public area (it raises to refuse, and then nothing is read). Both go through
    one handle, as in load_sealed."""
    handle = open_index(tpm, index)
    try:
        check(_info_of(tpm, handle, index))
        return _read_open(tpm, handle, index, size, offset)
    finally:
        tpm.esapi.tr_close(handle)


def _read_open(
    tpm: Tpm,
    handle: ESYS_TR,
    index: int,
    total: int,
    offset: int,
    owner_auth: bytes | None = None,
    auth: bytes = b"",
) -> bytes:
    auth_handle = _auth_handle(tpm, handle, owner_auth, auth)
    # A passphrase is never sent in clear: only an empty one uses the password session.
    secret_auth = owner_auth is not None or bool(auth)
    session = tpm.hmac_session() if secret_auth else ESYS_TR.PASSWORD
    step = nv_buffer_max(tpm) if total > DEFAULT_NV_BUFFER else total or 1
    out = b""
    with translated(f"Reading NV index 0x{index:08x}", missing=NvIndexMissing):
        for start in range(0, total, step):
            chunk = tpm.esapi.nv_read(
                handle,
                min(step, total - start),
                offset + start,
                auth_handle=auth_handle,
                session1=session,
            )
            out += bytes(chunk)
    return out


SEALED_BLOB_ATTRIBUTES = NvAttr.OWNERWRITE | NvAttr.OWNERREAD | NvAttr.AUTHREAD | NvAttr.NO_DA


#: The TOTP/HOTP blob's index, as store_sealed defines it.
SEALED_BLOB = NvSpec(SEALED_BLOB_ATTRIBUTES, SEALED_BLOB_CAPACITY)


def store_sealed(tpm: Tpm, sealed: SealedSecret, index: int, owner_auth: bytes) -> str | None:
    """Keep a sealed blob in NV. Only the owner may replace it; anyone may read it
    (it is encrypted by the TPM's storage key). One NV_Write, so a power cut
    leaves either the old blob or the new one.

    An index at ``index`` not defined as SEALED_BLOB is replaced first, never
    written into (``claim``); returns why one was, None when none was.
    """
    blob = sealed.to_bytes()
    record = struct.pack(">H", len(blob)) + blob
    if len(record) > SEALED_BLOB_CAPACITY:
        raise ValueError("the sealed secret is too large for its NV index")
    if len(record) > nv_buffer_max(tpm):
        raise TpmError(
            "The TPM's NV buffer is too small to replace the blob atomically.",
            summary="This TPM cannot store the sealed secret in one step.",
            hint="Nothing was changed; the TPM is not usable for this.",
        )
    replaced = claim(tpm, index, SEALED_BLOB, owner_auth)
    write(tpm, index, record, owner_auth=owner_auth)
    return replaced


def load_sealed(tpm: Tpm, index: int) -> SealedSecret:
    """Read back a blob written by ``store_sealed``. NvIndexForeign, nothing read,
    when the index is not defined as SEALED_BLOB; NvIndexMissing when it is
    not defined or was never written."""
    handle = open_index(tpm, index)
    try:
        found = _info_of(tpm, handle, index)
        _refuse_foreign(found, SEALED_BLOB)
        if not found.attributes & NvAttr.WRITTEN:
            # defined by an enrolment that stopped before its write: nothing sealed
            raise NvIndexMissing(f"NV index 0x{index:08x} was never written")
        (length,) = struct.unpack(">H", _read_open(tpm, handle, index, 2, 0))
        if not 0 < length <= SEALED_BLOB_CAPACITY - 2:
            raise ValueError(f"NV index 0x{index:08x} holds no sealed secret")
        return SealedSecret.from_bytes(_read_open(tpm, handle, index, length, 2))
    finally:
        tpm.esapi.tr_close(handle)
