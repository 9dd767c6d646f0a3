"""Response codes map to the errors a user can act on."""

from __future__ import annotations

import pytest

from runtime.tpm.errors import (
    NvIndexMissing,
    PcrsChanged,
    TpmAbsent,
    TpmCommandError,
    TpmFailureMode,
    TpmLockedOut,
    WrongOwnerPassphrase,
    WrongPassphrase,
    base_code,
    translate,
    translated,
)


class FakeTss2Exception(Exception):
    """Stands in for tpm2_pytss.TSS2_Exception: only its ``rc`` attribute matters."""

    def __init__(self, rc: int) -> None:
        super().__init__(hex(rc))
        self.rc = rc


@pytest.mark.parametrize(
    ("rc", "expected"),
    [
        (0x98E, WrongPassphrase),  # TPM_RC_AUTH_FAIL, session 1
        (0x9A2, WrongPassphrase),  # TPM_RC_BAD_AUTH, session 1 (OVMF platform clear)
        (0x99D, PcrsChanged),  # TPM_RC_POLICY_FAIL, session 1
        (0x128, PcrsChanged),  # TPM_RC_PCR_CHANGED
        (0x921, TpmLockedOut),  # TPM_RC_LOCKOUT
        (0x18B, NvIndexMissing),  # TPM_RC_HANDLE, handle 1
        (0x101, TpmFailureMode),  # TPM_RC_FAILURE
        (0xA000A, TpmAbsent),  # TCTI I/O error
        (0x14C, TpmCommandError),  # NV index already defined
        (0x7000C, TpmCommandError),  # an ESAPI error
    ],
)
def test_translate(rc: int, expected: type) -> None:
    error = translate(FakeTss2Exception(rc), "Doing it", missing=NvIndexMissing)
    assert type(error) is expected
    assert error.message.startswith("Doing it")
    assert error.rc == rc
    assert error.details()


def test_owner_auth_gets_its_own_type() -> None:
    error = translate(
        FakeTss2Exception(0x98E), "Defining", auth="TPM owner passphrase", owner_auth=True
    )
    assert isinstance(error, WrongOwnerPassphrase)
    assert "wrong TPM owner passphrase" in error.message
    # hierarchy passphrases are outside the dictionary-attack count: no claim of one
    assert "Caps Lock" in error.hint and "dictionary" not in error.hint


def test_base_code_strips_numbers() -> None:
    assert base_code(0x98E) == 0x08E
    assert base_code(0x28E) == 0x08E
    assert base_code(0x14A) == 0x14A


def test_translated_passes_other_exceptions_through() -> None:
    with pytest.raises(KeyError), translated("x"):
        raise KeyError("not a TPM error")
    with pytest.raises(PcrsChanged), translated("x"):
        raise FakeTss2Exception(0x99D)
