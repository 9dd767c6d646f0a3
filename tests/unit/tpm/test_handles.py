"""Handle numbering (runtime/tpm/handles.py)."""

from __future__ import annotations

from runtime.tpm import handles


def test_totp_sealed_nv_is_an_nv_index() -> None:
    assert handles.is_nv_index(handles.TOTP_SEALED_NV)
    assert not handles.is_persistent(handles.TOTP_SEALED_NV)
    assert handles.TOTP_SEALED_NV & 0xFFFF == handles.TOTP_SECRET & 0xFFFF  # Heads' "MG"
