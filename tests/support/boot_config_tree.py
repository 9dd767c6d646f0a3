"""A boot configuration in memory for the parsers' unit tests (grub, syslinux):
the configuration file, the files a test adds by keyword, and placeholders
for the kernels and initrds it names."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from runtime.boot_configs.entry import BootEntry, ParseWarning
from runtime.boot_configs.fs import BootFS, MemoryFS

Parser = Callable[[BootFS, str], tuple[list[BootEntry], list[ParseWarning]]]


def config_tree(
    config_path: str, config: str, placeholders: Iterable[str], extra: Mapping[str, str]
) -> MemoryFS:
    """``config`` at ``config_path``; each keyword of ``extra`` a file whose
    path is its name with "__" for "/" and "_DOT_" for "." (boot__x_DOT_cfg:
    /boot/x.cfg); "x" at every path of ``placeholders`` not given otherwise."""
    files = {config_path: config}
    files.update({"/" + k.replace("__", "/").replace("_DOT_", "."): v for k, v in extra.items()})
    for path in placeholders:
        files.setdefault(path, "x")
    return MemoryFS(files)


def parsed(parser: Parser, fs: BootFS, config_path: str) -> tuple[list[BootEntry], list[str]]:
    """The entries ``parser`` finds, and its warnings as the owner reads them."""
    entries, warnings = parser(fs, config_path)
    return entries, [str(w) for w in warnings]
