"""kexec_primhdl_hash.txt: which TPM storage key /boot's default was saved
with. Heads writes `sha256sum /tmp/secret/primary.handle` there, the file
being the serialized ESYS_TR of the primary key at 0x81000000 (what
`tpm2 readpublic -t` writes, Esys_TR_Serialize); a different key means the TPM
was reset or swapped since, so the default must not boot unattended.
"""

from __future__ import annotations

import hashlib

from runtime.integrity.boot_lists import ListFormatError, format_sum_line, parse_sums

HANDLE_FILE = "/tmp/secret/primary.handle"  # noqa: S108 (a name inside the file's text)


def primary_handle_bytes(tpm: object) -> bytes:
    """The serialized primary key handle, as tpm2-tools and Heads write it."""
    esapi = tpm.esapi  # type: ignore[attr-defined]
    return bytes(esapi.tr_serialize(tpm.primary()))  # type: ignore[attr-defined]


def format_primary_hash(serialized: bytes) -> bytes:
    return format_sum_line(hashlib.sha256(serialized).hexdigest(), HANDLE_FILE).encode()


def primary_hash_matches(data: bytes, serialized: bytes) -> bool:
    """True when the file names this serialized key; ListFormatError if damaged."""
    lines = parse_sums(data, "kexec_primhdl_hash.txt")
    if len(lines) != 1:
        raise ListFormatError("kexec_primhdl_hash.txt must hold exactly one line")
    return lines[0].digest == hashlib.sha256(serialized).hexdigest()
