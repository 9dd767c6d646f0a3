"""The host's own programs that tests run (sfdisk, debugfs, cryptsetup ...)."""

from __future__ import annotations

import shutil

import pytest


def sbin(name: str) -> str:
    """A program's path, also found in /usr/sbin and /sbin (not on every PATH);
    missing, it fails the test: tools/bootstrap.sh installs them."""
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if found is None:
        pytest.fail(f"{name} is not installed")
    return found
