"""The rollback counter in the TPM, as signing and verifying use it."""

from __future__ import annotations

from runtime.integrity.verify_boot import CounterGone
from runtime.tpm import counters, nv
from runtime.tpm.connection import Tpm
from runtime.tpm.errors import TpmError


class TpmCounter:
    def __init__(self, tpm: Tpm, owner_auth: bytes | None = None) -> None:
        self.tpm = tpm
        self.owner_auth = owner_auth  # needed only to create a counter

    def exists(self, index: int) -> bool:
        return nv.exists(self.tpm, index)

    def read(self, index: int) -> int | None:
        if not nv.exists(self.tpm, index):
            raise CounterGone(index)
        try:
            counters.check_counter(self.tpm, index)
            return counters.read_counter(self.tpm, index)
        except TpmError as err:
            raise OSError(str(err)) from err

    def create(self) -> int:
        if self.owner_auth is None:
            raise OSError("creating a rollback counter needs the TPM owner passphrase")
        try:
            return counters.create_counter(self.tpm, self.owner_auth)
        except TpmError as err:
            raise OSError(str(err)) from err

    def increment(self, index: int) -> int:
        try:
            return counters.increment_counter(self.tpm, index)
        except TpmError as err:
            raise OSError(str(err)) from err

    def value(self, index: int) -> int:
        """For verify_boot: the value, an error when it was never incremented."""
        value = self.read(index)
        if value is None:
            raise ValueError("the counter was never incremented")
        return value
