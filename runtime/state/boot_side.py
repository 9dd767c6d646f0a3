"""What verified boot keeps of /boot between the steps of one power-on."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class BootSide:
    """The /boot the steps work on, and what the last check and listing found there."""

    boot_dir: str = "/boot"
    device: str = ""
    last_report: object | None = None  # runtime.integrity.verify_boot.BootReport
    #: Heads' listing lines as last shown (their numbers name the default)
    listing: list[str] = field(default_factory=list)
