"""kexec_primhdl_hash.txt against the real TPM and tpm2-tools' own output."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from runtime.integrity.primary_handle import (
    format_primary_hash,
    primary_handle_bytes,
    primary_hash_matches,
)
from runtime.tpm.connection import Tpm
from runtime.tpm.ownership import take_ownership
from tools.swtpm import Swtpm


def test_the_hash_names_this_tpms_key(tpm: Tpm) -> None:
    serialized = primary_handle_bytes(tpm)
    data = format_primary_hash(serialized)
    assert data.endswith(b"  /tmp/secret/primary.handle\n")
    assert primary_hash_matches(data, serialized)
    assert not primary_hash_matches(data, serialized[:-1] + b"\x00")


@pytest.mark.skipif(shutil.which("tpm2") is None, reason="tpm2-tools not installed")
def test_serialization_is_what_tpm2_readpublic_writes(tmp_path: Path) -> None:
    # a TPM of its own: tpm2-tools needs the socket while no one else holds it
    with Swtpm(tmp_path / "state") as own:
        tpm = Tpm.connect(own.tcti)
        tpm.startup()
        take_ownership(tpm, b"owner")
        ours = primary_handle_bytes(tpm)
        tpm.close()
        out = tmp_path / "primary.handle"
        subprocess.run(
            ["tpm2", "readpublic", "-T", own.tcti, "-c", "0x81000000", "-t", str(out)],
            check=True,
            timeout=60,
            capture_output=True,
        )
    assert out.read_bytes() == ours
