"""Fixtures for the TPM tier: one real swtpm per test process, reset for every test.

Each pytest-xdist worker starts its own swtpm (own temporary directory and
sockets). Before each test the TPM is power-cycled (PCRs back to their initial
values), started and cleared, so tests never see each other's state.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime.secrets.ram import SecretDir
from runtime.tpm.connection import Tpm
from runtime.tpm.ownership import clear_tpm, take_ownership
from tests.support.secret_dir import ram_secret_dir
from tools.swtpm import Swtpm

OWNER = b"owner passphrase"


@pytest.fixture(scope="session")
def swtpm() -> Iterator[Swtpm]:
    with Swtpm() as instance:
        yield instance


@pytest.fixture
def bare_tpm(swtpm: Swtpm) -> Iterator[Tpm]:
    """A freshly powered-on and cleared TPM with no owner and no storage key."""
    swtpm.power_cycle()
    tpm = Tpm.connect(swtpm.tcti)
    tpm.startup()
    clear_tpm(tpm)
    try:
        yield tpm
    finally:
        tpm.close()


@pytest.fixture
def tpm(bare_tpm: Tpm) -> Tpm:
    """A TPM owned with ``OWNER`` as owner and lockout passphrase."""
    take_ownership(bare_tpm, OWNER)
    return bare_tpm


@pytest.fixture
def secrets(tmp_path: Path) -> SecretDir:
    """A RAM secret directory (a tmpfs as far as it can tell) holding one secret."""
    store = ram_secret_dir(tmp_path)
    store.write("luks_key", b"k" * 64)
    return store


@pytest.fixture
def da_restored(swtpm: Swtpm) -> Iterator[None]:
    """After the test: a restart (which unblocks the lockout passphrase), a
    clear (which ends a lockout and zeroes the failure count) and the
    runtime's dictionary-attack policy, as the other TPM tests expect them."""
    from tpm2_pytss.constants import ESYS_TR

    from runtime.tpm import ownership

    yield
    swtpm.power_cycle()
    with Tpm.connect(swtpm.tcti) as tpm:
        tpm.startup()
        clear_tpm(tpm)
        tpm.esapi.tr_set_auth(ESYS_TR.LOCKOUT, b"")
        tpm.esapi.dictionary_attack_parameters(
            ownership.DA_MAX_TRIES,
            ownership.DA_RECOVERY_SECONDS,
            ownership.DA_LOCKOUT_RECOVERY_SECONDS,
            session1=tpm.hmac_session(),
        )
