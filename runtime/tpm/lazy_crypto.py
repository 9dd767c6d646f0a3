"""Defer tpm2-pytss's use of the `cryptography` package until it is needed.

`import tpm2_pytss` imports `tpm2_pytss.internal.crypto`, which loads
cryptography's whole OpenSSL backend (x509 and all). Under QEMU's TCG that
was 1.4 s of a 1.7 s import, on every boot, measured with -X importtime. The
boot path never calls those helpers (ESYS does session crypto in C; they
serve PEM import/export, software signature checks, duplication), so until
one is called a stand-in module holds forwarders: the first call imports
the real module and every call goes to it. Behaviour is the same, only later.

Written against tpm2-pytss 2.3.0 (the version the image pins); the test
suite checks that every name other modules import from it is forwarded.
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Callable
from typing import Any

MODULE = "tpm2_pytss.internal.crypto"

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

_stand_in: types.ModuleType | None = None


def _real() -> types.ModuleType:
    module = sys.modules.get(MODULE)
    if module is None or module is _stand_in:
        sys.modules.pop(MODULE, None)
        module = importlib.import_module(MODULE)
    return module


def _forwarder(name: str) -> Callable[..., Any]:
    def forward(*args: Any, **kwargs: Any) -> Any:
        return getattr(_real(), name)(*args, **kwargs)

    forward.__name__ = forward.__qualname__ = name
    return forward


def _module_getattr(name: str) -> Any:
    # The import system probes dunders (__path__, __spec__...): answering those
    # would load the real module on the very import this defers.
    if name.startswith("__") and name.endswith("__"):
        raise AttributeError(name)
    return getattr(_real(), name)


def install() -> bool:
    """Put the stand-in in place; only before tpm2_pytss is first imported."""
    global _stand_in
    if "tpm2_pytss" in sys.modules or MODULE in sys.modules:
        return False
    stand_in = types.ModuleType(MODULE, __doc__)
    for name in FORWARDED:
        setattr(stand_in, name, _forwarder(name))
    stand_in.__getattr__ = _module_getattr  # type: ignore[method-assign]
    _stand_in = stand_in
    sys.modules[MODULE] = stand_in
    return True


def loaded() -> bool:
    """Has the real module been imported (for tests and the benchmark)?"""
    module = sys.modules.get(MODULE)
    return module is not None and module is not _stand_in
