"""Issue 27, finding 8, for the counters, on a real swtpm: the /boot rollback
counter and the HOTP counter are read only when the index is exactly a counter
as this runtime defines one, or as it (and Heads) did before NO_DA.

Anything else at the counter's place is refused in plain words and never read:
a counter created with the platform's authorization (it survives a TPM reset),
one with an authorization policy, one with extra attributes (POLICYWRITE,
READ_STCLEAR), one whose size is not 8. The TPM refuses to define a counter of
another size, so that one is a bus interposer's answer. "Never read" is what
crossed the bus: the runtime's connection goes through a recording transport
(tests/tpm/recording_tcti.py) and no TPM2_NV_Read may be on it.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tpm2_pytss import ESAPI
from tpm2_pytss.constants import ESYS_TR, TPM2_ALG, TPM2_CC
from tpm2_pytss.types import TPM2B_NV_PUBLIC, TPMS_NV_PUBLIC

import runtime.integrity.preflight
from runtime import error_detail
from runtime.integrity.boot_lists import ROLLBACK_FILE, parse_rollback
from runtime.integrity.gpg_signer import GpgSigner
from runtime.integrity.sign_boot import sign_boot
from runtime.integrity.tpm_counter import TpmCounter
from runtime.integrity.verify_boot import Problem, verify_boot
from runtime.secrets.hotp import CounterStoreError
from runtime.secrets.hotp.counter import TpmCounterStore
from runtime.state.device_platform import DevicePlatform
from runtime.tpm import counters, handles, nv
from runtime.tpm.connection import TctiSpec, Tpm
from runtime.tpm.counters import CounterUnusable
from runtime.tpm.errors import RC_SIZE, TpmError, base_code
from runtime.tpm.nv_attrs import COUNTER_ATTRIBUTES, DA_PROTECTED_COUNTER_ATTRIBUTES, NvAttr
from tests.support.plain_words import assert_plain
from tests.tpm.conftest import OWNER
from tests.tpm.recording_tcti import HEADER, RecordingTcti
from tools.owner_key import OwnerKey
from tools.swtpm import Swtpm

pytestmark = [pytest.mark.tpm, pytest.mark.usefixtures("scratch_log")]

HOTP = handles.HOTP_COUNTER_NV
#: a rollback counter's place, as /boot/kexec_rollback.txt may name it
ROLLBACK = 0x01C0FFEE
CC_NV_READ_PUBLIC = 0x169


@dataclass(frozen=True)
class Plant:
    """A counter at one of the runtime's counter places, not defined as the runtime
    defines one; ``problem``: what the refusal says about it."""

    attributes: int
    problem: str
    policy: bytes = b""
    platform: bool = False


PLANTS = {
    "platform": Plant(
        COUNTER_ATTRIBUTES | NvAttr.PLATFORMCREATE, "platform authority", platform=True
    ),
    "platform-da": Plant(
        DA_PROTECTED_COUNTER_ATTRIBUTES | NvAttr.PLATFORMCREATE, "platform authority", platform=True
    ),
    "policy": Plant(COUNTER_ATTRIBUTES, "authorization policy", policy=bytes(32)),
    "policywrite": Plant(COUNTER_ATTRIBUTES | NvAttr.POLICYWRITE, "security policy"),
    "read-stclear": Plant(COUNTER_ATTRIBUTES | NvAttr.READ_STCLEAR, "security policy"),
}


@pytest.fixture
def planter(tpm: Tpm, swtpm: Swtpm) -> Iterator[Tpm]:
    """The owned TPM; afterwards every platform index in the owner's NV range is
    removed (the next test's TPM2_Clear leaves it there)."""
    try:
        yield tpm
    finally:
        swtpm.power_cycle()  # the platform authorization is empty again
        tpm.startup()
        tpm.forget_primary()
        for index in counters.defined_nv_indexes(tpm):
            if nv.info(tpm, index).attributes & NvAttr.PLATFORMCREATE:
                nv.undefine_platform_index(tpm, index)


Client = Callable[..., tuple[Tpm, RecordingTcti]]


@pytest.fixture
def client(tpm: Tpm, swtpm: Swtpm) -> Iterator[Client]:
    """``client()``: the runtime's own connection, on a recording transport."""
    opened: list[tuple[Tpm, RecordingTcti]] = []

    def open_(transport: type[RecordingTcti] = RecordingTcti) -> tuple[Tpm, RecordingTcti]:
        tpm.flush_sessions()  # the swtpm holds three loaded sessions: leave room
        tcti = transport(swtpm.tcti)
        runtime_tpm = Tpm(ESAPI(tcti), TctiSpec.parse(swtpm.tcti))
        opened.append((runtime_tpm, tcti))
        return runtime_tpm, tcti

    yield open_
    for runtime_tpm, tcti in reversed(opened):
        runtime_tpm.close()
        tcti.close()


def plant(tpm: Tpm, index: int, how: Plant) -> int:
    """Define the counter as an attacker with that authorization could, move it
    once with its own (empty) authorization; its value, as the TPM holds it."""
    public = TPM2B_NV_PUBLIC(
        nvPublic=TPMS_NV_PUBLIC(
            nvIndex=index,
            nameAlg=TPM2_ALG.SHA256,
            attributes=how.attributes,
            authPolicy=how.policy,
            dataSize=counters.COUNTER_SIZE,
        )
    )
    hierarchy = ESYS_TR.PLATFORM if how.platform else ESYS_TR.OWNER
    tpm.esapi.tr_set_auth(hierarchy, b"" if how.platform else OWNER)
    tpm.esapi.tr_close(tpm.esapi.nv_define_space(b"", public, auth_handle=hierarchy))
    handle = tpm.esapi.tr_from_tpmpublic(index)
    try:
        tpm.esapi.tr_set_auth(handle, b"")
        tpm.esapi.nv_increment(handle, auth_handle=handle)
        return int.from_bytes(bytes(tpm.esapi.nv_read(handle, 8, 0, auth_handle=handle)), "big")
    finally:
        tpm.esapi.tr_close(handle)


def define_ours(tpm: Tpm, index: int, attributes: int) -> int:
    """A counter defined as the runtime defines one (or did), moved once."""
    nv.define(tpm, index, counters.COUNTER_SIZE, attributes, OWNER)
    return counters.increment_counter(tpm, index)


def nv_reads_or_moves(bus: RecordingTcti) -> list[int]:
    return [e.code for e in bus.exchanges if e.code in (TPM2_CC.NV_Read, TPM2_CC.NV_Increment)]


def rollback_preflight(
    runtime_tpm: Tpm, boot: Path, index: int, monkeypatch: pytest.MonkeyPatch
) -> str:
    """DevicePlatform's preflight on a /boot naming ``index`` (at ``boot``, not /boot)."""
    boot.mkdir(exist_ok=True)
    (boot / ROLLBACK_FILE).write_text(f"{'0' * 64}  /tmp/counter-{index & 0xFFFFFF:x}\n")
    real = runtime.integrity.preflight.preflight
    monkeypatch.setattr(
        runtime.integrity.preflight, "preflight", lambda _dir, inspect: real(str(boot), inspect)
    )
    platform = DevicePlatform()
    platform.tpm, platform.boot_device = runtime_tpm, "/dev/test-boot"
    return platform.rollback_preflight()


# -- the rollback counter --------------------------------------------------------------


@pytest.mark.parametrize("how", PLANTS.values(), ids=PLANTS.keys())
def test_a_planted_rollback_counter_is_refused_unread(
    planter: Tpm,
    client: Client,
    how: Plant,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    plant(planter, ROLLBACK, how)
    runtime_tpm, bus = client()

    with pytest.raises(CounterUnusable) as info:
        counters.check_counter(runtime_tpm, ROLLBACK)
    assert how.problem in info.value.problem
    with pytest.raises(CounterUnusable):
        counters.read_counter(runtime_tpm, ROLLBACK)
    with pytest.raises(OSError) as failed:
        TpmCounter(runtime_tpm).read(ROLLBACK)  # what verify_boot reads through
    assert "not a proper counter" in str(failed.value)
    assert_plain(str(failed.value))
    assert f"0x{ROLLBACK:08x}" in error_detail.recent_details()[-1]  # for the log

    said = rollback_preflight(runtime_tpm, tmp_path / "boot", ROLLBACK, monkeypatch)
    assert said.startswith("The TPM rollback counter cannot be used:")
    assert how.problem in said
    assert_plain(said)
    assert nv_reads_or_moves(bus) == []  # refused from its public area alone


@pytest.mark.parametrize(
    "how",
    [PLANTS["platform"], PLANTS["policy"], PLANTS["policywrite"]],
    ids=["platform", "policy", "policywrite"],
)
def test_verify_boot_reports_a_planted_counter_as_a_counter_problem(
    planter: Tpm,
    client: Client,
    how: Plant,
    tmp_path: Path,
    owner_key: OwnerKey,
) -> None:
    boot = tmp_path / "boot"
    boot.mkdir()
    (boot / "vmlinuz").write_bytes(b"kernel" * 100)
    report = sign_boot(
        str(boot), GpgSigner(str(owner_key.home)), TpmCounter(planter, OWNER), str(owner_key.public)
    )
    assert report.ok
    index = parse_rollback((boot / ROLLBACK_FILE).read_bytes()).nv_index
    # ours removed (the owner's passphrase), another put at the place /boot names
    nv.undefine(planter, index, OWNER)
    plant(planter, index, how)
    runtime_tpm, bus = client()
    verified = verify_boot(str(boot), str(owner_key.public), TpmCounter(runtime_tpm).value)
    assert {f.problem for f in verified.findings} == {Problem.COUNTER_UNREADABLE}
    assert "cannot be read" in str(verified.findings[0])
    assert verified.counter is None  # no value was taken from it
    assert nv_reads_or_moves(bus) == []


@pytest.mark.parametrize(
    "attributes",
    [COUNTER_ATTRIBUTES, DA_PROTECTED_COUNTER_ATTRIBUTES],
    ids=["current", "da-protected"],
)
def test_both_accepted_definitions_are_read(
    tpm: Tpm,
    client: Client,
    attributes: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    value = define_ours(tpm, ROLLBACK, attributes)
    runtime_tpm, _ = client()
    counters.check_counter(runtime_tpm, ROLLBACK)
    assert counters.read_counter(runtime_tpm, ROLLBACK) == value
    assert TpmCounter(runtime_tpm).value(ROLLBACK) == value
    assert counters.increment_counter(runtime_tpm, ROLLBACK) == value + 1
    assert rollback_preflight(runtime_tpm, tmp_path / "boot", ROLLBACK, monkeypatch) == ""
    assert ROLLBACK in counters.rollback_counters(runtime_tpm)


def test_a_defined_never_moved_counter_reads_as_none(tpm: Tpm, client: Client) -> None:
    nv.define(tpm, ROLLBACK, counters.COUNTER_SIZE, DA_PROTECTED_COUNTER_ATTRIBUTES, OWNER)
    runtime_tpm, _ = client()
    assert counters.read_counter(runtime_tpm, ROLLBACK) is None


# -- the HOTP counter ------------------------------------------------------------------


@pytest.mark.parametrize("how", PLANTS.values(), ids=PLANTS.keys())
def test_a_planted_hotp_counter_is_refused_unread(
    planter: Tpm,
    client: Client,
    how: Plant,
) -> None:
    value = plant(planter, HOTP, how)
    runtime_tpm, bus = client()
    store = TpmCounterStore(runtime_tpm)
    with pytest.raises(CounterStoreError) as info:
        store.read()
    message = info.value.message
    assert message.startswith("The TPM's place for the HOTP counter holds something else:")
    assert how.problem in message
    assert ("only the firmware can" in message) == how.platform  # a reset leaves it
    assert_plain(message)
    assert f"0x{HOTP:08x}" in error_detail.recent_details()[-1]
    with pytest.raises(CounterStoreError, match="holds something else"):
        store.advance_to(value + 5)
    with pytest.raises(CounterStoreError, match="holds something else"):
        TpmCounterStore.open_or_create(runtime_tpm, OWNER)
    assert nv_reads_or_moves(bus) == []  # neither read nor moved
    assert plant_value(planter, HOTP) == value


def plant_value(tpm: Tpm, index: int) -> int:
    """The planted counter's value, read by the test's own hand."""
    handle = tpm.esapi.tr_from_tpmpublic(index)
    try:
        tpm.esapi.tr_set_auth(handle, b"")
        return int.from_bytes(bytes(tpm.esapi.nv_read(handle, 8, 0, auth_handle=handle)), "big")
    finally:
        tpm.esapi.tr_close(handle)


@pytest.mark.parametrize(
    "attributes",
    [COUNTER_ATTRIBUTES, DA_PROTECTED_COUNTER_ATTRIBUTES],
    ids=["current", "da-protected"],
)
def test_both_accepted_definitions_serve_as_the_hotp_counter(
    tpm: Tpm,
    client: Client,
    attributes: int,
) -> None:
    value = define_ours(tpm, HOTP, attributes)
    runtime_tpm, _ = client()
    store = TpmCounterStore.open_or_create(runtime_tpm, OWNER)  # kept, not redefined
    assert store.read() == value
    store.advance_to(value + 2)
    assert store.read() == value + 2
    assert nv.info(runtime_tpm, HOTP).attributes & ~NvAttr.WRITTEN == attributes


# -- a size no TPM gives a counter: an interposer's answer -----------------------------


def test_the_tpm_itself_defines_no_counter_of_another_size(tpm: Tpm) -> None:
    with pytest.raises(TpmError) as info:
        nv.define(tpm, ROLLBACK, 16, COUNTER_ATTRIBUTES, OWNER)
    assert info.value.rc is not None and base_code(info.value.rc) == RC_SIZE


class SizeRewriter(RecordingTcti):
    """Answers NV_ReadPublic of the counter places with dataSize 16, and the Name
    that public area has: consistent, as a careful interposer would make it."""

    def do_receive(self, timeout: int) -> bytes:
        command = self._pending
        response = super().do_receive(timeout)
        assert command is not None
        if (
            HEADER.unpack_from(command)[2] != CC_NV_READ_PUBLIC
            or struct.unpack_from(">I", command, HEADER.size)[0] not in (HOTP, ROLLBACK)
            or HEADER.unpack_from(response)[2] != 0
        ):
            return response
        at = HEADER.size + 2  # TPMS_NV_PUBLIC, in its TPM2B
        index, name_alg, attributes, policy_size = struct.unpack_from(">IHIH", response, at)
        policy = response[at + 12 : at + 12 + policy_size]
        size_at = at + 12 + policy_size
        name = nv.nv_name(index, attributes, 16, policy, name_alg)
        assert name is not None
        body = (
            response[HEADER.size : size_at]
            + struct.pack(">H", 16)
            + struct.pack(">H", len(name))
            + name
        )
        tag = HEADER.unpack_from(response)[0]
        return HEADER.pack(tag, HEADER.size + len(body), 0) + body


@pytest.mark.parametrize("index", [ROLLBACK, HOTP], ids=["rollback", "hotp"])
def test_a_counter_said_to_hold_16_bytes_is_refused_unread(
    tpm: Tpm,
    client: Client,
    index: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    define_ours(tpm, index, COUNTER_ATTRIBUTES)
    runtime_tpm, bus = client(SizeRewriter)
    assert nv.info(runtime_tpm, index).size == 16  # the interposer's word
    if index == HOTP:
        with pytest.raises(CounterStoreError, match="holds 16 bytes, not 8"):
            TpmCounterStore(runtime_tpm).read()
    else:
        with pytest.raises(CounterUnusable, match="holds 16 bytes, not 8"):
            counters.read_counter(runtime_tpm, index)
        said = rollback_preflight(runtime_tpm, tmp_path / "boot", index, monkeypatch)
        assert said == "The TPM rollback counter cannot be used: it holds 16 bytes, not 8."
    assert nv_reads_or_moves(bus) == []
