"""The rollback counter in the TPM, as signing and verifying use it.

Failures are CounterFailure: an OSError (the Counter protocol's error) whose
text is plain words for the screen; the TPM's own words (the operation, the
NV index, the response code) go to the log (runtime.error_detail)."""

from __future__ import annotations

from runtime.error_detail import plain
from runtime.integrity.verify_boot import CounterGone
from runtime.tpm import counters, nv
from runtime.tpm.connection import Tpm
from runtime.tpm.errors import TpmError


class CounterFailure(OSError):
    """The TPM counter failed; str() is what the screen says."""


def _failed(what: str, err: TpmError) -> CounterFailure:
    # CounterUnusable says itself what is wrong with the counter
    words = err.plain() if isinstance(err, counters.CounterUnusable) else f"{what} {err.plain()}"
    return CounterFailure(plain("rollback-counter", err, words))


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
            # read_counter reads nothing unless the index is exactly a counter
            return counters.read_counter(self.tpm, index)
        except TpmError as err:
            raise _failed("The TPM rollback counter cannot be read.", err) from err

    def owner_passphrase(self) -> bytes:
        """The TPM owner passphrase (a subclass may ask for it)."""
        if self.owner_auth is None:
            raise CounterFailure("Creating a rollback counter needs the TPM owner passphrase.")
        return self.owner_auth

    def is_rollback(self, index: int) -> bool:
        try:
            return index in counters.rollback_counters(self.tpm)
        except TpmError as err:
            raise _failed("The TPM's rollback counters cannot be listed.", err) from err

    def retire_others(self, index: int) -> None:
        """Only index stays a rollback counter (after a power cut between a
        counter's creation and its retiring, or one defined with the owner
        passphrase meanwhile); asks for the passphrase only when needed."""
        try:
            others = [i for i in counters.rollback_counters(self.tpm) if i != index]
            if others:
                counters.retire_counters(self.tpm, self.owner_passphrase(), keep=index)
        except TpmError as err:
            raise _failed("The old rollback counters could not be removed.", err) from err

    def create(self) -> int:
        owner_auth = self.owner_passphrase()
        try:
            index = counters.create_counter(self.tpm, owner_auth)
        except TpmError as err:
            raise _failed("A new rollback counter could not be created.", err) from err
        # Every other rollback counter goes now, while the owner passphrase is
        # at hand: left defined, an older signed /boot naming one (whose value
        # still matches) would verify again. A power cut after this and before
        # /boot's new state is written leaves /boot naming a counter that is
        # gone: verification says "TPM rollback counter missing" and offers to
        # sign again, which fails closed.
        try:
            counters.retire_counters(self.tpm, owner_auth, keep=index)
        except TpmError as err:
            raise CounterFailure(self._abandon(index, owner_auth, err)) from err
        return index

    def _abandon(self, index: int, owner_auth: bytes, err: TpmError) -> str:
        """Undefine the new counter after a failed retiring; the words to show."""
        words = plain("rollback-counter", err, err.plain())
        try:
            nv.undefine(self.tpm, index, owner_auth)
        except TpmError as again:
            # a never-used counter no /boot names; the next create retires it
            return plain(
                "rollback-counter",
                again,
                f"{words} The new rollback counter could not be removed either.",
            )
        return f"{words} No new rollback counter was made."

    def increment(self, index: int) -> int:
        try:
            return counters.increment_counter(self.tpm, index)
        except TpmError as err:
            raise _failed("The TPM rollback counter could not be incremented.", err) from err

    def value(self, index: int) -> int:
        """For verify_boot: the value, an error when it was never incremented."""
        value = self.read(index)
        if value is None:
            raise ValueError("the counter was never incremented")
        return value
