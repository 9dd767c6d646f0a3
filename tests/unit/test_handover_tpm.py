"""The hand-over extends PCR 4 in any TPM that answers: one that did not answer
at the start but answers at boot time is connected and used, so the next
kernel cannot unseal what this power-on never checked."""

from __future__ import annotations

import pytest

from runtime.state import platform_boot
from runtime.state.device_platform import DevicePlatform
from runtime.tpm import connection
from runtime.tpm.errors import TpmAbsent
from tests.fakes_platform import DEBIAN


def _handed(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    handed: list[object] = []

    def boot(side: object, tpm: object, *rest: object) -> str:
        handed.append(tpm)
        return "kexec failed: test"

    monkeypatch.setattr(platform_boot, "boot", boot)
    return handed


def test_a_tpm_that_answers_late_is_used_for_the_handover(monkeypatch: pytest.MonkeyPatch) -> None:
    handed = _handed(monkeypatch)
    late = object()
    monkeypatch.setattr(connection.Tpm, "connect", classmethod(lambda cls, **_: late))
    platform = DevicePlatform()
    assert platform.tpm is None
    platform.boot(DEBIAN, unsafe=True, progress=lambda _: None)
    assert handed == [late] and platform.tpm is late


def test_without_any_tpm_the_handover_is_told_so(monkeypatch: pytest.MonkeyPatch) -> None:
    handed = _handed(monkeypatch)

    def absent(**_: object) -> object:
        raise TpmAbsent("no TPM device")

    monkeypatch.setattr(connection.Tpm, "connect", staticmethod(absent))
    DevicePlatform().boot(DEBIAN, unsafe=True, progress=lambda _: None)
    assert handed == [None]
