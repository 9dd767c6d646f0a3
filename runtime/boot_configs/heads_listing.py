"""The boot menu exactly as Heads lists it (../shared/reference/heads-facts.md §5.1, §5.2), line for
line, because Heads' saved default (`kexec_default.N.txt`) names line N of that
list and the entry text on it.

This is deliberately not our faithful parse (grub.py and friends): Heads reads
configurations line by line, keeps what a few prefixes say, and prints entries
through the shell. We reproduce that reading, quirks included (a title outside
double quotes, a last line without a newline being lost, an empty syslinux line
ending an entry), so the lines match byte for byte. The list is used to honour
an existing Heads default and to show what changed; booting uses the entry the
line describes (heads_line.parse_heads_line).

The scan: every file named like the pattern (`grub.cfg` for /boot, `*.cfg` for
USB media) in `find` order, paths with "efi"/"EFI" skipped; each file read by
the GRUB/syslinux line reader; entries whose kernel file is missing dropped
(unless the path still holds a `${...}`). If that finds nothing and there is a
loader/entries directory, the BLS reader runs once per configuration found.
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

from runtime.boot_configs.entry import ParseWarning
from runtime.boot_configs.fs import BootFS
from runtime.boot_configs.heads_shell import (
    collapse,
    cut_chars_from,
    cut_field,
    eval_echo,
    read_lines,
)

#: directories deeper than this are not a boot partition's layout
MAX_SCAN_DEPTH = 16
#: files visited per scan, so a hostile tree cannot keep the firmware busy
MAX_SCAN_FILES = 20_000


def _strip_devices(text: str) -> str:
    """`sed 's/([^)]*)//g'`: GRUB device names like (hd0,gpt2) removed. With
    find() rather than a regex, which would re-scan to the end from every '('
    when no ')' follows (quadratic in a hostile line)."""
    out: list[str] = []
    i = 0
    while (start := text.find("(", i)) >= 0:
        end = text.find(")", start + 1)
        if end < 0:
            break  # no ')' after this '(', so none after any later one either
        out.append(text[i:start])
        i = end + 1
    out.append(text[i:])
    return "".join(out)


class ScanFS(BootFS, Protocol):
    def scan(self, path: str) -> list[tuple[str, bool]] | None: ...


@dataclass
class HeadsListing:
    lines: list[str]
    warnings: list[ParseWarning] = field(default_factory=list)


def _walk(fs: ScanFS, root: str, warnings: list[ParseWarning]) -> Iterator[tuple[str, bool]]:
    """(path, is a directory) below root in `find` order: depth first, a
    directory before its contents, each directory's names in the order the
    file system gives them, symlinked directories not entered."""
    top = fs.scan(root)
    if top is None:
        return
    stack: list[tuple[Iterator[tuple[str, bool]], str]] = [(iter(top), root)]
    visited = 0
    while stack:
        names, directory = stack[-1]
        item = next(names, None)
        if item is None:
            stack.pop()
            continue
        visited += 1
        if visited > MAX_SCAN_FILES:
            warnings.append(ParseWarning(root, 0, "too many files; scan stopped"))
            return
        name, is_dir = item
        path = posixpath.join(directory, name)
        yield path, is_dir
        if is_dir and len(stack) < MAX_SCAN_DEPTH:
            inner = fs.scan(path)
            if inner is not None:
                stack.append((iter(inner), path))


def find_configs(fs: ScanFS, pattern: str) -> tuple[list[str], list[ParseWarning]]:
    """Paths named like pattern, in `find` order, without those with 'efi' or
    'EFI' in them, as Heads skips them."""
    warnings: list[ParseWarning] = []
    found = [
        path
        for path, _ in _walk(fs, "/", warnings)
        if fnmatch.fnmatchcase(posixpath.basename(path), pattern)
        and "efi" not in path
        and "EFI" not in path
    ]
    return found, warnings


# --- kexec-parse-boot: GRUB and syslinux, line by line ------------------------


@dataclass
class _Entry:
    name: str = ""
    kexectype: str = "elf"
    kernel: str = ""
    initrd: str = ""
    #: "|module ..." pieces, joined once at the end (not a growing string)
    modules: list[str] = field(default_factory=list)
    append: str = ""
    line: int = 0  # where the entry starts, for warnings


class _LineReader:
    def __init__(self, fs: BootFS, config: str, warnings: list[ParseWarning]) -> None:
        self.fs = fs
        self.config = config
        self.appenddir = posixpath.dirname(config).rstrip("/")
        self.warnings = warnings
        self.state = "search"
        self.e = _Entry()
        self.lines: list[str] = []
        self.number = 0

    def fix_path(self, path: str) -> str:
        """syslinux names files relative to its configuration's directory;
        GRUB paths are taken as written."""
        if self.state != "syslinux" or path.startswith("/"):
            return path
        return f"{self.appenddir}/{path}"

    def run(self, text: str) -> list[str]:
        for self.number, line in enumerate(read_lines(text), start=1):
            if self.state == "search":
                self.search(line)
            elif self.state == "grub":
                self.grub(line)
            else:
                self.syslinux(line)
        if self.state == "syslinux":
            self.syslinux_end()
        return self.lines

    def search(self, line: str) -> None:
        if line.startswith(("menuentry", "MENUENTRY")):
            self.state = "grub"
            self.e = _Entry(line=self.number)
            self.e.name = cut_field(collapse(line).replace("'", '"'), '"', 2)
        elif line.startswith(("label", "LABEL")):
            self.state = "syslinux"
            self.e = _Entry(line=self.number)
            self.e.name = cut_chars_from(collapse(line), 6)

    def grub(self, line: str) -> None:
        if line == "}":
            self.echo_entry()
            self.state = "search"
            return
        trimcmd = collapse(line)
        cmd = cut_field(trimcmd, " ", 1)
        val = cut_field(trimcmd, " ", 2, to_end=True)
        e = self.e
        if cmd.startswith("multiboot"):
            e.kexectype = "xen"
            e.kernel = val
        elif cmd.startswith("module"):
            if val.startswith("--nounzip"):
                val = cut_field(val, " ", 2, to_end=True)
            e.modules.append("|module " + self.fix_path(val))
        elif cmd.startswith("linux"):
            e.kernel = cut_field(collapse(_strip_devices(trimcmd)), " ", 2)
            append = cut_field(trimcmd, " ", 3, to_end=True) if " " in trimcmd else ""
            # GRUB's '---' separator is no kernel parameter
            append = re.sub(r"[ \t]*---[ \t]*", " ", append).strip(" ")
            e.append = append
        elif cmd.startswith("initrd"):
            e.initrd = _strip_devices(val)

    def syslinux(self, line: str) -> None:
        if line == "":
            self.syslinux_end()
            return
        if line.startswith(("label", "LABEL")):
            self.syslinux_end()
            self.search(line)
            return
        trimcmd = collapse(line)
        val = cut_field(trimcmd, " ", 2, to_end=True)
        e = self.e
        if trimcmd.startswith(("menu", "MENU")):
            if cut_field(trimcmd, " ", 2) in ("label", "LABEL"):
                e.name = cut_chars_from(trimcmd, 11).replace("^", "")
        elif trimcmd.startswith(("linux", "LINUX", "kernel", "KERNEL")):
            if val.endswith("mboot.c32"):
                e.kexectype = "xen"
            elif val.endswith(".c32"):
                self.state = "search"  # a menu module, not a kernel: no entry
            else:
                e.kernel = val
        elif trimcmd.startswith(("initrd", "INITRD")):
            e.initrd = val
        elif trimcmd.startswith(("append", "APPEND")):
            if e.kexectype in ("multiboot", "xen"):
                for piece in val.replace(" --- ", "\n").split("\n"):
                    if not e.kernel:
                        e.kernel = piece
                    else:
                        e.modules.append("|module " + self.fix_path(piece))
            else:
                e.append = val

    def syslinux_end(self) -> None:
        e = self.e
        if not e.initrd:
            kept: list[str] = []
            for param in collapse(e.append).split(" ") if e.append.strip() else []:
                if param.startswith("initrd="):
                    e.initrd = param[len("initrd=") :]
                else:
                    kept.append(param)
            e.append = " ".join(kept)
        self.echo_entry()
        self.state = "search"

    def echo_entry(self) -> None:
        e = self.e
        if not e.kernel:
            return
        kernel = self.fix_path(e.kernel)
        first = kernel.split(" ")[0]
        if "${" not in first and not self.fs.exists(first):
            # Heads drops what it could not boot; say so, unlike Heads
            self.warnings.append(
                ParseWarning(self.config, e.line, f"{e.name!r}: kernel {first} missing")
            )
            return
        parts = [f"{e.name.replace('|', '')}|{e.kexectype}|kernel {kernel}"]
        if e.kexectype == "elf":
            for init in collapse(e.initrd.replace(",", " ")).split(" ") if e.initrd else []:
                if init:
                    parts.append("|initrd " + self.fix_path(init))
            if e.append:
                parts.append("|append " + e.append)
        elif e.kexectype in ("multiboot", "xen"):
            parts.extend(e.modules)
        echoed = eval_echo("".join(parts))
        for flag, why in (
            (echoed.ran_command, "holds a shell command Heads would run; left out of the line"),
            (echoed.failed, "Heads' shell cannot print this entry; its line is empty"),
            (echoed.approximate, "uses shell syntax Heads would expand; line approximated"),
        ):
            if flag:
                self.warnings.append(ParseWarning(self.config, e.line, f"{e.name!r}: {why}"))
        self.lines.append(echoed.text)


def parse_boot_lines(fs: BootFS, config: str) -> tuple[list[str], list[ParseWarning]]:
    """kexec-parse-boot's output for one configuration file."""
    warnings: list[ParseWarning] = []
    text = fs.read_text(config)
    if text is None:
        return [], [ParseWarning(config, 0, "unreadable")]
    return _LineReader(fs, config, warnings).run(text), warnings


# --- kexec-parse-bls ----------------------------------------------------------


def _kernelopts(fs: BootFS, config: str) -> str:
    """`set default_kernelopts` in the configuration, overridden by a
    `kernelopts=` line in the grubenv beside it."""
    opts = ""
    text = fs.read_text(config) or ""
    for line in text.split("\n"):
        if "set default_kernelopts" in line:
            opts = cut_field(line.replace("'", '"'), '"', 2)
            break
    env = fs.read_text(posixpath.join(posixpath.dirname(config), "grubenv"))
    for line in (env or "").split("\n"):
        if line.startswith("kernelopts"):
            opts = cut_field(line.replace("@", "_"), "=", 2, to_end=True)
            break
    return opts


def _bls_files(fs: ScanFS, blsdir: str) -> list[str]:
    return [path for path, is_dir in _walk(fs, blsdir, []) if not is_dir and path.endswith(".conf")]


def parse_bls_lines(fs: ScanFS, config: str, blsdir: str) -> list[str]:
    """kexec-parse-bls's output: one line per entry file, in `find` order."""
    appenddir = posixpath.dirname(config).rstrip("/")
    kernelopts = _kernelopts(fs, config)
    lines: list[str] = []

    def fix(path: str) -> str:
        return path if path.startswith("/") else f"{appenddir}/{path}"

    for path in _bls_files(fs, blsdir):
        name = kernel = initrd = ""
        append = kernelopts
        for line in read_lines(fs.read_text(path) or "", raw=True):
            trimcmd = re.sub(" +", " ", line.replace("\t", " "))
            cmd = cut_field(trimcmd, " ", 1)
            val = cut_field(trimcmd, " ", 2, to_end=True)
            if cmd == "title":
                name = val
            elif cmd.startswith("linux"):
                kernel = val
            elif cmd.startswith("initrd"):
                initrd = val
            elif cmd == "options":
                append = val.replace("$kernelopts", kernelopts)
        if not kernel:
            continue
        entry = f"{name}|elf|kernel {fix(kernel)}"
        if initrd:
            entry += "|initrd " + fix(initrd)
        if append:
            entry += "|append " + append
        lines.append(entry)
    return lines


# --- the whole scan -----------------------------------------------------------


def heads_listing(fs: ScanFS, pattern: str = "grub.cfg", unique: bool = False) -> HeadsListing:
    """Heads' kexec_menu.txt for the tree in fs: `grub.cfg` for an installed
    /boot, `*.cfg` and unique=True for USB media (`sort -r | uniq`)."""
    configs, warnings = find_configs(fs, pattern)
    lines: list[str] = []
    for config in configs:
        found, file_warnings = parse_boot_lines(fs, config)
        lines.extend(found)
        warnings.extend(file_warnings)
    if not lines:
        for blsdir in ("/loader/entries", "/boot/loader/entries"):
            if fs.scan(blsdir) is not None:
                for config in configs:
                    lines.extend(parse_bls_lines(fs, config, blsdir))
                break
    if unique:
        # sort -r | uniq with no locale: byte order, adjacent repeats dropped
        ordered = sorted(lines, key=lambda s: s.encode(), reverse=True)
        lines = [s for i, s in enumerate(ordered) if i == 0 or ordered[i - 1] != s]
    return HeadsListing(lines, warnings)
