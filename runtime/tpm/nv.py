"""NV indexes: define, write, read, undefine; sealed blobs kept in NV."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from tpm2_pytss.constants import ESYS_TR, TPM2_ALG, TPM2_CAP, TPM2_PT_NV
from tpm2_pytss.types import TPM2B_NV_PUBLIC, TPMS_NV_PUBLIC

from runtime.tpm import handles
from runtime.tpm.connection import Tpm
from runtime.tpm.errors import NvIndexMissing, TpmError, translated
from runtime.tpm.nv_attrs import NvAttr
from runtime.tpm.sealing import SealedSecret

#: A conservative chunk for NV reads and writes when the TPM does not say.
DEFAULT_NV_BUFFER = 512
#: Room for a sealed blob in NV; a PCR+passphrase blob is about 300 bytes.
SEALED_BLOB_CAPACITY = 1024


@dataclass(frozen=True)
class NvInfo:
    index: int
    attributes: int
    size: int
    name: bytes


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
    return NvInfo(index, int(area.attributes), int(area.dataSize), bytes(name))


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
    with translated(f"Defining NV index 0x{index:08x}", auth="TPM owner passphrase",
                    owner_auth=True):
        handle = tpm.esapi.nv_define_space(index_auth, public, session1=tpm.hmac_session())
    tpm.esapi.tr_close(handle)


def undefine(tpm: Tpm, index: int, owner_auth: bytes) -> None:
    handle = open_index(tpm, index)
    tpm.esapi.tr_set_auth(ESYS_TR.OWNER, owner_auth)
    with translated(f"Removing NV index 0x{index:08x}", auth="TPM owner passphrase",
                    owner_auth=True, missing=NvIndexMissing):
        tpm.esapi.nv_undefine_space(handle, session1=tpm.hmac_session())


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
        with translated(f"Writing NV index 0x{index:08x}", auth=what,
                        owner_auth=owner_auth is not None, missing=NvIndexMissing):
            for start in range(0, len(data), step):
                tpm.esapi.nv_write(handle, data[start : start + step], offset + start,
                                   auth_handle=auth_handle, session1=tpm.hmac_session())
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
        auth_handle = _auth_handle(tpm, handle, owner_auth, auth)
        # A passphrase is never sent in clear: only an empty one uses the password session.
        secret_auth = owner_auth is not None or bool(auth)
        session = tpm.hmac_session() if secret_auth else ESYS_TR.PASSWORD
        step = nv_buffer_max(tpm) if total > DEFAULT_NV_BUFFER else total or 1
        out = b""
        with translated(f"Reading NV index 0x{index:08x}", missing=NvIndexMissing):
            for start in range(0, total, step):
                chunk = tpm.esapi.nv_read(handle, min(step, total - start), offset + start,
                                          auth_handle=auth_handle, session1=session)
                out += bytes(chunk)
        return out
    finally:
        tpm.esapi.tr_close(handle)


SEALED_BLOB_ATTRIBUTES = NvAttr.OWNERWRITE | NvAttr.OWNERREAD | NvAttr.AUTHREAD | NvAttr.NO_DA


def store_sealed(tpm: Tpm, sealed: SealedSecret, index: int, owner_auth: bytes) -> None:
    """Keep a sealed blob in NV. Only the owner may replace it; anyone may read it
    (it is encrypted by the TPM's storage key). One NV_Write, so a power cut
    leaves either the old blob or the new one."""
    blob = sealed.to_bytes()
    record = struct.pack(">H", len(blob)) + blob
    if len(record) > SEALED_BLOB_CAPACITY:
        raise ValueError("the sealed secret is too large for its NV index")
    if not exists(tpm, index):
        define(tpm, index, SEALED_BLOB_CAPACITY, SEALED_BLOB_ATTRIBUTES, owner_auth)
    if len(record) > nv_buffer_max(tpm):
        raise TpmError("The TPM's NV buffer is too small to replace the blob atomically.",
                       summary="This TPM cannot store the sealed secret in one step.",
                       hint="Nothing was changed; the TPM is not usable for this.")
    write(tpm, index, record, owner_auth=owner_auth)


def load_sealed(tpm: Tpm, index: int) -> SealedSecret:
    """Read back a blob written by ``store_sealed``."""
    (length,) = struct.unpack(">H", read(tpm, index, 2))
    if not 0 < length <= SEALED_BLOB_CAPACITY - 2:
        raise ValueError(f"NV index 0x{index:08x} holds no sealed secret")
    return SealedSecret.from_bytes(read(tpm, index, length, 2))
