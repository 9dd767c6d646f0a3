"""busybox's recipe: /bin/busybox built from the pinned Debian source package
busybox with only the applets the image uses, and the applet list that both
configures the build and names the image's /bin symlinks (build_initrd.py).

Which applets: what /init runs (initrd_overlay/init, by `busybox sh`), what
the runtime runs (runtime/: /bin/mount, /bin/umount, `busybox hwclock`,
`busybox poweroff|reboot`), and what a recovery shell needs to look around,
repair and check /boot by hand: ash with line editing, history and tab
completion, vi, less, grep, sed and the basic file tools. Left out of the old
list: modprobe (the image has no modules.dep, without which busybox's modprobe
refuses to run; insmod takes a module's path) and mdev (/dev is devtmpfs and
nothing runs mdev). /init's test, [, echo, printf and read are ash builtins:
no fork, no applet.

Built like Debian's `busybox` package (dynamic, against the image's glibc,
PIE by gcc's default, Debian's patches; the hardening flags of tools/initrd/source_build.py),
with exactly the options below on and every other one off
(kconfig.kconfig_over): an applet or feature whose dependency is off
stops the build instead of going missing. Static against glibc it would be
1.42 MB instead of 0.22 MB, beside a libc the image has anyway.

    python -m tools.initrd.busybox_build [--cache DIR]
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tools.initrd import elf, recipe_support, source_build
from tools.initrd.lock import Lock
from tools.initrd.source_build import Recipe, SourceBuildError

SOURCE = "busybox"
# The path in the image, which is also its path in the staging tree.
PROGRAM = "bin/busybox"
PROGRAMS = (PROGRAM,)

# Every applet, each a /bin symlink to busybox in the image.
APPLETS = (
    # /init
    "sh",
    "mount",
    "mkdir",
    "loadkmap",  # the compiled keyboard layout (CONFIG_KEYBOARD_KEYMAP)
    "setsid",  # -c: the runtime and the recovery shell get the console as ctty
    "stty",  # the recovery serial line's speed
    "sleep",
    "grep",  # -w: is the serial line one of the kernel's consoles?
    "sync",
    "reboot",  # also the runtime's (busybox reboot -f)
    "poweroff",  # also the runtime's (busybox poweroff -f)
    # the runtime
    "umount",
    "hwclock",  # the clock menu writes the RTC: busybox hwclock -w -u
    # the recovery shell: files
    "ls",
    "cat",
    "cp",
    "mv",
    "rm",
    "ln",
    "rmdir",
    "touch",
    "chmod",
    "find",
    "xargs",
    "df",
    "dd",
    # text
    "vi",
    "less",
    "sed",
    "head",  # -c: the QEMU tests read the keyboard with it
    "tail",
    "tr",
    "wc",
    "cut",
    "sort",
    "hexdump",
    "sha256sum",  # -c: checking /boot's lists by hand, as Heads' shell does
    "sha1sum",
    "sha512sum",
    "md5sum",
    "cmp",
    "diff",
    "od",
    "strings",
    "tee",
    "expr",
    # looking around and unpacking (an initrd, a kernel's config)
    "env",
    "which",
    "stat",
    "readlink",
    "realpath",
    "basename",
    "dirname",
    "gunzip",
    "zcat",
    "cpio",
    # the system
    "dmesg",
    "ps",
    "kill",
    "free",
    "uname",
    "date",
    "insmod",  # a module by its path (the image has no modules.dep for modprobe)
    "lsmod",
    "rmmod",
)
# Kconfig names that are not the applet's name in capitals.
_SYMBOL = {"sh": "SH_IS_ASH"}

# Everything else the build needs, beyond the applets.
FEATURES = (
    "BUSYBOX",  # the `busybox APPLET` form the runtime runs, and --list
    "INSTALL_APPLET_DONT",  # `make install`: the binary only; the image makes the links
    "LFS",  # dd and ls on files and disks over 2 GiB
    "LONG_OPTS",  # GNU habits at the recovery shell (--help, --check)
    "SHOW_USAGE",
    # ash: /init's script and the recovery shell
    "ASH_OPTIMIZE_FOR_SIZE",
    "ASH_ECHO",  # builtins: /init forks for none of them
    "ASH_PRINTF",
    "ASH_TEST",
    "ASH_BASH_COMPAT",  # [[ ]], ${v/a/b}, $'...': the recovery user's habits
    "ASH_JOB_CONTROL",  # Ctrl-C and Ctrl-Z stop the job, not the shell
    "ASH_CMDCMD",
    "ASH_HELP",
    "FEATURE_SH_MATH",  # $((...))
    "FEATURE_SH_MATH_64",
    "FEATURE_SH_READ_FRAC",  # /init: read -t 0.5 for the recovery key
    "FEATURE_EDITING",
    "FEATURE_EDITING_FANCY_PROMPT",
    "FEATURE_EDITING_WINCH",
    "FEATURE_EDITING_ASK_TERMINAL",  # the size of a serial line's terminal
    "FEATURE_TAB_COMPLETION",
    "FEATURE_REVERSE_SEARCH",
    # the runtime's mount options (nodev,nosuid,noexec) are flags, not data
    "FEATURE_MOUNT_FLAGS",
    "FEATURE_MOUNT_LOOP",  # mount -o loop: an ISO image at the recovery shell
    "FEATURE_MOUNT_LOOP_CREATE",
    "FEATURE_MD5_SHA1_SUM_CHECK",  # sha256sum -c
    "FEATURE_FANCY_HEAD",  # head -c
    "FEATURE_FANCY_TAIL",  # tail -c, -f
    "FEATURE_GREP_CONTEXT",
    "FEATURE_LS_FILETYPES",
    "FEATURE_LS_FOLLOWLINKS",
    "FEATURE_LS_RECURSIVE",
    "FEATURE_LS_SORTFILES",
    "FEATURE_LS_TIMESTAMPS",  # ls -l shows dates
    "FEATURE_LS_WIDTH",
    "FEATURE_FIND_TYPE",
    "FEATURE_FIND_PATH",
    "FEATURE_FIND_MAXDEPTH",
    "FEATURE_FIND_NOT",
    "FEATURE_FIND_PAREN",
    "FEATURE_FIND_SIZE",
    "FEATURE_FIND_XDEV",
    "FEATURE_FIND_EXEC",
    "FEATURE_FIND_PRINT0",
    "FEATURE_XARGS_SUPPORT_ZERO_TERM",
    "FEATURE_XARGS_SUPPORT_QUOTES",
    "FEATURE_DD_IBS_OBS",  # conv=, iflag=
    "FEATURE_DD_STATUS",
    "FEATURE_TR_CLASSES",
    "FEATURE_DATE_ISOFMT",  # date -d 'YYYY-MM-DD hh:mm'
    "FEATURE_SORT_BIG",  # sort -k, -t: without it they are ignored, silently
    "FEATURE_HUMAN_READABLE",  # df -h, ls -h
    "FEATURE_FIND_NEWER",
    "FEATURE_DMESG_PRETTY",
    "FEATURE_VI_COLON",  # :w, :q
    "FEATURE_VI_YANKMARK",
    "FEATURE_VI_SEARCH",
    "FEATURE_VI_USE_SIGNALS",
    "FEATURE_VI_DOT_CMD",
    "FEATURE_VI_SETOPTS",
    "FEATURE_VI_SET",
    "FEATURE_VI_WIN_RESIZE",
    "FEATURE_VI_ASK_TERMINAL",
    "FEATURE_VI_UNDO",
    "FEATURE_LESS_REGEXP",  # /search
    "FEATURE_LESS_FLAGS",
    "FEATURE_LESS_WINCH",
    "FEATURE_LESS_ASK_TERMINAL",
)
# What the built busybox may need: the image's glibc, nothing else.
NEEDED = ["libc.so.6"]
LIST_TIMEOUT = 30


class BusyboxBuildError(SourceBuildError):
    """The built busybox is not what the recipe promises."""


def symbol(applet: str) -> str:
    return _SYMBOL.get(applet, applet.upper())


def kconfig() -> str:
    """The recipe's .config lines: the applets, then the features."""
    names = [*(symbol(a) for a in APPLETS), *FEATURES]
    return "".join(f"CONFIG_{name}=y\n" for name in names)


def recipe(lock: Lock) -> Recipe:
    return Recipe(
        pin=lock.deb_source(SOURCE),
        configure_flags=(),
        host_packages=(),  # only libc: no library version to check
        programs=PROGRAMS,
        kconfig=kconfig(),
    )


def listed_applets(binary: Path) -> list[str]:
    """`busybox --list`: the applets the binary has, one a line."""
    try:
        done = subprocess.run(
            [str(binary), "--list"],
            capture_output=True,
            text=True,
            timeout=LIST_TIMEOUT,
            check=True,
        )
    except (OSError, subprocess.SubprocessError) as err:
        raise BusyboxBuildError(f"the built {binary} does not run: {err}") from None
    return done.stdout.split()


def check_built(binary: Path) -> None:
    """Exactly the wanted applets, and no library but libc."""
    listed = set(listed_applets(binary))
    missing = sorted(set(APPLETS) - listed)
    extra = sorted(listed - set(APPLETS))
    if missing or extra:
        raise BusyboxBuildError(
            f"the built {binary} has not the applets of its recipe "
            f"(missing: {', '.join(missing) or 'none'}; extra: {', '.join(extra) or 'none'})"
        )
    names, _ = elf.needed(str(binary))
    if names != NEEDED:
        raise BusyboxBuildError(f"the built {binary} needs {', '.join(names)}, not only libc")


def build_busybox(lock: Lock, cache: Path, builds: Path | None = None) -> Path:
    """The built, stripped bin/busybox, from the cache when these inputs were
    built before. ``builds``: where build results live (default: under ``cache``)."""
    binary = source_build.build(recipe(lock), cache, builds).program(PROGRAM)
    check_built(binary)
    return binary


def main(argv: list[str] | None = None) -> int:
    return recipe_support.command_line(
        argv, "busybox", lambda lock, cache: {PROGRAM: build_busybox(lock, cache)}
    )


if __name__ == "__main__":
    sys.exit(main())
