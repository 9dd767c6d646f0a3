"""GRUB 2 grub.cfg, read statically the way Heads' kexec-parse-boot.sh does:
no script is run, `set` assignments are followed in order, menu entries are
collected with their linux/initrd or multiboot/module lines.

Conditions: only static ones are evaluated (`true`, `false`, `test`/`[ ]` on
literals and on variables the configuration or the caller set for certain;
`-a`/`-o` are decided by one known side when it suffices); for anything
else (file tests, variables GRUB or the machine supplies) every branch is
taken, in order, with a warning, so the later branch's `set` wins, and what
those branches set becomes uncertain in turn. Functions are
recorded but never called (they load video modules or save defaults).
Device prefixes like (hd0,1) or ($root) are dropped: Heads reads the one
/boot it mounted. `search --file` and `probe --fs-uuid` know only what the
caller tells parse_grub (an ISO's host file system); other probes stay unset.

The reader's parts: grub_lexer (words), grub_blocks (if/menuentry/loop
structure), grub_eval (the walk over blocks), grub_commands (the command
table), grub_vars (variables and expansion), grub_test_builtin (`test`),
grub_menu (entry ids and `default`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from runtime.boot_configs.entry import BootEntry, ParseWarning
from runtime.boot_configs.fs import BootFS, normalize
from runtime.boot_configs.grub_eval import Evaluator
from runtime.boot_configs.grub_vars import MAX_VALUE

__all__ = ["parse_grub"]


def parse_grub(
    fs: BootFS,
    path: str,
    *,
    initial_vars: Mapping[str, str] | None = None,
    devices: Mapping[str, str] | None = None,
    fs_uuids: Mapping[str, str] | None = None,
) -> tuple[list[BootEntry], list[ParseWarning]]:
    """Menu entries of grub.cfg at path (and what it sources), menu order, rank set.

    initial_vars are set, for certain, before the file runs (GRUB sets iso_path
    before a loopback.cfg). devices maps a file to the device `search --file`
    finds it on; fs_uuids maps a device to what `probe --fs-uuid` reports."""
    norm = normalize(path)
    if norm is None:
        return [], [ParseWarning(path, 0, "path outside the root")]
    ev = Evaluator(fs, devices, fs_uuids)
    for name, value in (initial_vars or {}).items():
        ev.vars.assign(name, value[:MAX_VALUE])
    ev.run_file(norm, 0)
    warnings = ev.warnings
    entries = [replace(e, rank=i) for i, e in enumerate(ev.menu.entries)]
    default = ev.vars.values.get("default")
    idx = ev.menu.default_index(default)
    if idx is None and default:
        warnings.append(ParseWarning(norm, 0, f"default {default!r} matches no entry"))
    if idx is None:
        bls_default = [i for i, e in enumerate(entries) if e.is_default]
        idx = bls_default[0] if bls_default else (0 if entries else None)
    entries = [replace(e, is_default=(i == idx)) for i, e in enumerate(entries)]
    return entries, warnings
