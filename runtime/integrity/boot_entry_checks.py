"""What a verified /boot must show before one of its entries boots: every
file the entry loads signed and just verified and, for the saved default
(booted without asking), its hash list (kexec_default_hashes.txt) and the
TPM storage key it was saved with (kexec_primhdl_hash.txt) still agreeing.
Each check returns plain words, empty when it passes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from runtime.error_detail import plain

if TYPE_CHECKING:
    from runtime.integrity.boot_view import BootView


def entry_files(line: str) -> list[str]:
    """The files a Heads listing line boots: its kernel, initrds and modules
    (ConfigSyntaxError when the line cannot be read)."""
    from runtime.boot_configs.heads_line import parse_heads_line

    return [path for path, _ in parse_heads_line(line).entry.loaded_files()]


def verified_files_problem(boot_view: BootView, line: str) -> str:
    """Empty when every file the entry boots resolves, through the signed
    symlinks only, to a regular file whose signed hash was just verified."""
    from runtime.boot_configs.entry import ConfigSyntaxError
    from runtime.integrity.boot_paths import BootPathError
    from runtime.integrity.verify_boot import printable

    if not boot_view.verified:
        return "/boot was not verified."
    try:
        for path in entry_files(line):
            boot_view.check_bootable(path)
    except BootPathError as err:
        return printable(f"{err}.")  # names and link targets from the disk
    except ConfigSyntaxError as err:
        return printable(f"the entry cannot be read: {err}")
    return ""


def default_hashes_problem(boot_view: BootView, trusted: Mapping[str, bytes]) -> str:
    """kexec_default_hashes.txt (from ``trusted``, the signed-state files the
    owner's signature covers) must agree with the files just verified."""
    from runtime.integrity.boot_lists import DEFAULT_HASHES_FILE, ListFormatError, parse_sums
    from runtime.integrity.boot_paths import BootPathError

    data = trusted.get(DEFAULT_HASHES_FILE)
    if data is None:
        return "kexec_default_hashes.txt is missing: save the default again."
    try:
        lines = parse_sums(data, DEFAULT_HASHES_FILE)
    except ListFormatError as err:
        return f"kexec_default_hashes.txt cannot be read: {err}"

    def signed(name: str) -> str | None:
        # sha256sum follows a symlink (/vmlinuz -> vmlinuz-6.1): so do we, if signed
        try:
            return boot_view.signed_digest(boot_view.resolve(name.removeprefix(".")))
        except BootPathError:
            return None

    stale = [line.name for line in lines if signed(line.name) != line.digest]
    if stale:
        return (
            f"its files changed since it was saved ({', '.join(stale[:4])}): "
            "choose it again in the OS menu."
        )
    return ""


def primary_problem(trusted: Mapping[str, bytes], tpm: object | None) -> str:
    """Heads' check of kexec_primhdl_hash.txt: the TPM's storage key must be
    the one the default was saved with."""
    from runtime.integrity.boot_lists import PRIMARY_HANDLE_HASH_FILE, ListFormatError
    from runtime.integrity.primary_handle import primary_handle_bytes, primary_hash_matches
    from runtime.tpm.errors import TpmError

    data = trusted.get(PRIMARY_HANDLE_HASH_FILE)
    if data is None:
        if tpm is not None and not tpm.has_primary():  # type: ignore[attr-defined]
            return ""  # saved on a TPM without a storage key, and still none: nothing moved
        return (
            "/boot does not say which TPM storage key its default was saved with "
            "(kexec_primhdl_hash.txt is missing): save the default again."
        )
    if tpm is None:
        return "No TPM: the default entry's binding to the TPM cannot be checked."
    try:
        if primary_hash_matches(data, primary_handle_bytes(tpm)):
            return ""
    except ListFormatError as err:
        return f"kexec_primhdl_hash.txt cannot be read: {err}. Save the default again."
    except TpmError as err:
        return plain("primary-handle", err, "The TPM storage key cannot be checked. " + err.plain())
    return (
        "The TPM's storage key is not the one the default was saved with: the TPM was "
        "reset or replaced since. Choose the entry in the OS menu and save it again."
    )


def saved_default_problem(
    boot_view: BootView, trusted: Mapping[str, bytes], line: str, tpm: object | None
) -> str:
    """The first reason the saved default entry ``line`` may not boot, else empty."""
    return (
        verified_files_problem(boot_view, line)
        or default_hashes_problem(boot_view, trusted)
        or primary_problem(trusted, tpm)
    )
