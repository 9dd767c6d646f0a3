"""Boot entries as JSON-ready dictionaries, for the `python3 -m
runtime.boot_configs` command and for anything that logs what was found."""

from __future__ import annotations

from typing import Any

from runtime.boot_configs.entry import BootEntry


def entry_json(e: BootEntry, offered: bool) -> dict[str, Any]:
    """One entry with every field; `offered` says whether the boot menu shows it."""
    return {
        "name": e.name,
        "kind": str(e.kind),
        "kernel": e.kernel,
        "initrds": list(e.initrds),
        "cmdline": e.cmdline,
        "modules": [{"path": m.path, "cmdline": m.cmdline} for m in e.modules],
        "source": e.source,
        "line": e.line,
        "rank": e.rank,
        "default": e.is_default,
        "files_present": e.files_present,
        "offered": offered,
        "also_listed_as": list(e.also_listed_as),
        "warnings": list(e.warnings),
    }
