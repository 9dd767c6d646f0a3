"""The stand-in for tpm2_pytss.internal.crypto: imports stay cheap, every
name tpm2-pytss takes from the module is forwarded, and a call loads the
real module and behaves as before."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import tpm2_pytss

from runtime.tpm.lazy_crypto import FORWARDED, MODULE


def _imported_names() -> set[str]:
    package = Path(tpm2_pytss.__file__).parent
    names: set[str] = set()
    for path in package.rglob("*.py"):
        if path.name == "crypto.py" and path.parent.name == "internal":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.ImportFrom)
                and node.module
                and (
                    node.module == MODULE
                    or node.module.endswith("internal.crypto")
                    or (node.module == "crypto" and path.parent.name == "internal")
                )
            ):
                names.update(alias.name for alias in node.names)
    return names


def test_every_imported_name_is_forwarded() -> None:
    names = _imported_names()
    assert names, "tpm2-pytss no longer imports from internal.crypto: drop the stand-in"
    assert names <= set(FORWARDED)


def _run(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_importing_the_tpm_layer_does_not_load_the_openssl_backend() -> None:
    out = _run(
        "import sys, runtime.tpm.connection, runtime.tpm.sealing, runtime.tpm.nv\n"
        "from runtime.tpm import lazy_crypto\n"
        "print(lazy_crypto.loaded(),\n"
        "      'cryptography.hazmat.backends.openssl.backend' in sys.modules)\n"
    )
    assert out.split() == ["False", "False"]


def test_a_call_loads_the_real_module_and_works() -> None:
    out = _run(
        "import runtime.tpm\n"
        "from runtime.tpm import lazy_crypto\n"
        "from tpm2_pytss.types import TPM2B_PUBLIC\n"
        "from cryptography.hazmat.primitives.asymmetric import ec\n"
        "from cryptography.hazmat.primitives import serialization as s\n"
        "key = ec.generate_private_key(ec.SECP256R1()).public_key()\n"
        "pem = key.public_bytes(s.Encoding.PEM, s.PublicFormat.SubjectPublicKeyInfo)\n"
        "before = lazy_crypto.loaded()\n"
        "public = TPM2B_PUBLIC.from_pem(pem)\n"
        "back = public.to_pem()\n"
        "print(before, lazy_crypto.loaded(), back == pem)\n"
    )
    assert out.split() == ["False", "True", "True"]
