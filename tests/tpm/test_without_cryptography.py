"""The runtime's TPM work runs on a real swtpm with no `cryptography` package at
all, as in the image (which leaves it out: runtime/tpm/lazy_crypto.py).

A child interpreter refuses every `cryptography` import before anything is
imported, then does what the runtime does with the TPM: connect, reset and
take ownership, pin and check the storage key's identity, enrol (a TPM random
secret sealed to the board's PCRs, stored in NV, the HOTP token programmed),
unseal the TOTP secret and check the HOTP code (its NV counter), define, read
and increment a rollback counter, seal and unseal with a passphrase, extend
and read PCRs (an audited read too), read the dictionary-attack state, and
the hand-over (PCR 4, flushed contexts, locked platform, wiped secrets,
TPM2_Shutdown). It ends by listing the `cryptography` modules it holds: none.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import pytest

from tests.support.no_cryptography import run_without_cryptography
from tools.swtpm import Swtpm

pytestmark = pytest.mark.tpm

OWNER = b"owner passphrase"
PIN = b"12345678"
AT = 1_000_000.0  # one TOTP window, so the codes compare


def run_flows(tcti: str, scratch: str) -> list[str]:
    """The runtime's TPM operations, in the child; returns what each step found."""
    from runtime import bootlog
    from runtime.kexec import finalize
    from runtime.secrets.enrol import generate_and_seal
    from runtime.secrets.hotp_check import verify_hotp
    from runtime.secrets.totp import RamOtpKey, totp_code, unseal_key
    from runtime.state.platform import HotpCheck
    from runtime.tpm import counters, lazy_crypto, ownership, pcrs, power_state, sealing
    from runtime.tpm.connection import Tpm
    from runtime.tpm.errors import TpmIdentityChanged
    from tests.support.board import TEST_BOARD as BOARD
    from tests.support.secret_dir import ram_secret_dir
    from tests.support.token_pty import PtySettings, TokenPty
    from tools.soft_token import SoftToken, TokenState

    bootlog.LOG_PATH = f"{scratch}/runtime.log"
    done = []
    tpm = Tpm.connect(tcti)
    tpm.startup()
    done.append(f"reset through {ownership.reset_tpm(tpm, OWNER)}")

    name = bytes.fromhex(tpm.primary_name())
    tpm.pin_primary_name(b"\x00\x0b" + bytes(32))  # a key this TPM does not hold
    try:
        tpm.primary()
        raise AssertionError("a stranger's storage key was accepted")
    except TpmIdentityChanged:
        done.append("stranger refused")
    tpm.pin_primary_name(name)
    tpm.check_identity()
    done.append("identity pinned")

    with TokenPty(SoftToken(state=TokenState()).serve) as wire:
        settings = PtySettings(wire.path)
        firmware = pcrs.read_pcrs(tpm, [4])
        enrolled = generate_and_seal(
            tpm, BOARD, firmware, bytearray(OWNER), bytearray(PIN), settings
        )
        assert enrolled.secret is not None, enrolled.problem
        key = unseal_key(tpm, BOARD.runtime_pcr)
        assert isinstance(key, RamOtpKey), key
        with key:
            assert key.totp(AT) == totp_code(bytes(enrolled.secret), AT)
        done.append("TOTP unsealed")
        hotp = verify_hotp(tpm, BOARD.runtime_pcr, settings)
        assert hotp.outcome is HotpCheck.SUCCESS, hotp.message
        done.append("HOTP accepted")

    index = counters.create_counter(tpm, OWNER)
    counters.increment_counter(tpm, index)
    first = counters.read_counter(tpm, index)
    assert first is not None and counters.increment_counter(tpm, index) == first + 1
    assert counters.read_counter(tpm, index) == first + 1
    assert index in counters.rollback_counters(tpm)
    done.append("rollback counter")

    disk_key = sealing.seal(tpm, b"disk key", [0, 7], passphrase=b"disk passphrase")
    assert bytes(sealing.unseal(tpm, disk_key, b"disk passphrase")) == b"disk key"
    done.append("passphrase unseal")

    pcrs.extend_string(tpm, BOARD.modules_pcr, "a kernel module")
    banks = pcrs.active_banks(tpm)
    audited = pcrs.read_audited(tpm, tpm.audit_session(), range(8), banks)
    assert audited[banks[0]] == pcrs.read_pcrs(tpm, range(8), banks[0])
    done.append(f"DA: {ownership.da_state(tpm).describe()}")

    secrets = ram_secret_dir(Path(scratch))
    secrets.write("luks_key", b"k" * 64)
    done += finalize.prepare_handover(tpm, secrets)
    done.append(power_state.orderly_shutdown(tpm))
    tpm.close()

    held = sorted(m for m in sys.modules if m.partition(".")[0] == "cryptography")
    assert not held and not lazy_crypto.loaded(), held
    return done


def test_the_runtime_tpm_flows_run_without_cryptography(swtpm: Swtpm) -> None:
    swtpm.power_cycle()  # a fresh boot: PCRs reset, platform hierarchy open
    with tempfile.TemporaryDirectory(prefix="no-cryptography-") as scratch:
        done = run_without_cryptography(
            "import json\n"
            "from tests.tpm.test_without_cryptography import run_flows\n"
            f"print(json.dumps(run_flows({swtpm.tcti!r}, {scratch!r})))\n",
            timeout=240,
        )
    assert done.returncode == 0, done.stderr[-4000:]
    steps = json.loads(done.stdout.splitlines()[-1])
    for step in (
        "stranger refused",
        "identity pinned",
        "TOTP unsealed",
        "HOTP accepted",
        "rollback counter",
        "passphrase unseal",
    ):
        assert step in steps, steps
    assert any(s.startswith("Locked the TPM platform hierarchy") for s in steps), steps
