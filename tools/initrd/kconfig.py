"""Kconfig's .config as text, for recipes that list exactly the options they
want (busybox): every other option turned off, and the wanted lines Kconfig
did not keep named (tools/initrd/source_build.py runs the make steps)."""

from __future__ import annotations


def kconfig_over(every: str, wanted: str) -> str:
    """A complete .config: ``wanted``'s lines, and every other option that
    ``every`` (allyesconfig's output) lists turned off, or at its default when
    it is a number or a string. (busybox's allnoconfig ignores
    KCONFIG_ALLCONFIG's y lines, and oldconfig would answer new options with
    their defaults, mostly y.)"""
    lines = {line.split("=", 1)[0]: line for line in wanted.splitlines() if "=" in line}
    out = []
    for line in every.splitlines():
        name, equals, value = line.partition("=")
        if line.startswith("# CONFIG_") and line.endswith(" is not set"):
            name, value = line.split()[1], "n"
        elif not equals or not name.startswith("CONFIG_"):
            out.append(line)
            continue
        if name in lines:
            out.append(lines.pop(name))
        else:
            out.append(f"# {name} is not set" if value in ("y", "m", "n") else line)
    # Names no option has: left for Kconfig to drop and kconfig_dropped to name.
    return "\n".join([*out, *lines.values()]) + "\n"


def kconfig_dropped(wanted: str, config: str) -> list[str]:
    """The lines of ``wanted`` that Kconfig did not keep in ``config``: an unmet
    dependency or a misspelt name, which would otherwise build silently without."""
    kept = set(config.splitlines())
    return [line for line in wanted.splitlines() if line.strip() and line not in kept]
