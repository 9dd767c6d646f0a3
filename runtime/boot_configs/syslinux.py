"""syslinux / isolinux / extlinux configurations -> BootEntry values.

What Heads' scan reads (../shared/reference/heads-facts.md §5.1): LABEL starts an entry,
MENU LABEL names it,
KERNEL/LINUX give the kernel (mboot.c32 makes a multiboot entry from APPEND's
' --- ' parts; other COM32 modules are skipped), INITRD and APPEND's initrd=
give initrds. On top of that, as syslinux itself does: INCLUDE (depth-limited),
DEFAULT / MENU DEFAULT, a global APPEND inherited by labels ("APPEND -" clears
it), CONFIG, MENU BEGIN/END submenus and TEXT ... ENDTEXT blocks. Relative
paths are taken from the working directory: the first configuration's
directory (or CONFIG's second argument), never the included file's.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field, replace

from runtime.boot_configs.entry import BootEntry, EntryKind, Module, ParseWarning
from runtime.boot_configs.fs import BootFS, normalize

MAX_INCLUDE_DEPTH = 16  # syslinux has no limit; a loop must not hang the menu
#: Label types that are not kernels at all: nothing Heads can kexec.
NON_KERNEL_KEYWORDS = frozenset({"localboot", "boot", "bss", "pxe", "fdimage", "comboot", "com32"})
MULTIBOOT_SEPARATOR = " --- "


@dataclass
class _Label:
    label: str
    source: str
    line: int
    menu_depth: int
    menu_label: str | None = None
    kernel: str | None = None
    kernel_keyword: str = "kernel"
    initrds: list[str] = field(default_factory=list)
    append: str | None = None  # None: inherit the global APPEND
    menu_default: bool = False
    skip_reason: str | None = None


@dataclass
class _State:
    fs: BootFS
    workdir: str
    labels: list[_Label] = field(default_factory=list)
    warnings: list[ParseWarning] = field(default_factory=list)
    current: _Label | None = None
    menu_depth: int = 0
    global_append: str = ""
    default_label: str | None = None
    open_files: list[str] = field(default_factory=list)

    def warn(self, source: str, line: int, message: str) -> None:
        self.warnings.append(ParseWarning(source, line, message))


def _resolve(workdir: str, path: str) -> str | None:
    # syslinux paths may be absolute (from the root) or relative to the workdir
    return normalize(path if path.startswith("/") else posixpath.join(workdir, path))


def _split_keyword(line: str) -> tuple[str, str]:
    parts = line.split(None, 1)
    keyword = parts[0].lower()
    return keyword, parts[1].strip() if len(parts) > 1 else ""


def _parse_file(state: _State, path: str, depth: int) -> None:
    if depth > MAX_INCLUDE_DEPTH:
        state.warn(path, 0, f"includes nested deeper than {MAX_INCLUDE_DEPTH}; not read")
        return
    if path in state.open_files:
        state.warn(path, 0, "includes itself; not read again")
        return
    text = state.fs.read_text(path)
    if text is None:
        state.warn(path, 0, "cannot be read")
        return
    state.open_files.append(path)
    try:
        _parse_lines(state, path, text.splitlines(), depth)
    finally:
        state.open_files.pop()


def _parse_lines(state: _State, path: str, lines: list[str], depth: int) -> None:
    in_text = False
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if in_text:
            in_text = line.lower() != "endtext"
            continue
        if not line or line.startswith("#"):
            continue
        keyword, arg = _split_keyword(line)
        if keyword == "text":
            in_text = True  # help text: its lines are prose, not directives
        elif keyword == "menu":
            _menu(state, path, number, arg, depth)
        elif keyword == "include":
            _include(state, path, number, arg, depth)
        elif keyword == "config":
            if _config(state, path, number, arg, depth):
                return  # syslinux leaves this file for the new one
        else:
            _directive(state, path, number, keyword, arg)


def _include(state: _State, path: str, number: int, arg: str, depth: int) -> None:
    name = arg.split()[0] if arg else ""
    target = _resolve(state.workdir, name) if name else None
    if target is None:
        state.warn(path, number, f"bad INCLUDE {arg!r}")
        return
    _parse_file(state, target, depth + 1)


def _config(state: _State, path: str, number: int, arg: str, depth: int) -> bool:
    if state.current is not None:
        # inside a label, CONFIG is a label type: it boots another menu, not a kernel
        state.current.skip_reason = "runs another configuration (CONFIG), not a kernel"
        return False
    words = arg.split()
    target = _resolve(state.workdir, words[0]) if words else None
    if target is None:
        state.warn(path, number, f"bad CONFIG {arg!r}")
        return False
    new_dir = _resolve(state.workdir, words[1]) if len(words) > 1 else None
    state.workdir = new_dir or posixpath.dirname(target)
    _parse_file(state, target, depth + 1)
    return True


def _menu(state: _State, path: str, number: int, arg: str, depth: int) -> None:
    sub, rest = _split_keyword(arg) if arg else ("", "")
    if sub == "label":
        if state.current is not None:
            state.current.menu_label = rest
        # else: the label of a MENU BEGIN submenu, not of a boot entry
    elif sub == "default":
        if state.current is not None:
            state.current.menu_default = True
    elif sub == "begin":
        state.current = None
        state.menu_depth += 1
    elif sub == "end":
        state.current = None
        state.menu_depth = max(0, state.menu_depth - 1)
    elif sub == "include":
        _include(state, path, number, rest, depth)
    # every other MENU directive is about looks


def _directive(state: _State, path: str, number: int, keyword: str, arg: str) -> None:
    cur = state.current
    if keyword == "label":
        state.current = _Label(arg, path, number, state.menu_depth)
        state.labels.append(state.current)
    elif keyword == "default":
        state.default_label = arg.split()[0] if arg else None
    elif keyword in ("kernel", "linux"):
        if cur is None:
            state.warn(path, number, f"{keyword.upper()} outside a LABEL; ignored")
        else:
            cur.kernel, cur.kernel_keyword = arg, keyword
    elif keyword == "initrd":
        if cur is None:
            state.warn(path, number, "INITRD outside a LABEL; ignored")
        else:
            cur.initrds.extend(p for p in (s.strip() for s in arg.split(",")) if p)
    elif keyword == "append":
        if cur is None:
            state.global_append = "" if arg == "-" else arg
        else:
            cur.append = "" if arg == "-" else arg
    elif keyword in NON_KERNEL_KEYWORDS and cur is not None:
        cur.skip_reason = f"{keyword.upper()} is not a kernel Heads can boot"
    # anything else (PROMPT, TIMEOUT, SAY, IPAPPEND, PATH, UI, ...) does not
    # change what boots; PATH only locates COM32 modules


def _split_initrd_args(cmdline: str) -> tuple[list[str], str]:
    """initrd=a,b inside APPEND: syslinux loads them and drops the word."""
    initrds: list[str] = []
    kept: list[str] = []
    for word in cmdline.split():
        if word.startswith("initrd="):
            initrds.extend(p for p in word[len("initrd=") :].split(",") if p)
        else:
            kept.append(word)
    return initrds, " ".join(kept)


def _build(state: _State, lab: _Label) -> BootEntry | str:
    """The entry, or why the label cannot be one."""
    if lab.skip_reason:
        return lab.skip_reason
    if not lab.kernel:
        return "has no kernel"
    kernel_word = lab.kernel.split()[0]
    # KERNEL may carry arguments after the file name, like APPEND's
    inline = lab.kernel[len(kernel_word) :].strip()
    append = state.global_append if lab.append is None else lab.append
    args = " ".join(p for p in (inline, append) if p)
    name = lab.menu_label if lab.menu_label is not None else lab.label
    base = posixpath.basename(kernel_word).lower()
    if base.endswith(".c32") and base != "mboot.c32":
        return f"runs the COM32 module {kernel_word!r}, not a kernel"
    if base.endswith(".cfg") and lab.kernel_keyword == "kernel":
        return "runs another configuration, not a kernel"
    if base == "mboot.c32":
        return _build_multiboot(state, lab, name, args)
    kernel = _resolve(state.workdir, kernel_word)
    if kernel is None:
        return f"kernel path {kernel_word!r} leaves the root"
    from_append, cmdline = _split_initrd_args(args)
    initrds: list[str] = []
    for p in from_append + lab.initrds:
        resolved = _resolve(state.workdir, p)
        if resolved is None:
            return f"initrd path {p!r} leaves the root"
        initrds.append(resolved)
    return BootEntry(
        name=name,
        kind=EntryKind.LINUX,
        kernel=kernel,
        initrds=tuple(initrds),
        cmdline=cmdline,
        source=lab.source,
        line=lab.line,
    )


def _build_multiboot(state: _State, lab: _Label, name: str, args: str) -> BootEntry | str:
    parts = [p.split() for p in f" {args} ".split(MULTIBOOT_SEPARATOR)]
    if not parts or not parts[0]:
        return "mboot.c32 without a kernel in APPEND"
    paths: list[str] = []
    for words in parts:
        if not words:
            return "empty part in mboot.c32's APPEND"
        resolved = _resolve(state.workdir, words[0])
        if resolved is None:
            return f"path {words[0]!r} leaves the root"
        paths.append(resolved)
    modules = tuple(Module(p, " ".join(w[1:])) for p, w in zip(paths[1:], parts[1:], strict=True))
    return BootEntry(
        name=name,
        kind=EntryKind.MULTIBOOT,
        kernel=paths[0],
        cmdline=" ".join(parts[0][1:]),
        modules=modules,
        initrds=(),
        source=lab.source,
        line=lab.line,
    )


def _check_files(fs: BootFS, entry: BootEntry) -> list[str]:
    files = [entry.kernel, *entry.initrds, *(m.path for m in entry.modules)]
    return [f"{p} is missing" for p in files if not fs.exists(p)]


def _pick_default(state: _State, entries: list[tuple[_Label, BootEntry]]) -> int | None:
    # MENU DEFAULT in the outermost menu is what the menu shows selected
    marked = [(lab.menu_depth, i) for i, (lab, _) in enumerate(entries) if lab.menu_default]
    if marked:
        return min(marked)[1]
    wanted = state.default_label
    if wanted:
        for i, (lab, _) in enumerate(entries):
            if lab.label == wanted:
                return i
        for i, (lab, _) in enumerate(entries):
            if lab.label.lower() == wanted.lower():
                return i
    return None


def parse_syslinux(fs: BootFS, path: str) -> tuple[list[BootEntry], list[ParseWarning]]:
    """Entries of the configuration at `path` (root-relative), in menu order."""
    start = normalize(path)
    if start is None:
        return [], [ParseWarning(path, 0, "path leaves the root")]
    state = _State(fs=fs, workdir=posixpath.dirname(start))
    _parse_file(state, start, 0)
    built: list[tuple[_Label, BootEntry]] = []
    for lab in state.labels:
        result = _build(state, lab)
        if isinstance(result, str):
            state.warn(lab.source, lab.line, f"label {lab.label!r} {result}; skipped")
            continue
        problems = _check_files(fs, result)
        for problem in problems:
            state.warn(lab.source, lab.line, f"label {lab.label!r}: {problem}")
        if problems:
            result = replace(result, files_present=False, warnings=tuple(problems))
        built.append((lab, result))
    default = _pick_default(state, built)
    entries = [
        replace(entry, rank=i, is_default=i == default) for i, (_, entry) in enumerate(built)
    ]
    return entries, state.warnings
