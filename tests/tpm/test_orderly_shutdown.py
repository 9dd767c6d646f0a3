"""TPM2_Shutdown(CLEAR) before each power change (issue 15), on a real swtpm.

swtpm (libtpms, like the reference TPM) counts a power-on that followed no
orderly shutdown as one dictionary-attack failure at TPM2_Startup, but only
when a DA-protected authorization was used since the last orderly shutdown
(here a counter defined as Heads defines them, without NO_DA, incremented
with its empty authorization as signing /boot does). The baseline shows the
count moving; through the runtime's own path it does not move.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from tpm2_pytss import ESAPI
from tpm2_pytss.constants import TPM2_CC

from runtime.state.device_platform import DevicePlatform
from runtime.tpm import counters, nv, ownership
from runtime.tpm.connection import TctiSpec, Tpm
from runtime.tpm.nv_attrs import DA_PROTECTED_COUNTER_ATTRIBUTES
from runtime.tpm.power_state import orderly_shutdown
from tests.tpm.conftest import OWNER
from tests.tpm.recording_tcti import RecordingTcti
from tools.swtpm import Swtpm

#: a counter as Heads defines it: its use is DA-protected
HEADS_COUNTER = 0x01ABCDEF
POWER_ONS = 3

#: how the runtime leaves a power-on: closes its Tpm, however it got there
Leave = Callable[[Tpm], None]


pytestmark = pytest.mark.usefixtures("da_restored")


@pytest.fixture
def heads_counter(tpm: Tpm) -> int:
    nv.define(tpm, HEADS_COUNTER, counters.COUNTER_SIZE, DA_PROTECTED_COUNTER_ATTRIBUTES, OWNER)
    tpm.flush_sessions()  # the fixture's connection stays idle from here on
    return HEADS_COUNTER


def _failures_over_power_ons(swtpm: Swtpm, leave: Leave, counter: int | None) -> list[int]:
    """Each power-on: the runtime connects, increments ``counter`` (None: uses
    nothing DA-protected) and leaves; then the power is cut and the next
    power-on's firmware reads the failure count after its TPM2_Startup."""
    seen = []
    for _ in range(POWER_ONS):
        runtime_tpm = Tpm.connect(swtpm.tcti)
        if counter is not None:
            counters.increment_counter(runtime_tpm, counter)
        leave(runtime_tpm)
        swtpm.power_cycle()
        with Tpm.connect(swtpm.tcti) as firmware:
            firmware.startup()
            seen.append(ownership.da_state(firmware).failures)
    return seen


def _no_shutdown(tpm: Tpm) -> None:
    tpm.close()


def _orderly(tpm: Tpm) -> None:
    orderly_shutdown(tpm)
    tpm.close()


def _through_the_platform(tpm: Tpm) -> None:
    platform = DevicePlatform()
    platform.tpm = tpm
    platform.before_power_change()
    assert platform.tpm is None


def _failures(tpm: Tpm) -> int:
    return ownership.da_state(tpm).failures


def test_baseline_swtpm_counts_unorderly_shutdowns_after_a_da_protected_use(
    swtpm: Swtpm, tpm: Tpm, heads_counter: int
) -> None:
    before = _failures(tpm)
    assert _failures_over_power_ons(swtpm, _no_shutdown, heads_counter) == [
        before + n for n in range(1, POWER_ONS + 1)
    ]


def test_baseline_nothing_is_counted_when_nothing_da_protected_was_used(
    swtpm: Swtpm, tpm: Tpm
) -> None:
    before = _failures(tpm)
    assert _failures_over_power_ons(swtpm, _no_shutdown, None) == [before] * POWER_ONS


@pytest.mark.parametrize(
    "leave",
    [_orderly, _through_the_platform],
    ids=["orderly_shutdown", "DevicePlatform.before_power_change"],
)
def test_the_runtimes_shutdown_keeps_the_count(
    swtpm: Swtpm, tpm: Tpm, heads_counter: int, leave: Leave
) -> None:
    before = _failures(tpm)
    assert _failures_over_power_ons(swtpm, leave, heads_counter) == [before] * POWER_ONS


def test_the_shutdown_is_the_last_command_and_follows_the_session_flushes(
    swtpm: Swtpm, tpm: Tpm, monkeypatch: pytest.MonkeyPatch
) -> None:
    if "TSS2_LOG" not in os.environ:  # as Tpm.connect: libtss2 keeps quiet
        monkeypatch.setenv("TSS2_LOG", "all+NONE")
    tpm.flush_sessions()  # the swtpm holds three loaded sessions: leave room
    tcti = RecordingTcti(swtpm.tcti)
    try:
        runtime_tpm = Tpm(ESAPI(tcti), TctiSpec.parse(swtpm.tcti))
        runtime_tpm.hmac_session()
        runtime_tpm.policy_session()
        platform = DevicePlatform()
        platform.tpm = runtime_tpm
        start = tcti.mark()
        platform.before_power_change()
        platform.before_power_change()  # again: the TPM is gone, nothing is sent
        codes = [exchange.code for exchange in tcti.exchanges[start:]]
        assert codes == [TPM2_CC.FlushContext, TPM2_CC.FlushContext, TPM2_CC.Shutdown]
        assert tcti.exchanges[-1].response_code == 0
    finally:
        tcti.close()
