"""The pinned session salt key (issue 27, finding 3), on a real swtpm.

Sessions are salted with whatever key answers ReadPublic(0x81000000). A
device on the TPM bus can answer with a key of its own and read every
"encrypted" parameter, the unsealed secret included. With the Name of the
real storage key pinned (CONFIG_TPM_PRIMARY_NAME), no session is salted with
another key and nothing is loaded or unsealed: the stop comes after the one
ReadPublic, and the recording transport (tests/tpm/recording_tcti.py) shows
that nothing else crossed the bus.

What the interposer's answer looks like to the runtime is made two ways:
another key persisted at 0x81000000 (the real one evicted with the owner
passphrase), and, on top of that, an answer whose Name field is rewritten to
the pinned Name while the public area stays the other key's.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tpm2_pytss.constants import ESYS_TR
from tpm2_pytss.types import TPM2B_SENSITIVE_CREATE

from runtime import bootlog, error_detail
from runtime.config import LoadedSettings, Settings
from runtime.state.device_platform import DevicePlatform
from runtime.state.platform import StartFacts
from runtime.tpm import handles, sealing
from runtime.tpm.connection import TCTI_ENV, Tpm, key_record
from runtime.tpm.errors import PrimaryKeyMissing, TpmIdentityChanged
from runtime.tpm.ownership import take_ownership
from runtime.tpm.templates import primary_template
from tests.support.board import TEST_BOARD as BOARD
from tests.tpm.conftest import OWNER
from tests.tpm.recording_tcti import HEADER, RecordingTcti, runtime_tpms, session_starts
from tools.swtpm import Swtpm

pytestmark = pytest.mark.tpm

SECRET = b"issue 27 finding 3: the TOTP key"
PCRS = (0, 7)
READ_PUBLIC = "TPM2_readpublic"
CC_READ_PUBLIC = 0x173
#: a Name no TPM here has (the form is right: SHA-256)
STRANGER = bytes.fromhex("000b" + "5a" * 32)

Open = Callable[..., tuple[Tpm, RecordingTcti]]


class NameRewriter(RecordingTcti):
    """An interposer that answers ReadPublic(0x81000000) with the TPM's public
    area but ``name`` in the Name field (the public area's own Name is what a
    client must compute; the field is the sender's word)."""

    name = STRANGER

    def do_receive(self, timeout: int) -> bytes:
        command = self._pending
        response = super().do_receive(timeout)
        assert command is not None
        if (
            HEADER.unpack_from(command)[2] != CC_READ_PUBLIC
            or struct.unpack_from(">I", command, HEADER.size)[0] != handles.PRIMARY_KEY
        ):
            return response
        # outPublic (TPM2B), then name (TPM2B), then qualifiedName (TPM2B)
        (public_size,) = struct.unpack_from(">H", response, HEADER.size)
        name_at = HEADER.size + 2 + public_size
        (name_size,) = struct.unpack_from(">H", response, name_at)
        body = (
            response[HEADER.size : name_at]
            + struct.pack(">H", len(self.name))
            + self.name
            + response[name_at + 2 + name_size :]
        )
        tag = HEADER.unpack_from(response)[0]
        return HEADER.pack(tag, HEADER.size + len(body), 0) + body


@pytest.fixture
def wire(swtpm: Swtpm) -> Iterator[Open]:
    """Open the runtime's Tpm on a recording transport: ``wire(pin)``."""
    with runtime_tpms(swtpm.tcti) as open_:
        yield open_


def substitute_primary(tpm: Tpm) -> None:
    """Put another storage key at 0x81000000, as an interposer's answer looks to
    a client: evict the real one, persist a primary made from another template."""
    tpm.forget_primary()  # ESAPI keeps one record per handle: the Tpm's goes first
    esapi = tpm.esapi
    esapi.tr_set_auth(ESYS_TR.OWNER, OWNER)
    real = esapi.tr_from_tpmpublic(handles.PRIMARY_KEY)
    esapi.evict_control(ESYS_TR.OWNER, real, handles.PRIMARY_KEY, session1=ESYS_TR.PASSWORD)
    esapi.tr_close(real)
    template = primary_template()
    template.publicArea.unique.ecc.x = b"an interposer's own key"  # another key, same kind
    other, _, _, _, _ = esapi.create_primary(
        TPM2B_SENSITIVE_CREATE(), template, ESYS_TR.OWNER, session1=ESYS_TR.PASSWORD
    )
    try:
        esys = esapi.evict_control(
            ESYS_TR.OWNER, other, handles.PRIMARY_KEY, session1=ESYS_TR.PASSWORD
        )
        esapi.tr_close(esys)
    finally:
        esapi.flush_context(other)


def real_name(tpm: Tpm) -> bytes:
    """The storage key's Name as the TPM itself gives it (fixture's connection)."""
    _, name, _ = tpm.esapi.read_public(tpm.primary())
    return bytes(name)


# -- with the pin of the real key --------------------------------------------------


def test_the_pinned_real_key_seals_and_unseals(tpm: Tpm, swtpm: Swtpm) -> None:
    pin = real_name(tpm)
    assert tpm.primary_name() == pin.hex()  # recomputed, equal to the TPM's own
    tpm.flush_sessions()  # the swtpm holds three loaded sessions: leave room
    with Tpm.connect(swtpm.tcti, pinned_primary_name=pin) as pinned:
        assert pinned.identity_pinned
        pinned.check_identity()
        sealed = sealing.seal(pinned, SECRET, PCRS)
        assert bytes(sealing.unseal(pinned, sealed)) == SECRET
        assert pinned.primary_name() == pin.hex()


def test_the_checked_record_is_the_one_esapi_salts_with(tpm: Tpm) -> None:
    # the public area checked is the one in ESAPI's own record of the key
    public, name, _ = tpm.esapi.read_public(tpm.primary())
    handle, answered, area = key_record(bytes(tpm.esapi.tr_serialize(tpm.primary())))
    assert (handle, answered, area) == (
        handles.PRIMARY_KEY,
        bytes(name),
        public.publicArea.marshal(),
    )


# -- another key at 0x81000000 ------------------------------------------------------


def test_a_substituted_key_stops_before_any_session_load_or_unseal(tpm: Tpm, wire: Open) -> None:
    pin = real_name(tpm)
    substitute_primary(tpm)
    # Sealed under the key now at 0x81000000: without the pin it unseals, so a
    # refusal below is the pin's doing, not a blob that does not fit.
    sealed = sealing.seal(tpm, SECRET, PCRS)
    assert bytes(sealing.unseal(tpm, sealed)) == SECRET
    tpm.flush_sessions()

    client, bus = wire(pin)
    with pytest.raises(TpmIdentityChanged) as info:
        sealing.unseal(client, sealed)
    assert [e.name for e in bus.exchanges] == [READ_PUBLIC]  # no session, load or unseal
    assert info.value.plain().startswith("TPM identity changed.")
    assert "Nothing secret was sent" in info.value.plain()
    assert pin.hex() in info.value.message  # the log says which key was expected...
    with pytest.raises(TpmIdentityChanged):
        client.hmac_session()
    with pytest.raises(TpmIdentityChanged):
        client.check_identity()
    with pytest.raises(TpmIdentityChanged):
        client.primary_name()
    assert {e.name for e in bus.exchanges} == {READ_PUBLIC}


def test_a_name_field_that_is_not_the_public_areas_is_refused(tpm: Tpm, wire: Open) -> None:
    pin = real_name(tpm)
    substitute_primary(tpm)
    sealed = sealing.seal(tpm, SECRET, PCRS)
    tpm.flush_sessions()

    # the interposer says the pinned Name while handing over the other public area
    client, bus = wire(pin, NameRewriter)
    assert isinstance(bus, NameRewriter)
    bus.name = pin
    with pytest.raises(TpmIdentityChanged):
        sealing.unseal(client, sealed)
    assert {e.name for e in bus.exchanges} == {READ_PUBLIC}


def test_a_self_contradicting_answer_is_refused_without_a_pin_too(tpm: Tpm, wire: Open) -> None:
    tpm.flush_sessions()
    client, bus = wire(None, NameRewriter)  # says STRANGER
    with pytest.raises(TpmIdentityChanged):
        client.hmac_session()
    assert {e.name for e in bus.exchanges} == {READ_PUBLIC}


def test_a_pin_with_no_storage_key_refuses_the_throw_away_key(bare_tpm: Tpm, wire: Open) -> None:
    bare_tpm.flush_sessions()
    client, bus = wire(STRANGER)
    with pytest.raises(TpmIdentityChanged) as info:
        client.hmac_session()  # unpinned, this salts with a NULL-hierarchy key
    assert "TPM identity changed." in info.value.plain()
    with pytest.raises(TpmIdentityChanged):
        client.check_identity()
    # looked for the key, found none: no key was created, no session started
    assert {e.name for e in bus.exchanges} == {READ_PUBLIC}


def test_pinning_later_drops_what_was_salted_before(tpm: Tpm) -> None:
    tpm.hmac_session()  # salted with the key, unchecked against any pin
    tpm.pin_primary_name(STRANGER)
    assert tpm.identity_pinned
    with pytest.raises(TpmIdentityChanged):
        tpm.hmac_session()
    tpm.pin_primary_name(None)
    tpm.hmac_session()


# -- without a pin: as before ---------------------------------------------------------


def test_without_a_pin_sessions_are_salted_as_before(bare_tpm: Tpm, wire: Open) -> None:
    bare_tpm.flush_sessions()
    client, bus = wire(None)
    assert not client.identity_pinned
    client.check_identity()  # nothing to check
    with pytest.raises(PrimaryKeyMissing):
        client.primary_name()
    take_ownership(client, OWNER)  # salted with the throw-away key, as before
    sealed = sealing.seal(client, SECRET, PCRS)
    assert bytes(sealing.unseal(client, sealed)) == SECRET
    starts = session_starts(bus.exchanges)
    assert starts and all(start.salted for start in starts)
    # and any key will do: it cannot tell another one
    client.flush_sessions()
    substitute_primary(client)
    sealed = sealing.seal(client, SECRET, PCRS)
    assert bytes(sealing.unseal(client, sealed)) == SECRET


# -- the device platform: the pin from the settings, the refusal at start ----------


Device = Callable[[str], tuple[DevicePlatform, StartFacts]]


@pytest.fixture
def device(swtpm: Swtpm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Device]:
    """``device(pin_text)``: a DevicePlatform started on the swtpm with
    CONFIG_TPM_PRIMARY_NAME=pin_text in the owner's settings, and what it found."""
    from runtime.state import platform_start

    monkeypatch.setenv(TCTI_ENV, swtpm.tcti)
    monkeypatch.setattr(platform_start, "RUNTIME_JOURNAL", str(tmp_path / "journal.jsonl"))
    monkeypatch.setattr(bootlog, "LOG_PATH", str(tmp_path / "runtime.log"))
    monkeypatch.setattr(platform_start, "load_board", lambda: BOARD)
    started: list[DevicePlatform] = []

    def start(pin_text: str) -> tuple[DevicePlatform, StartFacts]:
        loaded = LoadedSettings(Settings({"CONFIG_TPM_PRIMARY_NAME": pin_text}), [], {})
        monkeypatch.setattr(platform_start, "load_settings", lambda: loaded)
        platform = DevicePlatform()
        started.append(platform)
        return platform, platform.start()

    yield start
    error_detail.forget()
    for platform in started:
        if platform.tpm is not None:
            platform.tpm.close()


def test_the_start_refuses_a_tpm_that_is_not_the_pinned_one(tpm: Tpm, device: Device) -> None:
    tpm.flush_sessions()
    platform, facts = device(STRANGER.hex())
    assert facts.tpm_problem.startswith("TPM identity changed.")
    assert platform.tpm is None  # treated as no TPM: nothing is unsealed, nothing asked
    assert any(line.startswith("TPM identity: CHANGED.") for line in platform.integrity_lines())
    assert STRANGER.hex() in error_detail.recent_details()[-1]  # the log has the detail


def test_the_start_with_the_right_pin_and_without_one(tpm: Tpm, device: Device) -> None:
    name = real_name(tpm).hex()
    tpm.flush_sessions()
    pinned, facts = device(name.upper())
    assert facts.tpm_problem == ""
    assert pinned.tpm is not None and pinned.tpm.identity_pinned
    assert "TPM identity: pinned" in "\n".join(pinned.integrity_lines())
    # a reset would make a key the pin refuses: refused before clearing
    refused = pinned.reset_tpm(bytearray(b"new owner passphrase"), bytearray(OWNER))
    assert "CONFIG_TPM_PRIMARY_NAME" in refused.problem and "Nothing was changed" in refused.problem
    assert pinned.tpm.primary_name() == name  # still the same key
    pinned.tpm.close()
    pinned.tpm = None

    unpinned, facts = device("")
    assert facts.tpm_problem == ""
    assert unpinned.tpm is not None and not unpinned.tpm.identity_pinned
    assert f"CONFIG_TPM_PRIMARY_NAME={name}" in unpinned.integrity_lines()
