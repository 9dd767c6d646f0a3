"""The runtime's version, as the package metadata (pyproject.toml) states it.

A development checkout reads the installed metadata; the image carries no installed-package
metadata, so the build copies the version into build-info.json and the image reads it there.
"""

from __future__ import annotations

import json

DISTRIBUTION = "heads-runtime"
VERSION_KEY = "version"
UNKNOWN = "(version unknown)"


def runtime_version(build_info_path: str) -> str:
    """The version the build recorded, else the installed package's, else UNKNOWN."""
    try:
        with open(build_info_path, encoding="utf-8") as f:
            info = json.load(f)
    except (OSError, ValueError):
        info = None
    value = info.get(VERSION_KEY) if isinstance(info, dict) else None
    if isinstance(value, str) and value.isprintable() and 0 < len(value) <= 40:
        return value
    # Only a development checkout gets here: the image leaves importlib.metadata
    # out (it pulls in email, zipfile and csv).
    try:
        import importlib.metadata
    except ImportError:
        return UNKNOWN
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return UNKNOWN
