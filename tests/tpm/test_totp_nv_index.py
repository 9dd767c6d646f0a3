"""Issue 27, finding 8, on a real swtpm: the TOTP secret's NV index is read only
when it is exactly the index this runtime defines there.

The attack: while the platform authorization is open (coreboot leaves it
empty until the runtime locks it), root plants an index created with it
(TPMA_NV_PLATFORMCREATE) at the TOTP secret's place. Such an index survives
"Reset the TPM" (TPM2_Clear); the attacker writes into it a blob sealed under
the real storage key to the PCRs of the next boot, with a secret the attacker
knows. The runtime must never show a code from it: unsealing refuses it
unread, and enrolment removes it (with the empty platform authorization) or,
when the platform hierarchy is locked, refuses and changes nothing.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from tpm2_pytss import TSS2_Exception
from tpm2_pytss.constants import ESYS_TR, TPM2_ALG
from tpm2_pytss.types import TPM2B_NV_PUBLIC, TPMS_NV_PUBLIC

from runtime import error_detail
from runtime.config import Settings
from runtime.kexec.finalize import PlatformLock, lock_platform
from runtime.secrets.enrol import generate_and_seal
from runtime.secrets.totp import (
    RamOtpKey,
    TotpFailure,
    totp_code,
    unseal_key,
    unseal_totp,
)
from runtime.tpm import handles, nv, sealing
from runtime.tpm.connection import Tpm
from runtime.tpm.errors import NvIndexForeign, NvIndexMissing
from runtime.tpm.nv_attrs import NvAttr
from runtime.tpm.ownership import reset_tpm
from runtime.tpm.pcrs import read_pcrs
from tests.support.board import TEST_BOARD as BOARD
from tests.support.plain_words import assert_plain
from tests.support.token_pty import PtySettings, TokenPty
from tests.tpm.conftest import OWNER
from tests.tpm.test_attestation_secrets import PIN
from tools.soft_token import SoftToken, TokenState
from tools.swtpm import Swtpm

pytestmark = pytest.mark.usefixtures("scratch_log")

TOTP = handles.TOTP_SEALED_NV
KNOWN = b"the attacker knows!!"  # 20 bytes, as a real secret
AT = 1_000_000.0  # one fixed TOTP window, so codes compare
#: What a planter wants: its own index auth may write, and the owner's writes
#: (an enrolment) still land in it, to be overwritten later.
PLANTED = (
    NvAttr.PLATFORMCREATE
    | NvAttr.PPWRITE
    | NvAttr.PPREAD
    | NvAttr.AUTHWRITE
    | NvAttr.AUTHREAD
    | NvAttr.OWNERWRITE
    | NvAttr.OWNERREAD
    | NvAttr.NO_DA
)


@pytest.fixture
def planter(tpm: Tpm, swtpm: Swtpm) -> Iterator[Tpm]:
    """The owned TPM; afterwards any platform index at the TOTP place is removed
    (TPM2_Clear in the next test's fixture leaves it), after a power cycle that
    empties the platform authorization again."""
    try:
        yield tpm
    finally:
        swtpm.power_cycle()
        tpm.startup()
        tpm.forget_primary()
        try:
            found: nv.NvInfo | None = nv.info(tpm, TOTP)
        except NvIndexMissing:
            found = None
        if found is not None and found.attributes & NvAttr.PLATFORMCREATE:
            handle = tpm.esapi.tr_from_tpmpublic(TOTP)
            tpm.esapi.tr_set_auth(ESYS_TR.PLATFORM, b"")
            tpm.esapi.nv_undefine_space(handle, auth_handle=ESYS_TR.PLATFORM)


def plant(tpm: Tpm, attributes: int = PLANTED) -> None:
    """Define the index with the (empty) platform authorization, as root could."""
    public = TPM2B_NV_PUBLIC(
        nvPublic=TPMS_NV_PUBLIC(
            nvIndex=TOTP,
            nameAlg=TPM2_ALG.SHA256,
            attributes=attributes,
            authPolicy=b"",
            dataSize=nv.SEALED_BLOB_CAPACITY,
        )
    )
    tpm.esapi.tr_set_auth(ESYS_TR.PLATFORM, b"")
    handle = tpm.esapi.nv_define_space(b"", public, auth_handle=ESYS_TR.PLATFORM)
    tpm.esapi.tr_close(handle)


def known_record(tpm: Tpm) -> bytes:
    """A blob of the known secret, sealed under the TPM's real storage key to the
    PCRs as they are (this boot's, as an attacker predicts the next one's)."""
    blob = sealing.seal(tpm, KNOWN, BOARD.seal_pcrs).to_bytes()
    return struct.pack(">H", len(blob)) + blob


def index_write(tpm: Tpm, data: bytes) -> None:
    """A write with the index's own (empty) authorization: TPMA_NV_AUTHWRITE."""
    handle = tpm.esapi.tr_from_tpmpublic(TOTP)
    try:
        tpm.esapi.tr_set_auth(handle, b"")
        tpm.esapi.nv_write(handle, data, 0, auth_handle=handle)
    finally:
        tpm.esapi.tr_close(handle)


def raw(tpm: Tpm) -> bytes:
    """The index's bytes, read directly (the test's look, not the runtime's)."""
    handle = tpm.esapi.tr_from_tpmpublic(TOTP)
    try:
        return bytes(tpm.esapi.nv_read(handle, 512, 0, auth_handle=handle))
    finally:
        tpm.esapi.tr_close(handle)


def enrol(tpm: Tpm) -> bytearray:
    enrolled = generate_and_seal(
        tpm, BOARD, read_pcrs(tpm, [4]), bytearray(OWNER), None, Settings({})
    )
    assert enrolled.secret is not None, enrolled.problem
    return enrolled.secret


def code_shown(tpm: Tpm) -> str | None:
    key = unseal_key(tpm, BOARD.runtime_pcr)
    if not isinstance(key, RamOtpKey):
        return None
    with key:
        return key.totp(AT)


def assert_ours(tpm: Tpm) -> None:
    found = nv.info(tpm, TOTP)
    assert not found.attributes & NvAttr.PLATFORMCREATE
    assert found.attributes & ~NvAttr.WRITTEN == nv.SEALED_BLOB_ATTRIBUTES
    assert nv.mismatch(found, nv.SEALED_BLOB) is None


# -- the platform-created index --------------------------------------------------------


def test_a_planted_index_survives_a_tpm_reset_is_never_read_and_enrolment_replaces_it(
    planter: Tpm,
) -> None:
    tpm = planter
    plant(tpm)
    assert reset_tpm(tpm, OWNER) == "platform"  # the menu's "Reset the TPM"
    assert nv.info(tpm, TOTP).attributes & NvAttr.PLATFORMCREATE  # it survived
    index_write(tpm, known_record(tpm))

    result = unseal_totp(tpm, BOARD.runtime_pcr)
    assert result.code is None and result.failure == TotpFailure.NOT_BOUND
    assert "did not put there" in result.message and "Generate a new secret" in result.message
    assert_plain(result.message)
    assert code_shown(tpm) is None
    with pytest.raises(NvIndexForeign, match="platform's authorization"):
        nv.load_sealed(tpm, TOTP)

    secret = enrol(tpm)
    assert_ours(tpm)
    assert any(
        "removed an index this runtime did not define" in line
        for line in error_detail.recent_details()
    )
    # the planter's own authorization no longer writes there
    with pytest.raises(TSS2_Exception):
        index_write(tpm, known_record(tpm))
    assert code_shown(tpm) == totp_code(secret, AT) != totp_code(KNOWN, AT)


def test_enrolment_into_a_planted_index_never_leaves_it_there(planter: Tpm) -> None:
    # Enrolled after the plant, before any blob is in it: the owner's write
    # would have landed in the planter's index, for the planter to overwrite.
    tpm = planter
    plant(tpm)
    secret = enrol(tpm)
    assert_ours(tpm)
    with pytest.raises(TSS2_Exception):
        index_write(tpm, known_record(tpm))
    assert code_shown(tpm) == totp_code(secret, AT)


def test_with_the_platform_locked_enrolment_refuses_and_changes_nothing(
    planter: Tpm,
    tmp_path: Path,
) -> None:
    tpm = planter
    plant(tpm)
    record = known_record(tpm)
    index_write(tpm, record)
    assert lock_platform(tpm) is PlatformLock.LOCKED
    soft = SoftToken(state=TokenState())
    wire = TokenPty(soft.serve)
    try:
        refused = generate_and_seal(
            tpm,
            BOARD,
            read_pcrs(tpm, [4]),
            bytearray(OWNER),
            bytearray(PIN),
            PtySettings(wire.path),
        )
    finally:
        wire.close()
    assert refused.secret is None and not refused.wrong_passphrase
    assert "only the firmware can remove" in refused.problem
    assert "Nothing was changed" in refused.problem
    assert_plain(refused.problem)
    assert soft.state.secret_base32 == ""  # the token was never programmed
    assert nv.info(tpm, TOTP).attributes & NvAttr.PLATFORMCREATE
    assert raw(tpm)[: len(record)] == record  # untouched
    assert code_shown(tpm) is None  # and still never shown


def test_a_disabled_platform_hierarchy_refuses_enrolment(planter: Tpm) -> None:
    tpm = planter
    plant(tpm)
    index_write(tpm, known_record(tpm))
    tpm.esapi.tr_set_auth(ESYS_TR.PLATFORM, b"")
    tpm.esapi.hierarchy_control(
        ESYS_TR.PLATFORM, ESYS_TR.PLATFORM, False, session1=tpm.hmac_session()
    )
    assert code_shown(tpm) is None
    enrolled = generate_and_seal(
        tpm, BOARD, read_pcrs(tpm, [4]), bytearray(OWNER), None, Settings({})
    )
    assert enrolled.secret is None
    assert "only the firmware can remove" in enrolled.problem


def test_store_sealed_itself_never_writes_into_a_planted_index(planter: Tpm) -> None:
    tpm = planter
    plant(tpm)
    sealed = sealing.seal(tpm, b"ours", BOARD.seal_pcrs)
    removed = nv.store_sealed(tpm, sealed, TOTP, OWNER)
    assert removed is not None and "platform's authorization" in removed
    assert_ours(tpm)
    assert bytes(sealing.unseal(tpm, nv.load_sealed(tpm, TOTP))) == b"ours"


# -- owner-created indexes defined otherwise -------------------------------------------


@pytest.mark.parametrize(
    ("attributes", "size", "policy"),
    [
        (nv.SEALED_BLOB_ATTRIBUTES | NvAttr.AUTHWRITE, nv.SEALED_BLOB_CAPACITY, b""),
        (nv.SEALED_BLOB_ATTRIBUTES & ~NvAttr.NO_DA, nv.SEALED_BLOB_CAPACITY, b""),
        (nv.SEALED_BLOB_ATTRIBUTES, nv.SEALED_BLOB_CAPACITY, bytes(32)),
        (nv.SEALED_BLOB_ATTRIBUTES, 2048, b""),
    ],
    ids=["authwrite", "da-protected", "policy", "size"],
)
def test_an_owner_index_defined_otherwise_is_not_read_and_enrolment_replaces_it(
    tpm: Tpm,
    attributes: int,
    size: int,
    policy: bytes,
) -> None:
    nv.define(tpm, TOTP, size, attributes, OWNER, policy=policy)
    nv.write(tpm, TOTP, known_record(tpm), owner_auth=OWNER)
    key = unseal_key(tpm, BOARD.runtime_pcr)
    assert not isinstance(key, RamOtpKey)
    assert key.failure == TotpFailure.NOT_BOUND
    secret = enrol(tpm)  # removed with the owner's authorization, defined again
    assert_ours(tpm)
    assert code_shown(tpm) == totp_code(secret, AT) != totp_code(KNOWN, AT)


def test_our_own_index_is_kept_and_read(tpm: Tpm) -> None:
    first = enrol(tpm)
    assert code_shown(tpm) == totp_code(first, AT)
    second = enrol(tpm)  # the same index, written again
    assert_ours(tpm)
    assert code_shown(tpm) == totp_code(second, AT)


def test_our_index_defined_but_never_written_is_nothing_sealed(tpm: Tpm) -> None:
    nv.define(tpm, TOTP, nv.SEALED_BLOB_CAPACITY, nv.SEALED_BLOB_ATTRIBUTES, OWNER)
    result = unseal_totp(tpm, BOARD.runtime_pcr)
    assert result.code is None and result.failure == "missing"
    secret = enrol(tpm)
    assert code_shown(tpm) == totp_code(secret, AT)
