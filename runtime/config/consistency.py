"""Checks across settings: values each valid on its own that together do not do
what the owner likely meant (each reported at the line that set the key it names).
"""

from __future__ import annotations

from runtime.config.config_file import Problem
from runtime.config.loaded_settings import Source
from runtime.config.schema import Settings


def consistency_problems(settings: Settings, sources: dict[str, Source]) -> list[Problem]:
    """Warnings for keys that are each valid but contradict or defeat one another."""
    problems = []

    def warn(key: str, text: str) -> None:
        where = sources[key]
        problems.append(Problem(where.path or "settings", where.line, key, text, "warning"))

    if settings.tpm != settings.tpm2_tools:
        text = (
            "CONFIG_TPM=y with CONFIG_TPM2_TOOLS=n describes a TPM 1.2, which this "
            "runtime does not drive"
            if settings.tpm
            else "CONFIG_TPM2_TOOLS=y needs CONFIG_TPM=y, or the TPM is not used"
        )
        warn("CONFIG_TPM", f"{text}; set both to y or both to n.")
    if settings.root_check_at_boot and not settings.root_dev:
        warn(
            "CONFIG_ROOT_CHECK_AT_BOOT",
            "no root file system is named (CONFIG_ROOT_DEV), so nothing is checked at boot.",
        )
    if settings.root_dev and not settings.root_dirlist:
        warn(
            "CONFIG_ROOT_DIRLIST",
            "no directory is listed, so a root hash list would be empty and prove nothing.",
        )
    if settings.basic and settings.restricted_boot:
        warn(
            "CONFIG_BASIC",
            "Basic mode is off: restricted boot (CONFIG_RESTRICTED_BOOT) "
            "asks for every check. Turn one of them off.",
        )
    return problems
