"""Booting one entry: its files copied into RAM (checked against the signed
hashes when the view is a verified one), that copy loaded with kexec, and
the hand-over prepared (PCR 4 extended, the TPM locked, the RAM secrets
wiped, /boot unmounted). The runtime then exits and /init runs ``kexec -e``.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from runtime import bootlog
from runtime.error_detail import describe, detail, plain

if TYPE_CHECKING:
    from runtime.integrity.boot_view import BootView
    from runtime.tpm.connection import Tpm

#: how long a warning about the kernel command line stays on screen before booting
WARNING_SECONDS = 5


def _words(value: object) -> str:
    """A Words() setting (a tuple) or a plain string, as one line."""
    if isinstance(value, (list, tuple)):
        return " ".join(str(v) for v in value)
    return str(value or "")


def settings_cmdline_words(settings: object | None) -> tuple[str, str]:
    """CONFIG_BOOT_KERNEL_ADD and CONFIG_BOOT_KERNEL_REMOVE, as plan_for's
    ``board_add`` and ``remove``."""
    return (
        _words(getattr(settings, "boot_kernel_add", "")),
        _words(getattr(settings, "boot_kernel_remove", "")),
    )


def boot_entry(
    boot_view: BootView,
    line: str,
    tpm: Tpm | None,
    settings: object | None,
    unsafe: bool,
    progress: Callable[[str], None],
    disk_key: bytearray | None = None,
) -> str | None:
    """Boot the Heads listing ``line`` from ``boot_view`` (verified, or the
    disk as it is for the unsafe boot), with the owner's ``settings``
    (runtime.config.Settings), ``disk_key`` (the DUK's cpio, which the caller
    wipes) appended to its initrd. None when the kernel is loaded and the
    hand-over prepared; else the reason it was not loaded, in plain words."""
    from runtime.boot_configs.entry import ConfigSyntaxError
    from runtime.boot_configs.heads_line import parse_heads_line
    from runtime.integrity.boot_paths import BootPathError
    from runtime.integrity.verify_boot import printable
    from runtime.kexec import load as kexec
    from runtime.kexec import ram_copy
    from runtime.kexec.cmdline import cmdline_refusal
    from runtime.kexec.errors import KexecError
    from runtime.kexec.finalize import prepare_handover
    from runtime.kexec.freed_memory import freed_memory_zeroed, handover_line
    from runtime.kexec.key_initrd import KEY_FILE, wipe_key_copies, write_key_file
    from runtime.kexec.plan import plan_for
    from runtime.secrets.ram import SecretDir, SecretDirError
    from runtime.tpm.errors import Pcr4NotExtended, TpmError

    board_add, remove = settings_cmdline_words(settings)
    # Basic mode is the owner's choice, not a forced boot: no red console
    basic = bool(getattr(settings, "basic_mode", False))
    try:
        entry = parse_heads_line(line).entry
        needed = ram_copy.needed_bytes(boot_view, entry, len(disk_key) if disk_key else 0)
        room = ram_copy.room_problem(needed, ram_copy.available_ram())
        if room:
            return room
        with ram_copy.ram_stage(needed) as directory:
            progress(f"Copying {printable(entry.kernel)} and its files into RAM...")
            staged = ram_copy.stage_entry(boot_view, entry, directory)
            key_file = None
            try:
                key_file = write_key_file(directory, disk_key) if disk_key else None
                plan = plan_for(
                    entry,
                    boot_view.root,
                    remove=remove,
                    board_add=board_add,
                    initrd_out=staged.initrd_out,
                    unsafe=unsafe and not basic,
                    locate=ram_copy.locator(staged),
                    extra_initrd=key_file,
                )
                refusal = cmdline_refusal(plan.cmdline or "")
                if refusal and not unsafe:
                    return refusal
                for warning in plan.warnings:
                    progress(f"Warning: {warning}")
                    time.sleep(WARNING_SECONDS)
                progress(f"Loading {printable(entry.kernel)}...")
                kexec.load(plan)
            finally:
                if disk_key:
                    wipe_key_copies(
                        key_file or os.path.join(directory, KEY_FILE),
                        staged.initrd_out,
                        len(disk_key),
                    )
        progress("Handing over to the new kernel...")
        try:
            done = prepare_handover(tpm, SecretDir(), unsafe=unsafe, mount_points=[boot_view.root])
        except Exception:
            if disk_key:
                # a loaded kernel holding the disk key must not wait for a later kexec -e
                with contextlib.suppress(KexecError):
                    kexec.unload()
            raise
        zeroed = freed_memory_zeroed()
        done.append(handover_line(zeroed))
        bootlog.stage("kexec", unsafe=unsafe, steps=len(done), freed_zeroed=zeroed)
    except (KexecError, ConfigSyntaxError, BootPathError) as err:
        detail("boot", describe(err))
        return printable(str(err))
    except Pcr4NotExtended as err:  # its words say what happened and that nothing booted
        return plain("boot", err, err.plain())
    except TpmError as err:
        return plain(
            "boot", err, "PCR 4 could not be extended, so nothing was booted. " + err.plain()
        )
    except SecretDirError as err:
        detail("boot", describe(err))
        return f"the RAM secrets could not be wiped, so nothing was booted: {err}"
    return None
