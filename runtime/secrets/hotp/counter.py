"""The computer's HOTP counter: the number the next code is made from.

Heads keeps it in a file on /boot that is not signed, so anyone with the disk
can set it back, and it is moved before the token is asked, so every boot
without the token pushes it further ahead until the token (which looks only
a few values ahead) refuses for good. Here the counter is a TPM NV monotonic
counter: the TPM only ever adds to it, and even a deleted and redefined
index starts above every value any counter in that TPM has had (TPM 2.0
Part 1, "NV Counters"). It is moved only after the token accepted a code
(verify.py), so boots without the token leave it alone.

The index is defined like the rollback counter (empty index passphrase): any
program on this machine may increment it. That can only push the computer
ahead of the token (the token then refuses: noticed, not a forgery); it can
never take the counter back to replay an old code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from runtime.tpm import handles

if TYPE_CHECKING:
    from runtime.tpm.connection import Tpm
    from runtime.tpm.counters import CounterUnusable
    from runtime.tpm.errors import TpmError

#: One advance never moves the TPM counter further than this: each step is an
#: NV write, and a larger jump can only come from a fault.
MAX_ADVANCE = 1024


class CounterStoreError(Exception):
    """The counter cannot be read or moved; ``message`` says why in plain words."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class CounterStore(Protocol):
    """Where the computer's HOTP counter lives."""

    def read(self) -> int:
        """The counter the next code is made from; CounterStoreError if unknown."""
        ...

    def advance_to(self, value: int) -> None:
        """Move the counter up to ``value``; CounterStoreError if that is backwards."""
        ...


def refuse_backwards(current: int, value: int) -> None:
    """The check every store makes before it moves."""
    if value < current:
        raise CounterStoreError(
            f"The HOTP counter cannot go back from {current} to {value}: refused."
        )


class TpmCounterStore:
    """CounterStore on a TPM NV counter (``handles.HOTP_COUNTER_NV``)."""

    def __init__(self, tpm: Tpm, index: int = handles.HOTP_COUNTER_NV) -> None:
        self._tpm = tpm
        self.index = index

    @classmethod
    def open_or_create(
        cls, tpm: Tpm, owner_auth: bytes | bytearray, index: int = handles.HOTP_COUNTER_NV
    ) -> TpmCounterStore:
        """The store, defining the counter first (owner passphrase) if the TPM
        has none; an existing proper counter is kept, never redefined."""
        from runtime.tpm import counters, nv
        from runtime.tpm.errors import TpmError

        try:
            if not nv.exists(tpm, index):
                counters.create_counter(tpm, bytes(owner_auth), index)
            # A new counter reads as "never written" until its first increment;
            # an index that is no counter of ours is refused unread.
            if counters.read_counter(tpm, index) is None:
                counters.increment_counter(tpm, index)
        except counters.CounterUnusable as err:
            raise _not_ours(err) from err
        except TpmError as err:
            raise CounterStoreError(
                _tpm_words("The HOTP counter could not be created", err)
            ) from err
        store = cls(tpm, index)
        store.read()  # refuses an index that is no proper counter
        return store

    def read(self) -> int:
        from runtime.tpm import counters
        from runtime.tpm.errors import NvIndexMissing, TpmError

        try:
            # Refused unread unless defined exactly as this runtime's counters:
            # whoever defined it otherwise could set it back or write it.
            value = counters.read_counter(self._tpm, self.index)
        except counters.CounterUnusable as err:
            raise _not_ours(err) from err
        except NvIndexMissing as err:
            _log(f"NV index 0x{self.index:08x} is not defined")
            raise CounterStoreError(
                "The TPM holds no HOTP counter: the token was never enrolled with this "
                "TPM, or the TPM was reset since. Generate a new TOTP/HOTP secret to enrol "
                "the token again."
            ) from err
        except TpmError as err:
            raise CounterStoreError(_tpm_words("The HOTP counter cannot be read", err)) from err
        if value is None:
            _log(f"NV index 0x{self.index:08x} was never incremented")
            raise CounterStoreError(
                "The HOTP counter was never started. Generate a new TOTP/HOTP secret to "
                "enrol the token again."
            )
        return value

    def advance_to(self, value: int) -> None:
        from runtime.tpm import counters
        from runtime.tpm.errors import TpmError

        current = self.read()
        refuse_backwards(current, value)
        if value - current > MAX_ADVANCE:
            raise CounterStoreError(
                f"The HOTP counter would jump by {value - current}: refused as a fault."
            )
        try:
            while current < value:
                current = counters.increment_counter(self._tpm, self.index)
        except counters.CounterUnusable as err:
            raise _not_ours(err) from err
        except TpmError as err:
            raise CounterStoreError(
                _tpm_words("The HOTP counter could not be advanced", err)
            ) from err


def _not_ours(err: CounterUnusable) -> CounterStoreError:
    """The refusal of an index that is no counter of ours: it was not read."""
    _log(err.message)
    if err.platform_created:
        advice = "It was not read. A TPM reset does not remove it: only the firmware can."
    else:
        advice = "Reset the TPM, then generate a new TOTP/HOTP secret."
    return CounterStoreError(
        f"The TPM's place for the HOTP counter holds something else: {err.problem}. {advice}"
    )


def _log(text: str) -> None:
    from runtime.error_detail import detail

    detail("hotp-counter", text)


def _tpm_words(what: str, err: TpmError) -> str:
    """Plain words for the screen; the operation, index and code go to the log."""
    from runtime.error_detail import plain

    return plain("hotp-counter", err, f"{what}. {err.plain()}")
