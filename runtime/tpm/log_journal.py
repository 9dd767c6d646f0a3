"""The runtime's measurement log, kept across its own restarts in one power-on.

The runtime runs again after an authenticated recovery shell, and the
recovery gate extends PCR 4 from a process of its own. Each writes every
extend it makes to one JSON-lines file in RAM, and each run starts its log
from that file, so the replay of firmware log + runtime extends explains the
PCRs instead of reading as tampering. The file lives in the initramfs' RAM
only: the next kernel never sees it, and a power-off forgets it.
"""

from __future__ import annotations

import json
import os

from runtime.tpm.measurement_log import Measurement, MeasurementLog
from runtime.tpm.pcr_math import Bank

#: where the firmware keeps it (RAM: the initramfs' own root)
RUNTIME_JOURNAL = "/run/runtime/measurements.jsonl"
#: far more extends than one power-on makes
MAX_ENTRIES = 10_000
_BANKS = {bank.hash_name: bank for bank in Bank}


def encode(m: Measurement) -> str:
    return json.dumps(
        {
            "pcr": m.pcr,
            "type": m.event_type,
            "description": m.description,
            "digests": {b.hash_name: d.hex() for b, d in m.digests.items()},
        },
        sort_keys=True,
    )


def decode(line: str) -> Measurement | None:
    """One journal line; None for a line that is not one (a cut write)."""
    try:
        doc = json.loads(line)
        digests = {_BANKS[name]: bytes.fromhex(value) for name, value in doc["digests"].items()}
        return Measurement(int(doc["pcr"]), digests, str(doc["type"]), str(doc["description"]))
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def load(path: str) -> MeasurementLog:
    """The extends earlier runs of this power-on made (empty when none)."""
    log = MeasurementLog()
    try:
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f):
                if number >= MAX_ENTRIES:
                    break
                found = decode(line)
                if found is not None:
                    log.entries.append(found)
    except (OSError, UnicodeError):
        pass
    return log


def append(path: str, m: Measurement) -> None:
    """Add one extend; a failure only costs the replay after a restart."""
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        with open(path, "a", encoding="utf-8") as f:
            f.write(encode(m) + "\n")
    except OSError:
        pass
