"""A call with a time bound: hostile /boot content (a FIFO opened for reading,
a huge sparse file) must fail a test, never hang the run."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def within(call: Callable[[], T], seconds: float = 20.0) -> T:
    """call()'s result, or a test failure when it does not return in time."""
    result: list[T] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            result.append(call())
        except BaseException as err:
            errors.append(err)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), f"no answer after {seconds} s: it hangs"
    if errors:
        raise errors[0]
    return result[0]
