"""PCR 4 is read back after the hand-over's extend, in an audited session, on
a real swtpm.

A device on the TPM bus that passes commands through can answer the extend of
"generic" with "success" and not pass it on: PCR 4 would keep its pre-boot
value and the next OS could unseal what was sealed to it. So the hand-over
reads PCR 4 before and after the extend in an HMAC session salted with the
storage key and marked AUDIT (PCR_Read takes no authorization; only an audit
session makes the TPM HMAC its answer, and ESAPI checks that HMAC), and
refuses to boot when the value is not the old one extended with the markers.

The interposers here are Python TCTIs around swtpm's (recording_tcti.py): one
swallows PCR_Extend and answers "success" itself, one also rewrites the
PCR_Read answers to the values the extend would have given, one hides the
SHA-256 bank from the list of banks, one refuses the session.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tpm2_pytss.constants import ESYS_TR

from runtime.kexec import finalize
from runtime.secrets.ram import SecretDir
from runtime.tpm import pcrs
from runtime.tpm.connection import Tpm
from runtime.tpm.errors import Pcr4NotExtended, WrongPassphrase, translated
from runtime.tpm.pcr_math import Bank, extend_all, measure_string
from tests.tpm.recording_tcti import HEADER, Exchange, RecordingTcti, runtime_tpms
from tools.swtpm import Swtpm

pytestmark = pytest.mark.tpm

CC_PCR_EXTEND = 0x182
CC_PCR_READ = 0x17E
CC_GET_CAPABILITY = 0x17A
CC_START_AUTH_SESSION = 0x176
TPM_ST_SESSIONS = 0x8002
TPMA_SESSION_AUDIT = 0x80
TPM_RC_SESSION_MEMORY = 0x903
#: TSS2_ESYS_RC_RSP_AUTH_FAILED: ESAPI found the response HMAC wrong
ESYS_RSP_AUTH_FAILED = 0x7001B
PCR4 = 0x00000004
REFUSAL = (
    "PCR 4 did not change as it must: something on the TPM bus may be answering "
    "in the TPM's place. Nothing was booted."
)
DIGEST_SIZES = {bank.alg_id: bank.digest_size for bank in Bank}


def chain(bank: Bank, *markers: str) -> bytes:
    return extend_all(bank, bank.zero(), [measure_string(bank, m) for m in markers])


def extend_digests(command: bytes) -> dict[int, bytes]:
    """The digests of a PCR_Extend command, by algorithm ID."""
    (auth_size,) = struct.unpack_from(">I", command, HEADER.size + 4)
    offset = HEADER.size + 8 + auth_size
    (count,) = struct.unpack_from(">I", command, offset)
    offset += 4
    digests = {}
    for _ in range(count):
        (alg,) = struct.unpack_from(">H", command, offset)
        size = DIGEST_SIZES[alg]
        digests[alg] = command[offset + 2 : offset + 2 + size]
        offset += 2 + size
    return digests


def read_answer_digests(response: bytes) -> list[tuple[int, int, int]]:
    """(algorithm ID, PCR, offset of the digest) for each value in a PCR_Read answer."""
    tag = HEADER.unpack_from(response)[0]
    offset = HEADER.size + (4 if tag == TPM_ST_SESSIONS else 0) + 4  # parameterSize, counter
    (count,) = struct.unpack_from(">I", response, offset)
    offset += 4
    selected = []
    for _ in range(count):
        alg, size = struct.unpack_from(">HB", response, offset)
        bitmap = response[offset + 3 : offset + 3 + size]
        selected += [(alg, pcr) for pcr in range(size * 8) if bitmap[pcr // 8] >> (pcr % 8) & 1]
        offset += 3 + size
    offset += 4  # TPML_DIGEST count
    found = []
    for alg, pcr in selected:
        (size,) = struct.unpack_from(">H", response, offset)
        found.append((alg, pcr, offset + 2))
        offset += 2 + size
    return found


class Swallower(RecordingTcti):
    """Answers PCR_Extend(PCR 4) of the markers in ``swallow`` with "success"
    and never passes it on, as a device on the bus can."""

    swallow: frozenset[str] = frozenset()

    def __init__(self, spec: str) -> None:
        super().__init__(spec)
        self.swallowed: list[dict[int, bytes]] = []
        self._answer: bytes | None = None

    def _swallows(self, command: bytes) -> bool:
        if (
            HEADER.unpack_from(command)[2] != CC_PCR_EXTEND
            or struct.unpack_from(">I", command, HEADER.size)[0] != PCR4
        ):
            return False
        sha256 = extend_digests(command).get(Bank.SHA256.alg_id)
        return any(sha256 == measure_string(Bank.SHA256, m) for m in self.swallow)

    def do_transmit(self, command: bytes) -> None:
        if not self._swallows(bytes(command)):
            super().do_transmit(command)
            return
        self.swallowed.append(extend_digests(bytes(command)))
        # success, no parameters, the password session's answer: empty nonce,
        # continueSession, empty HMAC
        body = struct.pack(">I", 0) + b"\x00\x00" + b"\x01" + b"\x00\x00"
        self._pending = bytes(command)
        self._answer = HEADER.pack(TPM_ST_SESSIONS, HEADER.size + len(body), 0) + body

    def do_receive(self, timeout: int) -> bytes:
        if self._answer is None:
            return super().do_receive(timeout)
        answer, self._answer = self._answer, None
        assert self._pending is not None
        self.exchanges.append(Exchange(self._pending, answer))
        self._pending = None
        return answer


class Forger(Swallower):
    """A Swallower that also rewrites PCR 4 in every PCR_Read answer to the
    value the swallowed extends would have given: without an audit session
    nothing tells the forgery from the TPM's answer."""

    def do_receive(self, timeout: int) -> bytes:
        command = self._pending
        response = super().do_receive(timeout)
        assert command is not None
        if (
            HEADER.unpack_from(command)[2] != CC_PCR_READ
            or not self.swallowed
            or HEADER.unpack_from(response)[2] != 0
        ):
            return response
        forged = bytearray(response)
        for alg, pcr, at in read_answer_digests(response):
            if pcr != 4 or alg not in self.swallowed[0]:
                continue
            size = DIGEST_SIZES[alg]
            value = response[at : at + size]
            for digests in self.swallowed:
                value = hashlib.new(Bank.from_alg_id(alg).hash_name, value + digests[alg]).digest()
            forged[at : at + size] = value
        return bytes(forged)


class BankHider(RecordingTcti):
    """Answers the list of PCR banks with SHA-256 unallocated, so the extend
    leaves that bank alone (the list is not authenticated)."""

    def do_receive(self, timeout: int) -> bytes:
        command = self._pending
        response = super().do_receive(timeout)
        assert command is not None
        if HEADER.unpack_from(command)[2] != CC_GET_CAPABILITY:
            return response
        return response.replace(b"\x00\x0b\x03\xff\xff\xff", b"\x00\x0b\x03\x00\x00\x00")


class SessionRefuser(RecordingTcti):
    """Answers the next ``refusals`` StartAuthSession commands with an error
    itself (out of session memory)."""

    refusals = 0
    _refused = b""

    def do_transmit(self, command: bytes) -> None:
        if self.refusals and HEADER.unpack_from(command)[2] == CC_START_AUTH_SESSION:
            self.refusals -= 1
            self._pending = bytes(command)
            self._refused = HEADER.pack(0x8001, HEADER.size, TPM_RC_SESSION_MEMORY)
            return
        self._refused = b""
        super().do_transmit(command)

    def do_receive(self, timeout: int) -> bytes:
        if not self._refused:
            return super().do_receive(timeout)
        answer, self._refused = self._refused, b""
        self._pending = None
        return answer


Open = Callable[..., tuple[Tpm, RecordingTcti]]


@pytest.fixture
def client(swtpm: Swtpm, tpm: Tpm) -> Iterator[Open]:
    """``client(pin, transport)``: the runtime's Tpm on an interposing transport,
    on the owned swtpm of the ``tpm`` fixture (whose sessions are flushed: the
    swtpm holds three)."""
    tpm.flush_sessions()
    with runtime_tpms(swtpm.tcti) as open_:
        yield open_


def real_name(tpm: Tpm) -> bytes:
    _, name, _ = tpm.esapi.read_public(tpm.primary())
    return bytes(name)


def pcr4(tpm: Tpm) -> dict[Bank, bytes]:
    """PCR 4 as the TPM holds it (the fixture's own connection, no interposer)."""
    return {bank: values[4] for bank, values in pcrs.read_all_banks(tpm, [4]).items()}


def platform_open(tpm: Tpm) -> bool:
    """Whether the platform hierarchy still takes the empty authorization."""
    tpm.esapi.tr_set_auth(ESYS_TR.PLATFORM, b"")
    try:
        with translated("Test: platform command"):
            tpm.esapi.clear_control(ESYS_TR.PLATFORM, False)
    except WrongPassphrase:
        return False
    return True


def readback_lines(log: Path) -> list[str]:
    text = log.read_text() if log.exists() else ""
    return [
        line.split(" stage=", 1)[1] for line in text.splitlines() if "stage=pcr4-readback" in line
    ]


def audited_reads(bus: RecordingTcti) -> list[Exchange]:
    """The PCR_Read commands sent with one session, whose attributes say AUDIT."""
    found = []
    for exchange in bus.exchanges:
        command = exchange.command
        if exchange.code != CC_PCR_READ or HEADER.unpack_from(command)[0] != TPM_ST_SESSIONS:
            continue
        # no handles: authorizationSize, session handle, nonceCaller, attributes
        (nonce_size,) = struct.unpack_from(">H", command, HEADER.size + 8)
        if command[HEADER.size + 10 + nonce_size] & TPMA_SESSION_AUDIT:
            found.append(exchange)
    return found


ALL_BANKS = "sha1,sha256,sha384,sha512"  # what swtpm allocates


# -- the TPM itself ----------------------------------------------------------------------


def test_a_pinned_handover_reads_pcr4_back_authenticated(
    tpm: Tpm, client: Open, secrets: SecretDir, scratch_log: Path
) -> None:
    runtime_tpm, bus = client(real_name(tpm))
    done = finalize.prepare_handover(runtime_tpm, secrets)
    assert done[0] == 'Extended PCR 4 with "generic"'
    assert pcr4(tpm) == {bank: chain(bank, "generic") for bank in Bank}
    assert readback_lines(scratch_log) == [f"pcr4-readback result=authenticated banks={ALL_BANKS}"]
    # before and after, each in an audit session whose answer carries an HMAC
    reads = audited_reads(bus)
    assert len(reads) == 2
    assert all(HEADER.unpack_from(r.response)[0] == TPM_ST_SESSIONS for r in reads)
    assert "Locked the TPM platform hierarchy with a random authorization" in done


def test_an_unpinned_handover_says_the_read_back_is_unauthenticated(
    tpm: Tpm, client: Open, secrets: SecretDir, scratch_log: Path
) -> None:
    runtime_tpm, bus = client(None)
    finalize.prepare_handover(runtime_tpm, secrets, unsafe=True)
    assert pcr4(tpm)[Bank.SHA256] == chain(Bank.SHA256, "unsafe", "generic")
    assert readback_lines(scratch_log) == [
        f"pcr4-readback result=unauthenticated banks={ALL_BANKS} why=storage-key-not-pinned"
    ]
    assert len(audited_reads(bus)) == 2


def test_without_a_storage_key_the_read_back_is_skipped_and_logged(
    bare_tpm: Tpm, secrets: SecretDir, scratch_log: Path
) -> None:
    done = finalize.prepare_handover(bare_tpm, secrets)
    assert done[0] == 'Extended PCR 4 with "generic"'
    assert pcr4(bare_tpm)[Bank.SHA256] == chain(Bank.SHA256, "generic")
    assert readback_lines(scratch_log) == ["pcr4-readback result=skipped why=no-storage-key"]


def test_the_audited_read_takes_several_answers_for_many_values(tpm: Tpm) -> None:
    # 48 values: the TPM answers at most 8 per PCR_Read
    pcrs.extend_string(tpm, 7, "something")
    session = tpm.audit_session()
    try:
        values = pcrs.read_audited(tpm, session, range(24), [Bank.SHA1, Bank.SHA256])
    finally:
        tpm.esapi.flush_context(session)
    assert values == {
        bank: pcrs.read_pcrs(tpm, range(24), bank) for bank in (Bank.SHA1, Bank.SHA256)
    }
    assert values[Bank.SHA256][7] == chain(Bank.SHA256, "something")


# -- a device on the bus ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pinned", "unsafe"),
    [(True, False), (True, True), (False, False)],
    ids=["pinned", "pinned-unsafe", "unpinned"],
)
def test_a_swallowed_extend_is_refused(
    tpm: Tpm, client: Open, secrets: SecretDir, pinned: bool, unsafe: bool
) -> None:
    runtime_tpm, bus = client(real_name(tpm) if pinned else None, Swallower)
    assert isinstance(bus, Swallower)
    bus.swallow = frozenset({finalize.VERIFIED_MARKER})  # "unsafe" passes, "generic" not
    with pytest.raises(Pcr4NotExtended) as refused:
        finalize.prepare_handover(runtime_tpm, secrets, unsafe=unsafe)
    assert refused.value.plain() == REFUSAL
    assert len(bus.swallowed) == 1  # the interposer did swallow it, and said success
    held = chain(Bank.SHA256, "unsafe") if unsafe else bytes(32)
    assert pcr4(tpm)[Bank.SHA256] == held
    assert f"is {held.hex()}, expected " in refused.value.message
    # nothing after the extend ran
    assert platform_open(tpm)
    assert (Path(secrets.path) / "luks_key").exists()


def test_a_forged_pcr_read_answer_is_refused(tpm: Tpm, client: Open, secrets: SecretDir) -> None:
    runtime_tpm, bus = client(real_name(tpm), Forger)
    assert isinstance(bus, Forger)
    bus.swallow = frozenset({finalize.VERIFIED_MARKER})
    with pytest.raises(Pcr4NotExtended) as refused:
        finalize.prepare_handover(runtime_tpm, secrets)
    assert refused.value.plain() == REFUSAL
    assert refused.value.rc == ESYS_RSP_AUTH_FAILED  # ESAPI's HMAC check caught it
    assert pcr4(tpm)[Bank.SHA256] == bytes(32)  # the real PCR 4: never extended
    assert platform_open(tpm)
    assert (Path(secrets.path) / "luks_key").exists()
    # control: read without the audit session, the forgery passes for the TPM's
    unaudited, forger = client(None, Forger)
    assert isinstance(forger, Forger)
    forger.swallowed = list(bus.swallowed)
    assert pcrs.read_pcrs(unaudited, [4])[4] == chain(Bank.SHA256, "generic")


def test_a_hidden_sha256_bank_is_still_read_back(
    tpm: Tpm, client: Open, secrets: SecretDir
) -> None:
    # The bank list is unauthenticated: told SHA-256 is not there, the runtime
    # extends the other banks only. SHA-256, the sealing bank, is read anyway.
    runtime_tpm, _ = client(real_name(tpm), BankHider)
    with pytest.raises(Pcr4NotExtended) as refused:
        finalize.prepare_handover(runtime_tpm, secrets)
    assert "(sha256)" in refused.value.message
    values = pcr4(tpm)
    assert values[Bank.SHA256] == bytes(32)
    assert values[Bank.SHA1] == chain(Bank.SHA1, "generic")


def test_a_refused_audit_session_stops_a_pinned_handover(
    tpm: Tpm, client: Open, secrets: SecretDir, scratch_log: Path
) -> None:
    # With the pin, refusing the session could be the interposer dodging the check.
    runtime_tpm, bus = client(real_name(tpm), SessionRefuser)
    assert isinstance(bus, SessionRefuser)
    bus.refusals = 1
    with pytest.raises(Pcr4NotExtended) as refused:
        finalize.prepare_handover(runtime_tpm, secrets)
    assert refused.value.plain() == REFUSAL
    assert pcr4(tpm)[Bank.SHA256] == bytes(32)  # stopped before the extend
    assert (Path(secrets.path) / "luks_key").exists()
    assert readback_lines(scratch_log) == []


def test_a_refused_audit_session_is_logged_without_a_pin(
    tpm: Tpm, client: Open, secrets: SecretDir, scratch_log: Path
) -> None:
    # Without a pin nothing is authenticated anyway (the interposer can salt
    # with its own key): the boot goes on and the log says the check was skipped.
    runtime_tpm, bus = client(None, SessionRefuser)
    assert isinstance(bus, SessionRefuser)
    bus.refusals = 1
    done = finalize.prepare_handover(runtime_tpm, secrets)
    assert "Locked the TPM platform hierarchy with a random authorization" in done
    assert pcr4(tpm)[Bank.SHA256] == chain(Bank.SHA256, "generic")
    assert readback_lines(scratch_log) == ["pcr4-readback result=skipped why=no-audit-session"]
