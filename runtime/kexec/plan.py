"""What ``kexec -l`` gets for one boot entry (../shared/reference/heads-facts.md §5.3),
decided without side effects.

The plan only looks at the file system (to refuse missing files and paths that
leave the boot partition); load.py writes the concatenated initrd and runs kexec.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass

from runtime.boot_configs.entry import BootEntry, EntryKind
from runtime.kexec.cmdline import cmdline_warnings, final_cmdline
from runtime.kexec.errors import KexecError

#: Heads' forced (unsafe) boot turns the console red and shows every kernel message.
UNSAFE_ADD = "vt.default_red=" + ",".join(["0xff"] * 14)
UNSAFE_REMOVE = "splash quiet"
#: What Heads adds to Xen's own arguments so Xen starts from a kexec'd state.
XEN_EXTRA_ARGS = "no-real-mode reboot=no vga=current"
#: GRUB pads each initrd to 4 bytes; the kernel skips zero padding between
#: archives but only finds an uncompressed cpio at a 4-byte boundary.
INITRD_ALIGN = 4


@dataclass(frozen=True)
class KexecPlan:
    """Everything needed to load one entry.

    ``args`` follow the kexec binary (they start with ``-l``). When
    ``initrd_parts`` is not empty, load.py first concatenates them (each padded
    to INITRD_ALIGN) into ``initrd_out``, the file ``args`` passes as --initrd.
    """

    args: tuple[str, ...]
    reads: tuple[str, ...]  # every file kexec or the concatenation reads, in order
    initrd_parts: tuple[str, ...] = ()
    initrd_out: str | None = None
    cmdline: str | None = None  # the final kernel command line, None when none is passed
    warnings: tuple[str, ...] = ()


def _checked_text(what: str, value: str) -> None:
    if not value:
        raise KexecError(f"The {what} path is empty.")
    if "\0" in value:
        raise KexecError(f"The {what} path contains a NUL byte.")


def _inside(path: str, root: str) -> bool:
    return path.startswith(root.rstrip("/") + "/")


def resolve(boot_dir: str, path: str, what: str) -> str:
    """The file ``path`` (relative to the boot partition, starting with '/') as a
    path under ``boot_dir``; KexecError if it leaves boot_dir or is not a file."""
    _checked_text(what, path)
    if not path.startswith("/"):
        raise KexecError(
            f"The {what} path {path!r} must start with '/' (it is relative to the boot partition)."
        )
    root = os.path.normpath(boot_dir)
    full = os.path.normpath(os.path.join(root, path.lstrip("/")))
    if full != root and not _inside(full, root):
        raise KexecError(f"The {what} path {path!r} points outside the boot partition.")
    if not os.path.isfile(full):
        raise KexecError(f"The {what} {path} does not exist on the boot partition.")
    # A symlink could make kexec read a file the boot hashes never covered.
    if not _inside(os.path.realpath(full), os.path.realpath(root)):
        raise KexecError(f"The {what} {path} is a link to a file outside the boot partition.")
    return full


def _no_blank(what: str, path: str) -> str:
    # kexec splits a --module value at its first blank: path, then arguments.
    if any(c.isspace() for c in path):
        raise KexecError(
            f"The {what} path {path!r} contains a blank, which a multiboot load cannot pass."
        )
    return path


#: an entry's path and what it is -> the file to load (Locate)
Locate = Callable[[str, str], str]


def _linux_plan(
    entry: BootEntry,
    locate: Locate,
    cmdline: str | None,
    initrd_out: str,
    extra_initrd: str | None = None,
) -> KexecPlan:
    kernel = locate(entry.kernel, "kernel")
    initrds = [locate(p, "initrd") for p in entry.initrds]
    if extra_initrd is not None:
        if not initrds:
            raise KexecError(
                "This entry has no initrd, so the disk unlock key has nothing to go into."
            )
        initrds.append(extra_initrd)
    args = ["-l", kernel]
    parts: tuple[str, ...] = ()
    out: str | None = None
    if len(initrds) == 1:
        args.append(f"--initrd={initrds[0]}")
    elif initrds:
        # kexec takes one --initrd; the kernel unpacks concatenated archives.
        if os.path.normpath(initrd_out) in initrds:
            raise KexecError("The combined initrd would overwrite one of its own parts.")
        parts, out = tuple(initrds), initrd_out
        args.append(f"--initrd={initrd_out}")
    if cmdline is not None:
        args.append(f"--append={cmdline}")
    return KexecPlan(tuple(args), (kernel, *initrds), parts, out, cmdline)


def _multiboot_plan(entry: BootEntry, locate: Locate, cmdline: str | None, xen: bool) -> KexecPlan:
    kernel = locate(entry.kernel, "kernel")
    kernel_args = f"{entry.cmdline} {XEN_EXTRA_ARGS}" if xen else entry.cmdline
    args = ["-l", kernel, f"--command-line={kernel_args.strip()}"]
    reads = [kernel]
    for index, module in enumerate(entry.modules):
        path = _no_blank("module", locate(module.path, "module"))
        margs = cmdline if index == 0 and cmdline is not None else module.cmdline
        args.append(f"--module={path} {margs}" if margs else f"--module={path}")
        reads.append(path)
    return KexecPlan(tuple(args), tuple(reads), cmdline=cmdline)


def is_xen(entry: BootEntry) -> bool:
    """Heads' "xen" type: a multiboot kernel whose file name says Xen."""
    return "xen" in os.path.basename(entry.kernel).lower()


def plan_for(
    entry: BootEntry,
    boot_dir: str,
    *,
    add: str = "",
    remove: str = "",
    board_add: str = "",
    initrd_out: str,
    unsafe: bool = False,
    xen: bool | None = None,
    locate: Locate | None = None,
    extra_initrd: str | None = None,
) -> KexecPlan:
    """The kexec load for ``entry`` on the partition mounted at ``boot_dir``.

    ``add``/``remove`` are the boot's extra and unwanted kernel parameters
    (CONFIG_BOOT_KERNEL_REMOVE plus the caller's), ``board_add`` the board's
    CONFIG_BOOT_KERNEL_ADD. ``unsafe`` is Heads' forced boot: red console,
    no splash. ``xen`` picks the Xen arguments for a multiboot entry (default:
    whether the kernel's file name contains "xen"). ``locate`` gives the file
    to load for each path (the firmware: checked RAM copies); by default the
    path is resolved under boot_dir. ``extra_initrd`` (the disk unlock key's
    cpio) is appended after the entry's initrds, as Heads appends it.
    """
    for what, value in (("boot directory", boot_dir), ("combined initrd", initrd_out)):
        _checked_text(what, value)
        if not value.startswith("/"):
            raise KexecError(f"The {what} path {value!r} must be absolute.")
    where: Locate = locate or (lambda path, what: resolve(boot_dir, path, what))
    if unsafe:
        add = f"{add} {UNSAFE_ADD}".strip()
        remove = f"{remove} {UNSAFE_REMOVE}".strip()

    if entry.kind is EntryKind.MULTIBOOT and extra_initrd is not None:
        raise KexecError(
            "The disk unlock key cannot be given to a multiboot (Xen) entry yet: boot it "
            "without the key, and the OS asks for the disk's recovery passphrase."
        )
    if entry.kind is EntryKind.MULTIBOOT:
        # Only the first module (the dom0 kernel) takes the Linux parameters.
        cmdline = (
            final_cmdline(entry.modules[0].cmdline, add, remove, board_add)
            if entry.modules
            else None
        )
        use_xen = is_xen(entry) if xen is None else xen
        plan = _multiboot_plan(entry, where, cmdline, use_xen)
    else:
        # memtest and friends take no command line: pass none, as Heads does.
        wanted = bool(entry.cmdline or add)
        cmdline_or_none = final_cmdline(entry.cmdline, add, remove, board_add) if wanted else None
        plan = _linux_plan(entry, where, cmdline_or_none, initrd_out, extra_initrd)
    if plan.cmdline is None:
        return plan
    return dataclasses.replace(plan, warnings=tuple(cmdline_warnings(plan.cmdline)))
