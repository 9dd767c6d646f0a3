"""What a probe on the TPM bus sees (issue 27): no passphrase, enrolled secret
or unsealed byte crosses it in clear.

The runtime's ``Tpm`` is given an ESAPI context on a recording TCTI
(tests/tpm/recording_tcti.py) that forwards to the real swtpm and keeps every
command and response byte. The real flows then run: taking ownership,
checking the owner passphrase (right and mistyped), sealing and unsealing
with a passphrase (as a blob and as a persistent object), the owner
passphrase on NV indexes, a reset through the lockout hierarchy, and the
TOTP/HOTP enrolment (generate_and_seal, with the software HOTP token) and
its unseals (unseal_totp, unseal_key, verify_hotp). Every recorded byte is
then searched for each value, raw and in its usual encodings.

So that none of this can pass by recording or finding nothing:

* canaries: values that do cross in clear (a PCR extend's digest in a
  command, a public NV index read in a password session in a response) are
  found where they should be;
* negative controls: the same flows with parameter encryption removed from
  the runtime's sessions (the rule these checks stand for) leak each value,
  and the scanner names the command; the same passphrase and secret sent
  by hand in password and unsalted sessions are caught too.

Also checked: every session the runtime starts is salted (its parameter
encryption key derives from a salt only the TPM can decrypt; an unsalted,
unbound session's key follows from the nonces on the bus).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from tpm2_pytss import ESAPI
from tpm2_pytss.constants import ESYS_TR, TPM2_ALG, TPM2_SE, TPMA_SESSION
from tpm2_pytss.types import (
    TPM2B_NV_PUBLIC,
    TPM2B_SENSITIVE_CREATE,
    TPMS_NV_PUBLIC,
    TPMS_SENSITIVE_CREATE,
    TPMT_SYM_DEF,
)

from runtime.secrets.enrol import generate_and_seal
from runtime.secrets.hotp_check import verify_hotp
from runtime.secrets.totp import PERIOD, RamOtpKey, hotp_code, totp_code, unseal_key, unseal_totp
from runtime.state.platform import HotpCheck
from runtime.tpm import handles, nv, sealing
from runtime.tpm.connection import TctiSpec, Tpm
from runtime.tpm.errors import WrongOwnerPassphrase
from runtime.tpm.nv_attrs import NvAttr
from runtime.tpm.ownership import (
    check_owner_passphrase,
    clear_needs_lockout_passphrase,
    clear_tpm,
    reset_tpm,
    take_ownership,
)
from runtime.tpm.pcr_math import Bank
from runtime.tpm.pcrs import extend, read_pcrs, selection
from runtime.tpm.policy_math import pcr_policy
from runtime.tpm.templates import sealed_template
from tests.support.board import TEST_BOARD as BOARD
from tests.support.token_pty import PtySettings, TokenPty
from tests.tpm.recording_tcti import (
    COMMAND,
    RESPONSE,
    Exchange,
    Hit,
    RecordingTcti,
    report,
    scan,
    session_starts,
    wire_forms,
)
from tools.soft_token import DEFAULT_ADMIN_PIN, SoftToken, TokenState
from tools.swtpm import Swtpm

pytestmark = pytest.mark.tpm

OWNER_PW = b"wire-owner-Passphrase-27"
TYPO_PW = b"wire-owner-Passphrase-72"
LOCKOUT_PW = b"wire-lockout-Passphrase-27"
NEW_OWNER_PW = b"wire-new-owner-Pass-27"
NEW_LOCKOUT_PW = b"wire-new-lockout-Pass-27"
SEAL_PW = b"wire-seal-Passphrase-27"
SEAL_SECRET = hashlib.sha256(b"issue 27: a secret sealed with a passphrase").digest()
PIN = DEFAULT_ADMIN_PIN.encode()  # the software token's admin PIN
SEAL_PCRS = (0, 7)
CANARY_INDEX = 0x01500027
CANARY = b"issue 27 canary: public NV data, read in clear"

#: the command names the recorder gives (tpm2-pytss's TPM2_CC names)
CREATE, UNSEAL, CHANGE_AUTH = "TPM2_create", "TPM2_unseal", "TPM2_hierarchychangeauth"
POLICY_SECRET, NV_READ, NV_WRITE = "TPM2_policysecret", "TPM2_nv_read", "TPM2_nv_write"
PCR_EXTEND = "TPM2_pcr_extend"


# -- the recorded TPM and the software HOTP token ------------------------------------


@dataclass
class Bus:
    """The runtime's Tpm on a recording TCTI."""

    tpm: Tpm
    tcti: RecordingTcti

    @property
    def exchanges(self) -> list[Exchange]:
        return self.tcti.exchanges

    def hits(self, needles: dict[str, bytes], since: int = 0) -> list[Hit]:
        return scan(self.exchanges[since:], needles, first=since)

    def command_names(self) -> set[str]:
        return {exchange.name for exchange in self.exchanges}


@pytest.fixture
def bus(swtpm: Swtpm, monkeypatch: pytest.MonkeyPatch) -> Iterator[Bus]:
    """A powered-on, cleared swtpm, driven through the recorder (as conftest's
    ``bare_tpm``, with ``Tpm(ESAPI(recorder), ...)`` instead of Tpm.connect)."""
    if "TSS2_LOG" not in os.environ:  # as Tpm.connect: libtss2 keeps quiet
        monkeypatch.setenv("TSS2_LOG", "all+NONE")
    swtpm.power_cycle()
    tcti = RecordingTcti(swtpm.tcti)
    try:
        tpm = Tpm(ESAPI(tcti), TctiSpec.parse(swtpm.tcti))
    except BaseException:
        tcti.close()
        raise
    try:
        tpm.startup()
        clear_tpm(tpm)
        yield Bus(tpm, tcti)
    finally:
        tpm.close()
        tcti.close()


@pytest.fixture
def token() -> Iterator[PtySettings]:
    """The software HOTP token on a pty, and settings naming it."""
    with TokenPty(SoftToken(state=TokenState()).serve) as line:
        yield PtySettings(line.path)


def _found(hits: list[Hit]) -> set[tuple[str, str, str]]:
    """(value name, command, direction) of each hit, the encoding left out."""
    return {(hit.label.split(" (")[0], hit.command, hit.direction) for hit in hits}


def _assert_all_sessions_salted(bus: Bus) -> None:
    starts = session_starts(bus.exchanges)
    assert starts, "no TPM2_StartAuthSession was recorded"
    unsalted = [s for s in starts if not s.salted]
    assert not unsalted, f"sessions started without a salt: {unsalted}"


# -- the flows ---------------------------------------------------------------------


def _close_platform_hierarchy(tpm: Tpm) -> None:
    """Give the platform hierarchy a random authorization, as OVMF does, so
    that clearing takes the lockout passphrase (swtpm leaves it empty). The
    next power cycle and TPM2_Startup(CLEAR) empty it again."""
    tpm.esapi.tr_set_auth(ESYS_TR.PLATFORM, b"")
    tpm.esapi.hierarchy_change_auth(ESYS_TR.PLATFORM, os.urandom(32), session1=tpm.hmac_session())


def ownership_flow(tpm: Tpm) -> dict[str, bytes]:
    """Every use of the owner, lockout and seal passphrases the runtime makes;
    the needles to search for."""
    take_ownership(tpm, OWNER_PW, LOCKOUT_PW)
    check_owner_passphrase(tpm, OWNER_PW)
    with pytest.raises(WrongOwnerPassphrase):
        check_owner_passphrase(tpm, TYPO_PW)  # a typo is as secret as the passphrase

    sealed = sealing.seal(tpm, SEAL_SECRET, SEAL_PCRS, passphrase=SEAL_PW)
    unsealed = sealing.unseal(tpm, sealed, SEAL_PW)
    sealing.store_persistent(tpm, sealed, handles.DISK_UNLOCK_KEY, OWNER_PW)
    persistent = sealing.unseal_persistent(tpm, handles.DISK_UNLOCK_KEY, SEAL_PCRS, SEAL_PW)
    assert bytes(unsealed) == bytes(persistent) == SEAL_SECRET

    # the owner passphrase on NV: define, write and read with it, undefine
    nv.store_sealed(tpm, sealed, handles.TOTP_SEALED_NV, OWNER_PW)
    assert nv.read(tpm, handles.TOTP_SEALED_NV, 2, owner_auth=OWNER_PW) != b"\0\0"
    nv.undefine(tpm, handles.TOTP_SEALED_NV, OWNER_PW)

    # a reset as on a board whose firmware keeps the platform hierarchy
    _close_platform_hierarchy(tpm)
    assert clear_needs_lockout_passphrase(tpm)
    assert reset_tpm(tpm, NEW_OWNER_PW, LOCKOUT_PW, NEW_LOCKOUT_PW) == "lockout"
    check_owner_passphrase(tpm, NEW_OWNER_PW)

    needles: dict[str, bytes] = {}
    for name, value in (
        ("owner passphrase", OWNER_PW),
        ("mistyped owner passphrase", TYPO_PW),
        ("lockout passphrase", LOCKOUT_PW),
        ("new owner passphrase", NEW_OWNER_PW),
        ("new lockout passphrase", NEW_LOCKOUT_PW),
        ("seal passphrase", SEAL_PW),
    ):
        needles |= wire_forms(name, value, digests=True)
    needles |= wire_forms("sealed secret", SEAL_SECRET)
    needles |= wire_forms("unsealed bytes", bytes(unsealed))
    return needles


@dataclass(frozen=True)
class Enrolled:
    secret: bytes  # as generate_and_seal gave it (what the enrolment screen shows)
    unsealed: list[bytes]  # each secret sealing.unseal gave back afterwards
    needles: dict[str, bytes]


def enrol_flow(tpm: Tpm, settings: PtySettings, monkeypatch: pytest.MonkeyPatch) -> Enrolled:
    """Enrol a TOTP/HOTP secret (the HOTP token programmed), then unseal it as
    the boot does: TOTP code, HOTP check; the unsealed bytes are taken as
    sealing.unseal returns them."""
    unsealed: list[bytes] = []
    real_unseal = sealing.unseal

    def recording_unseal(
        tpm: Tpm, sealed: sealing.SealedSecret, passphrase: bytes | None = None
    ) -> bytearray:
        data = real_unseal(tpm, sealed, passphrase)
        unsealed.append(bytes(data))
        return data

    monkeypatch.setattr(sealing, "unseal", recording_unseal)
    take_ownership(tpm, OWNER_PW)
    enrolled = generate_and_seal(
        tpm, BOARD, read_pcrs(tpm, [4]), bytearray(OWNER_PW), bytearray(PIN), settings
    )
    assert enrolled.secret is not None, enrolled.problem
    secret = bytes(enrolled.secret)
    assert "accepted" in enrolled.hotp_message or "programmed" in enrolled.hotp_message

    result = unseal_totp(tpm, BOARD.runtime_pcr)
    assert result.code == totp_code(secret, result.step * PERIOD), result.message
    key = unseal_key(tpm, BOARD.runtime_pcr)
    assert isinstance(key, RamOtpKey), key
    with key:
        assert key.hotp(5) == hotp_code(secret, 5)
    hotp = verify_hotp(tpm, BOARD.runtime_pcr, settings)
    assert hotp.outcome is HotpCheck.SUCCESS, hotp.message
    assert len(unsealed) == 3 and set(unsealed) == {secret}

    needles = wire_forms("TOTP secret", secret) | wire_forms(
        "owner passphrase", OWNER_PW, digests=True
    )
    needles |= wire_forms("HOTP admin PIN", PIN)
    for number, data in enumerate(unsealed):
        needles |= wire_forms(f"unsealed bytes #{number}", data)
    return Enrolled(secret, unsealed, needles)


# -- the scanner finds what is there ---------------------------------------------


def test_the_scanner_finds_each_encoding_and_says_where() -> None:
    value = b"passphrase"
    exchanges = [
        Exchange(b"\x80\x01\0\0\0\x10\0\0\x01\x44" + form + b"tail", b"\x80\x01")
        for form in wire_forms("v", value, digests=True).values()
    ]
    hits = scan(exchanges, wire_forms("v", value, digests=True))
    assert {hit.index for hit in hits} == set(range(len(exchanges)))
    assert all(hit.direction == COMMAND and hit.offset == 10 for hit in hits)
    assert hits[0].command == "TPM2_startup" and "[" + value.hex() + "]" in hits[0].context
    assert not scan(exchanges, wire_forms("w", b"another value"))
    with pytest.raises(ValueError, match="too few"):
        wire_forms("short", b"1234567")


def test_canaries_sent_in_clear_are_found_in_commands_and_responses(bus: Bus) -> None:
    tpm = bus.tpm
    take_ownership(tpm, OWNER_PW)
    # every command and response recorded whole (the size in each header is its length)
    assert CHANGE_AUTH in bus.command_names()
    assert all(
        int.from_bytes(part[2:6], "big") == len(part)
        for e in bus.exchanges
        for part in (e.command, e.response)
    )

    # A command parameter never encrypted: the digest PCR_Extend carries.
    measurement = extend(tpm, 16, b"issue 27 canary measurement", "canary")
    digest = measurement.digests[Bank.SHA256]
    hits = bus.hits({"extend digest": digest})
    assert _found(hits) == {("extend digest", PCR_EXTEND, COMMAND)}, report(hits)

    # A response parameter in clear: a public index read with an empty
    # authorization (nv.read uses a password session then). Its write, with
    # the owner passphrase, went through the encrypting session: not seen.
    nv.define(
        tpm, CANARY_INDEX, len(CANARY), NvAttr.OWNERWRITE | NvAttr.AUTHREAD | NvAttr.NO_DA, OWNER_PW
    )
    mark = bus.tcti.mark()
    nv.write(tpm, CANARY_INDEX, CANARY, owner_auth=OWNER_PW)
    assert NV_WRITE in {e.name for e in bus.exchanges[mark:]}
    assert not bus.hits(wire_forms("canary", CANARY), since=mark)
    mark = bus.tcti.mark()
    assert nv.read(tpm, CANARY_INDEX) == CANARY
    hits = bus.hits(wire_forms("canary", CANARY), since=mark)
    assert _found(hits) == {("canary", NV_READ, RESPONSE)}, report(hits)
    assert not bus.hits(wire_forms("owner passphrase", OWNER_PW, digests=True))


# -- the rules ---------------------------------------------------------------------


def test_no_passphrase_crosses_the_bus_in_clear(bus: Bus) -> None:
    needles = ownership_flow(bus.tpm)
    # the flow really sent what the search is about
    assert {
        CHANGE_AUTH,
        POLICY_SECRET,
        CREATE,
        UNSEAL,
        NV_WRITE,
        NV_READ,
        "TPM2_clear",
        "TPM2_evictcontrol",
    } <= bus.command_names()
    hits = bus.hits(needles)
    assert not hits, "in clear on the TPM bus:\n" + report(hits)
    _assert_all_sessions_salted(bus)


def test_no_enrolled_secret_or_unsealed_byte_crosses_the_bus_in_clear(
    bus: Bus, token: PtySettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    enrolled = enrol_flow(bus.tpm, token, monkeypatch)
    assert {CREATE, UNSEAL, NV_WRITE, POLICY_SECRET} <= bus.command_names()
    hits = bus.hits(enrolled.needles)
    assert not hits, "in clear on the TPM bus:\n" + report(hits)
    _assert_all_sessions_salted(bus)


# -- negative controls: the checks fail without their rule ---------------------------


def _without_parameter_encryption(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remove the rule: the runtime's sessions stay salted but no longer
    encrypt command or response parameters."""
    real_start = Tpm._start_salted_session

    def start(self: Tpm, session_type: TPM2_SE, attributes: int) -> ESYS_TR:
        return real_start(self, session_type, TPMA_SESSION.CONTINUESESSION)

    monkeypatch.setattr(Tpm, "_start_salted_session", start)


def test_negative_control_passphrases_leak_without_parameter_encryption(
    bus: Bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    _without_parameter_encryption(monkeypatch)
    needles = ownership_flow(bus.tpm)
    found = _found(bus.hits(needles))
    for name in (
        "owner passphrase",
        "lockout passphrase",
        "new owner passphrase",
        "new lockout passphrase",
    ):
        assert (name, CHANGE_AUTH, COMMAND) in found, name
    assert ("seal passphrase", CREATE, COMMAND) in found
    assert ("sealed secret", CREATE, COMMAND) in found
    assert ("sealed secret", UNSEAL, RESPONSE) in found
    assert ("unsealed bytes", UNSEAL, RESPONSE) in found


def test_negative_control_the_secret_leaks_without_parameter_encryption(
    bus: Bus, token: PtySettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    _without_parameter_encryption(monkeypatch)
    enrolled = enrol_flow(bus.tpm, token, monkeypatch)
    found = _found(bus.hits(enrolled.needles))
    assert ("TOTP secret", CREATE, COMMAND) in found
    assert ("TOTP secret", UNSEAL, RESPONSE) in found
    for number in range(len(enrolled.unsealed)):
        assert (f"unsealed bytes #{number}", UNSEAL, RESPONSE) in found
    assert ("owner passphrase", CHANGE_AUTH, COMMAND) in found


def _unsalted_policy_session(tpm: Tpm) -> ESYS_TR:
    return tpm.esapi.start_auth_session(
        tpm_key=ESYS_TR.NONE,
        bind=ESYS_TR.NONE,
        session_type=TPM2_SE.POLICY,
        symmetric=TPMT_SYM_DEF(algorithm=TPM2_ALG.NULL),
        auth_hash=TPM2_ALG.SHA256,
    )


def test_negative_control_the_same_values_sent_in_password_sessions_are_caught(
    bus: Bus, token: PtySettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The enrolled secret, the owner passphrase and a seal passphrase, sent
    by hand as the runtime must not: password sessions, no parameter
    encryption, an unsalted session. Each is found in the command that sent it."""
    tpm = bus.tpm
    secret = enrol_flow(tpm, token, monkeypatch).secret
    assert not bus.hits(wire_forms("TOTP secret", secret))
    mark = bus.tcti.mark()

    # the owner passphrase as a password authorization (check_owner_passphrase
    # with ESYS_TR.PASSWORD in place of its HMAC session)
    checked = _unsalted_policy_session(tpm)
    tpm.esapi.tr_set_auth(ESYS_TR.OWNER, OWNER_PW)
    tpm.esapi.policy_secret(ESYS_TR.OWNER, checked, b"", b"", b"", 0, session1=ESYS_TR.PASSWORD)
    tpm.esapi.flush_context(checked)
    # ... and as a new authorization in clear, on an NV index it defines
    tpm.esapi.nv_define_space(
        OWNER_PW,
        TPM2B_NV_PUBLIC(
            nvPublic=TPMS_NV_PUBLIC(
                nvIndex=CANARY_INDEX,
                nameAlg=TPM2_ALG.SHA256,
                attributes=NvAttr.OWNERWRITE | NvAttr.AUTHREAD | NvAttr.NO_DA,
                dataSize=8,
            )
        ),
        session1=ESYS_TR.PASSWORD,
    )

    # the enrolled secret sealed (with a passphrase) in a password session...
    values = read_pcrs(tpm, SEAL_PCRS)
    policy = pcr_policy(Bank.SHA256, values, SEAL_PCRS, with_auth_value=True)
    private, public, _, _, _ = tpm.esapi.create(
        tpm.primary(),
        TPM2B_SENSITIVE_CREATE(sensitive=TPMS_SENSITIVE_CREATE(userAuth=SEAL_PW, data=secret)),
        sealed_template(policy),
        session1=ESYS_TR.PASSWORD,
    )
    # ...and unsealed in an unsalted policy session that does not encrypt
    obj = tpm.esapi.load(tpm.primary(), private, public, session1=ESYS_TR.PASSWORD)
    session = _unsalted_policy_session(tpm)
    tpm.esapi.policy_pcr(session, b"", selection(Bank.SHA256, SEAL_PCRS))
    tpm.esapi.policy_auth_value(session)
    tpm.esapi.tr_set_auth(obj, SEAL_PW)
    assert bytes(tpm.esapi.unseal(obj, session1=session)) == secret
    tpm.esapi.flush_context(obj)
    tpm.esapi.flush_context(session)

    needles = (
        wire_forms("TOTP secret", secret)
        | wire_forms("seal passphrase", SEAL_PW)
        | wire_forms("owner passphrase", OWNER_PW)
    )
    found = _found(bus.hits(needles, since=mark))
    assert found == {
        ("owner passphrase", POLICY_SECRET, COMMAND),
        ("owner passphrase", "TPM2_nv_definespace", COMMAND),
        ("TOTP secret", CREATE, COMMAND),
        ("seal passphrase", CREATE, COMMAND),
        ("TOTP secret", UNSEAL, RESPONSE),
    }, found
    unsalted = [s for s in session_starts(bus.exchanges) if not s.salted]
    assert len(unsalted) == 2 and all(s.index >= mark for s in unsalted)
    with pytest.raises(AssertionError, match="without a salt"):
        _assert_all_sessions_salted(bus)
