"""The settings as loaded: their values, what was wrong in the files, and where
each value came from (for the Configuration page and the boot's checks).
"""

from __future__ import annotations

from typing import NamedTuple

from runtime.config.config_file import Problem
from runtime.config.heads_keys import ONLY_DEFAULT
from runtime.config.schema import SCHEMA, Settings


class Source(NamedTuple):
    label: str
    path: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        if self.path is None:
            return self.label
        return f"{self.label} ({self.path}, line {self.line})"


BUILT_IN = Source("built-in default")


class SettingRow(NamedTuple):
    key: str
    value: str
    source: str
    meaning: str


SCHEMA_KEY_PRIMARY_NAME = "CONFIG_TPM_PRIMARY_NAME"
#: No TPM object has this Name (hash algorithm 0 and no digest).
UNMATCHABLE_NAME = b"\x00\x00"


class LoadedSettings:
    """The settings, what was wrong in the files, and where each value came from."""

    def __init__(
        self, settings: Settings, problems: list[Problem], sources: dict[str, Source]
    ) -> None:
        self.settings, self.problems, self.sources = settings, problems, sources

    def rows(self) -> list[SettingRow]:
        """Each setting, its value and where it came from, in table order."""
        return [
            SettingRow(
                key,
                self.settings.shown(key),
                str(self.sources.get(key, BUILT_IN)),
                s.meaning
                + (f" (only this value: {ONLY_DEFAULT[key]})" if key in ONLY_DEFAULT else ""),
            )
            for key, s in SCHEMA.items()
        ]

    def problem_lines(self) -> list[str]:
        return [str(p) for p in self.problems]

    def primary_name_pin(self) -> bytes | None:
        """The pinned TPM storage key Name; a pin that matches no key when a
        CONFIG_TPM_PRIMARY_NAME line is malformed: the owner meant to pin,
        and a typo must not quietly turn the check off."""
        if any(p.key == SCHEMA_KEY_PRIMARY_NAME and p.severity == "error" for p in self.problems):
            return UNMATCHABLE_NAME
        return self.settings.tpm_primary_name
