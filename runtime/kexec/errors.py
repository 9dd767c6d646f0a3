"""The one error the kexec package raises for a plan or load it refuses."""

from __future__ import annotations


class KexecError(ValueError):
    """A boot entry cannot be loaded or started; the message says why in plain words."""
