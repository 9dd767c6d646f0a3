"""CONFIG_TPM_PRIMARY_NAME (issue 27, finding 3): the setting's value type, the
TPM Name recomputed from a public area, and the check of ESAPI's record of
the storage key against the Name the TPM gave and the pin."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from tpm2_pytss.constants import TPM2_ALG
from tpm2_pytss.types import TPM2B_PUBLIC, TPMT_PUBLIC

from runtime.config import SCHEMA, Layer, Settings, load_settings
from runtime.config.config_file import format_assignment
from runtime.config.settings import UNMATCHABLE_NAME
from runtime.config.value_types import TpmName
from runtime.tpm import handles
from runtime.tpm.connection import checked_primary_name, key_record, object_name
from runtime.tpm.errors import TpmIdentityChanged
from runtime.tpm.templates import PRIMARY_ATTRIBUTES, primary_template, sealed_template

KEY = "CONFIG_TPM_PRIMARY_NAME"
NAME = "000b" + "0123456789abcdef" * 4

# -- the value type -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("", None),
        (NAME, bytes.fromhex(NAME)),
        (NAME.upper(), bytes.fromhex(NAME)),  # as some tools print it
    ],
)
def test_accepted_names(text: str, value: bytes | None) -> None:
    assert TpmName("not pinned").parse(text) == value


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (NAME[4:], "not 68 hex digits"),  # the bare digest, without 000b
        (NAME + "00", "not 68 hex digits"),
        (NAME[:-1], "not 68 hex digits"),
        ("0x" + NAME[2:], "not all hex digits"),
        (NAME[:-1] + "g", "not all hex digits"),
        (NAME[:-1] + "٠", "not all hex digits"),  # a digit, but not an ASCII one
        (NAME[:-2] + " 0", "not all hex digits"),
        ("000c" + NAME[4:], "not 000b"),  # a SHA-384 name algorithm, SHA-256 length
        ("0004" + NAME[4:], "not 000b"),
    ],
)
def test_refused_names(text: str, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        TpmName("not pinned").parse(text)


def test_shown_as_hex_or_as_not_pinned() -> None:
    kind = TpmName("not pinned")
    assert kind.show(None) == "not pinned"
    assert kind.show(bytes.fromhex(NAME)) == NAME
    assert "68 hex digits" in kind.expects


def test_the_setting_is_unset_by_default_and_typed() -> None:
    assert SCHEMA[KEY].default == ""
    assert Settings().tpm_primary_name is None
    pin: bytes | None = Settings({KEY: NAME}).tpm_primary_name
    assert pin == bytes.fromhex(NAME)


def test_a_bad_pin_in_a_file_is_reported_and_pins_to_no_key(tmp_path: Path) -> None:
    user = tmp_path / "config.user"
    user.write_text(format_assignment(KEY, NAME[4:]) + "\n")
    loaded = load_settings([Layer("your settings", str(user))])
    [problem] = loaded.problems
    assert problem.key == KEY and "68 hex digits" in problem.message
    assert loaded.settings.tpm_primary_name is None
    # the owner meant to pin: a typo must not turn the check off
    assert loaded.primary_name_pin() == UNMATCHABLE_NAME
    user.write_text(format_assignment(KEY, NAME) + "\n")
    again = load_settings([Layer("your settings", str(user))])
    assert again.primary_name_pin() == again.settings.tpm_primary_name == bytes.fromhex(NAME)
    user.write_text("")
    assert load_settings([Layer("your settings", str(user))]).primary_name_pin() is None


# -- the Name of a public area ------------------------------------------------------------


def _publics() -> list[TPMT_PUBLIC]:
    rsa = TPM2B_PUBLIC.parse("rsa2048:aes128cfb", objectAttributes=PRIMARY_ATTRIBUTES)
    ecc = primary_template()
    ecc.publicArea.unique.ecc.x = b"x" * 32
    ecc.publicArea.unique.ecc.y = b"y" * 32
    found = [
        primary_template().publicArea,
        ecc.publicArea,
        rsa.publicArea,
        sealed_template(b"\x01" * 32).publicArea,
    ]
    for alg in (TPM2_ALG.SHA1, TPM2_ALG.SHA384, TPM2_ALG.SHA512):
        other = primary_template()
        other.publicArea.nameAlg = alg
        found.append(other.publicArea)
    return found


@pytest.mark.parametrize("public", _publics())
def test_the_name_is_tpm2_pytss_own(public: TPMT_PUBLIC) -> None:
    assert object_name(public.marshal()) == bytes(public.get_name())


def test_an_unknown_name_algorithm_is_refused() -> None:
    public = primary_template().publicArea
    public.nameAlg = TPM2_ALG.SM3_256
    with pytest.raises(ValueError, match="unknown name algorithm"):
        object_name(public.marshal())
    with pytest.raises(ValueError, match="too short"):
        object_name(b"\x00#\x00")


# -- ESAPI's record of the storage key: the public area, the answered Name, the pin -----


def _public() -> bytes:
    public = primary_template()
    public.publicArea.unique.ecc.x = b"\x11" * 32
    public.publicArea.unique.ecc.y = b"\x22" * 32
    return bytes(public.publicArea.marshal())


def record(
    public: bytes, name: bytes | None = None, handle: int = handles.PRIMARY_KEY, kind: int = 1
) -> bytes:
    """A serialized ESYS_TR of a key: handle, TPM2B_NAME, resource type, TPM2B_PUBLIC."""
    name = object_name(public) if name is None else name
    return (
        struct.pack(">IH", handle, len(name))
        + name
        + struct.pack(">IH", kind, len(public))
        + public
    )


def test_a_consistent_record_gives_its_name_with_or_without_the_matching_pin() -> None:
    public = _public()
    name = object_name(public)
    assert key_record(record(public)) == (handles.PRIMARY_KEY, name, public)
    assert checked_primary_name(record(public), None) == name
    assert checked_primary_name(record(public), name) == name


def test_another_key_than_the_pinned_one_is_refused() -> None:
    public = _public()
    pin = bytes.fromhex(NAME)
    with pytest.raises(TpmIdentityChanged) as info:
        checked_primary_name(record(public), pin)
    assert NAME in info.value.message and object_name(public).hex() in info.value.message
    assert info.value.plain().startswith("TPM identity changed. ")


def test_the_answered_name_is_never_trusted() -> None:
    # a record whose Name field says the pin while its public area is another key's
    public = _public()
    pin = bytes.fromhex(NAME)
    with pytest.raises(TpmIdentityChanged, match="answered Name"):
        checked_primary_name(record(public, name=pin), pin)
    with pytest.raises(TpmIdentityChanged, match="answered Name"):
        checked_primary_name(record(public, name=pin), None)


def _size_field_short_by_one() -> bytes:
    """A record whose TPM2B_PUBLIC size leaves a byte over, with a Name that the
    whole rest (that byte included) would have: only the size tells."""
    area = _public() + b"\x00"
    name = object_name(area)
    return (
        struct.pack(">IH", handles.PRIMARY_KEY, len(name))
        + name
        + struct.pack(">IH", 1, len(area) - 1)
        + area
    )


@pytest.mark.parametrize(
    "damaged",
    [
        _size_field_short_by_one(),
        record(_public(), handle=handles.TOTP_SECRET),
        record(_public(), kind=2),  # an NV index's record
        record(_public())[:-1],
        record(_public()) + b"\x00",
        record(_public())[:8],
        b"",
    ],
)
def test_a_record_that_is_not_the_storage_keys_is_refused(damaged: bytes) -> None:
    with pytest.raises(TpmIdentityChanged):
        checked_primary_name(damaged, None)
