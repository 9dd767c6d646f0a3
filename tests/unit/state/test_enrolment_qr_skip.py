"""CONFIG_TOTP_SKIP_QRCODE: a new TOTP secret is shown as text only, as in
Heads; without it, the QR page comes first."""

from __future__ import annotations

import pytest

from runtime.state.machine import State
from runtime.state.platform import StartFacts
from tests.fakes_platform import GOOD_CHECK, GOOD_TOTP, FakePlatform, failed_totp, run_machine
from tests.fakes_ui import power_off

QR_TITLE = "Scan this with your phone's authenticator app"


@pytest.mark.parametrize("skip", [False, True])
def test_the_qr_page_follows_the_setting(skip: bool) -> None:
    platform = FakePlatform(
        owned=False,
        totp_results=[failed_totp(), GOOD_TOTP],
        checks=[GOOD_CHECK],
        start_facts=StartFacts("Test board", "Brand", skip_qr_code=skip),
    )
    final, ui = run_machine(
        platform,
        [
            ("choose", "TOTP code cannot be shown", "g"),
            ("show", "no owner yet", None),
            ("choose", "Reset the TPM?", "y"),
            ("choose", "New TPM owner passphrase", "t"),
            ("ask", "Your own TPM owner passphrase", b"correct horse"),
            ("show", "The TPM was reset", None),
            ("choose", "Seal a new TOTP/HOTP secret?", "y"),
            *([] if skip else [("show", "Scan this", None)]),
            ("show", "TOTP secret", None),
            *power_off("boot menu"),
        ],
    )
    assert final is State.POWER_OFF
    assert (QR_TITLE in ui.titles()) is not skip
    secret_page = ui.texts()[ui.titles().index("TOTP secret")]
    assert "AEAQ CAIB AEAQ CAIB AEAQ CAIB AEAQ CAIB" in secret_page
