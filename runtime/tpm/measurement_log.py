"""The runtime's own record of every PCR extend it makes, kept in RAM.

Each extend the runtime performs is recorded with its PCR, the digest per
bank, a type and a description, so the log can be shown to the user and
replayed: the replay on top of the firmware's values must equal what the TPM
reports, and a disagreement names the PCR.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from runtime.tpm.pcr_math import Bank, PcrMismatch, compare, extend

PcrValues = Mapping[Bank, Mapping[int, bytes]]


@dataclass(frozen=True)
class Measurement:
    """One extend: ``digests`` holds the digest extended into each bank."""

    pcr: int
    digests: Mapping[Bank, bytes]
    event_type: str
    description: str


def replay(
    measurements: Iterable[Measurement], start: PcrValues | None = None
) -> dict[Bank, dict[int, bytes]]:
    """Recompute PCR values: ``start`` (default all zero) extended with each measurement."""
    values: dict[Bank, dict[int, bytes]] = {
        bank: dict(pcrs) for bank, pcrs in (start or {}).items()
    }
    for m in measurements:
        for bank, digest in m.digests.items():
            bank_values = values.setdefault(bank, {})
            old = bank_values.get(m.pcr, bank.zero())
            bank_values[m.pcr] = extend(bank, old, digest)
    return values


@dataclass
class MeasurementLog:
    """An append-only list of the extends made during this boot."""

    entries: list[Measurement] = field(default_factory=list)

    def record(self, measurement: Measurement) -> None:
        self.entries.append(measurement)

    def for_pcr(self, pcr: int) -> list[Measurement]:
        return [m for m in self.entries if m.pcr == pcr]

    def replay(self, start: PcrValues | None = None) -> dict[Bank, dict[int, bytes]]:
        return replay(self.entries, start)

    def check(self, actual: PcrValues, start: PcrValues | None = None) -> list[PcrMismatch]:
        """Compare the replay with ``actual`` PCR values; only PCRs the log touched count.

        An empty result means the TPM's PCRs are explained by ``start`` plus this log.
        """
        expected = self.replay(start)
        touched = {m.pcr for m in self.entries}
        mismatches: list[PcrMismatch] = []
        for bank, bank_values in expected.items():
            if bank not in actual:
                continue
            mine = {pcr: v for pcr, v in bank_values.items() if pcr in touched}
            mismatches.extend(compare(bank, mine, actual[bank]))
        return mismatches
