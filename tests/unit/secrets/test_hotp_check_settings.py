"""CONFIG_HOTPKEY and CONFIG_HOTP_TOKEN choose the HOTP token the boot asks,
or none at all."""

from __future__ import annotations

import pytest

from runtime.config import Settings
from runtime.secrets.hotp.nitrokey import NitrokeyToken
from runtime.secrets.hotp.serial_token import SerialToken
from runtime.secrets.hotp_check import configured_token


@pytest.mark.parametrize("token", ["auto", "none", "serial:/dev/ttyS1"])
def test_without_hotpkey_there_is_no_hotp_check(token: str) -> None:
    assert configured_token(Settings({"CONFIG_HOTPKEY": "n", "CONFIG_HOTP_TOKEN": token})) is None


def test_hotpkey_with_no_token_named_checks_nothing() -> None:
    assert configured_token(Settings({"CONFIG_HOTPKEY": "y", "CONFIG_HOTP_TOKEN": "none"})) is None


def test_hotpkey_auto_looks_for_a_usb_dongle() -> None:
    token = configured_token(Settings({"CONFIG_HOTPKEY": "y", "CONFIG_HOTP_TOKEN": "auto"}))
    assert isinstance(token, NitrokeyToken)


def test_hotpkey_serial_asks_the_software_token_on_that_line() -> None:
    token = configured_token(
        Settings({"CONFIG_HOTPKEY": "y", "CONFIG_HOTP_TOKEN": "serial:/dev/ttyS1"})
    )
    assert isinstance(token, SerialToken)
