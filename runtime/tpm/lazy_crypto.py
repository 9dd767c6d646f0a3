"""Let tpm2-pytss run without the `cryptography` package, which the image leaves out.

`import tpm2_pytss` imports `tpm2_pytss.internal.crypto`, which loads
cryptography's whole OpenSSL backend (x509 and all). Under QEMU's TCG that
was 1.4 s of a 1.7 s import, on every boot, measured with -X importtime. The
runtime never calls those helpers (ESYS does session crypto in C; they serve
PEM import/export, software signature checks, credentials, duplication; the
runtime hashes Names with hashlib), so the image does not ship cryptography
at all (the audit and its evidence: tests/tpm/test_without_cryptography.py).

Two stand-ins make that possible:
- `internal.crypto`: forwarders. The first call imports the real module
  where cryptography is installed (the host's tests), so behaviour is the
  same, only later; where it is not (the image), the call raises
  CryptographyUnavailable, a bug in plain words.
- tpm2_pytss.types' own `from cryptography.hazmat.primitives import
  serialization`: only TPMT_SENSITIVE's PEM/DER/SSH export uses it, but a
  default argument reads it at import. While types.py runs, and only if
  cryptography cannot be imported, that import gets a placeholder whose
  attributes are placeholders and whose calls raise CryptographyUnavailable.

Written against tpm2-pytss 2.3.0 (the version the image pins); the test
suite checks that every name other modules import from it is forwarded.
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from importlib.machinery import ModuleSpec

MODULE = "tpm2_pytss.internal.crypto"
#: the tpm2-pytss module that imports cryptography at its top, and what from
TYPES_MODULE = "tpm2_pytss.types"
PRIMITIVES = "cryptography.hazmat.primitives"

# What tpm2-pytss 2.3.0's types, utils, encoding and cryptography modules
# import from it (kept in step by tests/unit/tpm/test_lazy_crypto.py).
FORWARDED = (
    "_calculate_sym_unique",
    "_check_hmac",
    "_decrypt",
    "_ecc_sign_algorithm_to_scheme",
    "_encrypt",
    "_generate_seed",
    "_get_curve",
    "_get_digest",
    "_get_digest_size",
    "_get_signature_bytes",
    "_getname",
    "_hmac",
    "_int_to_buffer",
    "_kdfa",
    "_private_from_encoding",
    "_public_from_encoding",
    "_public_to_pem",
    "_rsa_decrypt_padding_to_scheme",
    "_rsa_sign_padding_to_scheme",
    "_secret_to_seed",
    "_symdef_to_crypt",
    "_verify_signature",
    "private_to_key",
    "public_to_key",
)


class CryptographyUnavailable(RuntimeError):
    """A tpm2-pytss helper that needs `cryptography` was called in an image built
    without it: a runtime path the audit missed, so a bug, not a TPM fault.
    Deliberately not a TpmError: a caller that goes on without the TPM after a
    TPM error (the hand-over, the recovery checks) must not go on after this;
    it ends the runtime with its words (runtime/__main__.py)."""

    summary = "This firmware cannot do that step: it was built without a library the step needs."
    hint = (
        "This is a bug in the firmware, not a problem with the TPM or with anything "
        "you did. Report it with the technical details; the boot, the TOTP/HOTP "
        "checks, sealing and resetting the TPM do not need that library."
    )

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def plain(self) -> str:
        return f"{self.summary} {self.hint}"


def _unavailable(what: str, cause: BaseException | None = None) -> CryptographyUnavailable:
    found = f" ({cause})" if cause is not None else ""
    return CryptographyUnavailable(
        f"tpm2-pytss called {what}, which needs the Python package cryptography; "
        f"this image leaves it out{found}"
    )


_stand_in: types.ModuleType | None = None


def _real(name: str) -> types.ModuleType:
    module = sys.modules.get(MODULE)
    if module is not None and module is not _stand_in:
        return module
    sys.modules.pop(MODULE, None)
    try:
        return importlib.import_module(MODULE)
    except ImportError as err:
        if _stand_in is not None:
            sys.modules[MODULE] = _stand_in  # a later call gets the same error
        if not _cryptography_missing(err):
            raise
        raise _unavailable(f"{MODULE}.{name}", err) from err


def _cryptography_missing(err: ImportError) -> bool:
    """The import failed for want of cryptography itself, not of something else."""
    return (err.name or "").partition(".")[0] == "cryptography"


def _forwarder(name: str) -> Callable[..., Any]:
    def forward(*args: Any, **kwargs: Any) -> Any:
        return getattr(_real(name), name)(*args, **kwargs)

    forward.__name__ = forward.__qualname__ = name
    return forward


def _module_getattr(name: str) -> Any:
    # The import system probes dunders (__path__, __spec__...): answering those
    # would load the real module on the very import this defers.
    if name.startswith("__") and name.endswith("__"):
        raise AttributeError(name)
    return getattr(_real(name), name)


class Absent:
    """A `cryptography` object the image leaves out. Reading an attribute gives
    another (types.py reads `serialization.PrivateFormat.TraditionalOpenSSL`
    as a default argument); calling one raises CryptographyUnavailable."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Absent:
        if attr.startswith("__") and attr.endswith("__"):
            raise AttributeError(attr)
        return Absent(f"{self._name}.{attr}")

    def __call__(self, *args: object, **kwargs: object) -> NoReturn:
        raise _unavailable(self._name)

    def __repr__(self) -> str:
        return f"<{self._name}: not in this image>"


def _cryptography_importable() -> bool:
    try:
        importlib.import_module(f"{PRIMITIVES}.serialization")  # what types.py imports next
    except ImportError as err:
        # absent: the image. Broken (it is there, but something it needs is
        # not): said as such, not hidden behind "not in this image".
        if not _cryptography_missing(err):
            raise
        return False
    return True


class _TypesLoader:
    """tpm2_pytss.types' own loader, run with the placeholder in place when
    cryptography cannot be imported; the placeholder leaves sys.modules after."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:  # get_source, get_filename...: the real loader's
        if name == "_inner":  # not set yet (a copy): no endless recursion
            raise AttributeError(name)
        return getattr(self._inner, name)

    def create_module(self, spec: ModuleSpec) -> types.ModuleType | None:
        module: types.ModuleType | None = self._inner.create_module(spec)
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        if _cryptography_importable():
            self._inner.exec_module(module)
            return
        placeholder = types.ModuleType(PRIMITIVES, "cryptography: not in this image")
        placeholder.serialization = Absent(f"{PRIMITIVES}.serialization")  # type: ignore[attr-defined]
        before = sys.modules.get(PRIMITIVES)
        sys.modules[PRIMITIVES] = placeholder
        try:
            self._inner.exec_module(module)
        finally:
            if sys.modules.get(PRIMITIVES) is placeholder:
                if before is None:
                    del sys.modules[PRIMITIVES]
                else:
                    sys.modules[PRIMITIVES] = before


class _TypesFinder:
    """On sys.meta_path until tpm2_pytss.types is found: wraps its loader."""

    def find_spec(
        self, fullname: str, path: Any = None, target: types.ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname != TYPES_MODULE:
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            spec: ModuleSpec | None = find(fullname, path, target) if find else None
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _TypesLoader(spec.loader)  # type: ignore[assignment]
                return spec
        return None


def install() -> bool:
    """Put the stand-ins in place; only before tpm2_pytss is first imported."""
    global _stand_in
    if "tpm2_pytss" in sys.modules or MODULE in sys.modules:
        return False
    stand_in = types.ModuleType(MODULE, __doc__)
    for name in FORWARDED:
        setattr(stand_in, name, _forwarder(name))
    stand_in.__getattr__ = _module_getattr  # type: ignore[method-assign]
    _stand_in = stand_in
    sys.modules[MODULE] = stand_in
    sys.meta_path.insert(0, _TypesFinder())
    return True


def loaded() -> bool:
    """Has the real module been imported (for tests and the benchmark)?"""
    module = sys.modules.get(MODULE)
    return module is not None and module is not _stand_in
