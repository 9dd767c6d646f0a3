"""tpm2-pytss without `cryptography`, as in the image (runtime/tpm/lazy_crypto.py):
every runtime module imports, a helper that would need the package fails in
plain words, and nothing of the stand-ins stays where other code would see it.
With the package installed (the host), tpm2-pytss gets the real one."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from runtime.tpm.lazy_crypto import CryptographyUnavailable
from tests.support.no_cryptography import REPO, run_without_cryptography
from tools.initrd.python_tree import runtime_modules


def _imports_tpm2_pytss(path: Path) -> bool:
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tpm2_pytss"):
            return True
        if isinstance(node, ast.Import) and any(
            a.name.startswith("tpm2_pytss") for a in node.names
        ):
            return True
    return False


#: runtime modules that import tpm2-pytss at their top
DIRECT = sorted(
    ".".join(p.relative_to(REPO).with_suffix("").parts)
    for p in (REPO / "runtime").rglob("*.py")
    if _imports_tpm2_pytss(p)
)


def test_some_runtime_modules_import_tpm2_pytss() -> None:
    assert "runtime.tpm.connection" in DIRECT and len(DIRECT) >= 5, DIRECT


@pytest.mark.parametrize("module", DIRECT)
def test_a_module_importing_tpm2_pytss_imports_first_without_cryptography(module: str) -> None:
    # Imported first, in a new interpreter: its own imports must put the stand-ins
    # in place before tpm2_pytss (runtime.tpm does, when imported before it).
    done = run_without_cryptography(f"import {module}\n")
    assert done.returncode == 0, done.stderr[-3000:]


def test_every_runtime_module_imports_without_cryptography() -> None:
    modules = [m for m in runtime_modules(REPO) if not m.endswith("__main__")]
    done = run_without_cryptography(
        "import importlib\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m.startswith('cryptography')))\n"
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["[]"]


def test_a_helper_that_needs_cryptography_fails_in_plain_words() -> None:
    done = run_without_cryptography(
        "import runtime.tpm.connection\n"
        "from runtime.tpm.lazy_crypto import CryptographyUnavailable\n"
        "from tpm2_pytss.types import TPMT_PUBLIC, TPMT_SENSITIVE\n"
        "public = TPMT_PUBLIC.parse('ecc')\n"
        "for call in (public.get_name, public.to_pem, lambda: TPMT_SENSITIVE().to_pem(public)):\n"
        "    try:\n"
        "        call()\n"
        "    except CryptographyUnavailable as err:\n"
        "        print(err.message)\n"
        "        print(err.plain())\n"
        "    try:\n"
        "        call()\n"  # the same words the second time
        "    except CryptographyUnavailable as err:\n"
        "        print(err.message)\n"
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert len(lines) == 9, lines
    helpers = ("_getname", "_public_to_pem", "private_to_key")
    for message, helper in zip(lines[0::3], helpers, strict=True):
        assert f"internal.crypto.{helper}" in message and "cryptography" in message, message
    assert lines[2] == lines[0]  # a second call: the same error
    assert lines[1].startswith(CryptographyUnavailable.summary)
    assert "bug" in lines[1] and "Report it" in lines[1]


def test_the_stand_ins_leave_nothing_behind() -> None:
    done = run_without_cryptography(
        "import runtime.tpm.connection, tpm2_pytss.types as types\n"
        "from runtime.tpm import lazy_crypto\n"
        "print(isinstance(types.serialization, lazy_crypto.Absent),\n"
        "      'cryptography.hazmat.primitives' in sys.modules,\n"
        "      any(isinstance(f, lazy_crypto._TypesFinder) for f in sys.meta_path))\n"
        "try:\n"
        "    import cryptography\n"
        "except ImportError:\n"
        "    print('refused')\n"
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["True", "False", "False", "refused"]


def test_with_cryptography_tpm2_pytss_gets_the_real_module() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import runtime.tpm.connection, tpm2_pytss.types as types\n"
            "print(types.serialization.__name__)\n",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["cryptography.hazmat.primitives.serialization"]
