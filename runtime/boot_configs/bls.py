"""Boot Loader Specification type 1 entries (/loader/entries/*.conf), the way
Fedora and RHEL lay out /boot, as Heads' kexec-parse-bls.sh reads them.

Keys per the spec: title, version, machine-id, sort-key, linux, initrd (several),
options (several, joined), efi, devicetree, architecture. Fedora's entries say
`options $kernelopts`; the value comes from grubenv, so `$var` references are
expanded from the first grubenv found. Menu order follows the spec's sort rules;
the default is grubenv's saved_entry, else loader.conf's `default` glob, else
the first entry.
"""

from __future__ import annotations

import fnmatch
import functools
import posixpath
import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from runtime.boot_configs.entry import BootEntry, EntryKind, ParseWarning
from runtime.boot_configs.grubenv import parse_grubenv

DEFAULT_GRUBENV_PATHS = ("/grub2/grubenv", "/grub/grubenv", "/boot/grub2/grubenv")

_MULTI_KEYS = frozenset({"initrd", "options"})
_KNOWN_KEYS = frozenset(
    {
        "title",
        "version",
        "machine-id",
        "sort-key",
        "linux",
        "initrd",
        "efi",
        "options",
        "devicetree",
        "devicetree-overlay",
        "architecture",
    }
)
_VAR = re.compile(r"\$(?:\{([A-Za-z0-9_]*)\}|([A-Za-z0-9_]+))")
# Boot counting renames entry files to NAME+LEFT-DONE.conf; the entry id is NAME.
_TRIES = re.compile(r"\+\d+(?:-\d+)?$")


class ReadOnlyFs(Protocol):
    """The mounted /boot as the parser sees it; paths start with '/'."""

    def read_text(self, path: str) -> str | None: ...
    def exists(self, path: str) -> bool: ...
    def listdir(self, path: str) -> list[str] | None: ...


# --- version comparison (the UAPI version format spec, as the BLS cites it) ---

_VALID = frozenset(string.ascii_letters + string.digits + "~-^.")


def _run(s: str, i: int, chars: str) -> str:
    j = i
    while j < len(s) and s[j] in chars:
        j += 1
    return s[i:j]


def vercmp(a: str, b: str) -> int:
    """-1, 0 or 1 as version a is older, equal or newer than b.

    Characters other than ASCII alphanumerics and '~-^.' are ignored. '~' sorts
    before everything, even the end (1~rc1 < 1); the end sorts before anything
    else; then '-' < '^' < '.' < the rest; digit runs compare as numbers and
    are newer than letter runs; letter runs compare as strings."""
    i = j = 0
    while True:
        while i < len(a) and a[i] not in _VALID:
            i += 1
        while j < len(b) and b[j] not in _VALID:
            j += 1
        ca = a[i] if i < len(a) else ""
        cb = b[j] if j < len(b) else ""
        special = next((c for c in "~" if c in (ca, cb)), None)
        if special is None and (not ca or not cb):
            return (ca != "") - (cb != "")
        if special is None:
            special = next((c for c in "-^." if c in (ca, cb)), None)
        if special is not None:
            if ca != cb:
                return -1 if ca == special else 1
            i, j = i + 1, j + 1
            continue
        if ca in string.digits or cb in string.digits:
            ra, rb = _run(a, i, string.digits), _run(b, j, string.digits)
            i, j = i + len(ra), j + len(rb)
            na, nb = ra.lstrip("0"), rb.lstrip("0")
            # An empty run (letters on that side) is older than any number.
            ka, kb = (len(ra) > 0, len(na), na), (len(rb) > 0, len(nb), nb)
        else:
            ka_s, kb_s = _run(a, i, string.ascii_letters), _run(b, j, string.ascii_letters)
            i, j = i + len(ka_s), j + len(kb_s)
            ka, kb = (True, 0, ka_s), (True, 0, kb_s)
        if ka != kb:
            return -1 if ka < kb else 1


# --- one entry file ---


@dataclass
class _Conf:
    entry_id: str
    source: str
    single: dict[str, str] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)  # key -> line, for warnings
    initrds: list[tuple[int, str]] = field(default_factory=list)
    options: list[tuple[int, str]] = field(default_factory=list)


def _read_conf(text: str, entry_id: str, source: str) -> tuple[_Conf, list[ParseWarning]]:
    conf = _Conf(entry_id, source)
    warnings: list[ParseWarning] = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 1)
        key, value = parts[0], (parts[1].strip() if len(parts) > 1 else "")
        if key not in _KNOWN_KEYS:
            continue  # the spec says unknown keys are ignored
        if not value:
            warnings.append(ParseWarning(source, lineno, f"'{key}' without a value"))
        elif key == "initrd":
            conf.initrds.append((lineno, value))
        elif key == "options":
            conf.options.append((lineno, value))
        else:
            conf.single[key] = value  # a repeated single key: the last one wins
            conf.lines[key] = lineno
    return conf, warnings


def _expand(
    value: str, env: dict[str, str], where: tuple[str, int], warnings: list[ParseWarning]
) -> str:
    def sub(m: re.Match[str]) -> str:
        name = m.group(1) if m.group(1) is not None else m.group(2)
        if name in env:
            return env[name]
        # GRUB expands an unset variable to nothing; say so, it often hides a bug.
        warnings.append(ParseWarning(*where, f"${name} is not set in grubenv"))
        return ""

    return _VAR.sub(sub, value)


def _has_line_break(text: str) -> bool:
    """Any character str.splitlines() breaks on: a warning naming it would not be one line."""
    return "".join(text.splitlines()) != text


def _abs(path: str) -> str:
    # Spec paths are relative to the partition root, whether or not they start with '/'.
    return posixpath.normpath("/" + path.lstrip("/")).replace("//", "/")


def _to_entry(
    conf: _Conf, env: dict[str, str], fs: ReadOnlyFs
) -> tuple[BootEntry | None, list[ParseWarning]]:
    warnings: list[ParseWarning] = []
    linux = conf.single.get("linux")
    if linux is None:
        what = "an EFI program only" if "efi" in conf.single else "no 'linux' key"
        warnings.append(ParseWarning(conf.source, 0, f"skipped: {what}"))
        return None, warnings
    linux_line = conf.lines.get("linux", 0)
    linux = _expand(linux, env, (conf.source, linux_line), warnings).strip()
    if not linux:
        warnings.append(ParseWarning(conf.source, linux_line, "skipped: 'linux' is empty"))
        return None, warnings
    if _has_line_break(linux):  # grubenv values may hold an escaped newline
        message = f"skipped: 'linux' {linux!r} has a line break"
        warnings.append(ParseWarning(conf.source, linux_line, message))
        return None, warnings
    kernel = _abs(linux)
    initrd_lines = [
        (_abs(p), line)
        for line, value in conf.initrds
        for p in _expand(value, env, (conf.source, line), warnings).split()  # $tuned_initrd
    ]
    initrds = tuple(p for p, _ in initrd_lines)
    options = " ".join(_expand(o, env, (conf.source, line), warnings) for line, o in conf.options)
    cmdline = " ".join(options.split())
    title = conf.single.get("title", "")
    version = conf.single.get("version", "")
    name = title or conf.entry_id
    if version and version not in name:
        name = f"{name} {version}"  # the spec's way to tell same-titled entries apart
    missing = [(p, line) for p, line in [(kernel, linux_line), *initrd_lines] if not fs.exists(p)]
    warnings.extend(ParseWarning(conf.source, line, f"{p} is missing") for p, line in missing)
    entry = BootEntry(
        name=name,
        kind=EntryKind.LINUX,
        kernel=kernel,
        initrds=initrds,
        cmdline=cmdline,
        source=conf.source,
        line=1,
        files_present=not missing,
        warnings=tuple(w.message for w in warnings),
    )
    return entry, warnings


# --- order and default ---


def _compare(a: _Conf, b: _Conf) -> int:
    ka, kb = a.single.get("sort-key"), b.single.get("sort-key")
    if ka is not None and kb is not None:
        for x, y in ((ka, kb), (a.single.get("machine-id", ""), b.single.get("machine-id", ""))):
            if x != y:
                return -1 if x < y else 1
        by_version = vercmp(b.single.get("version", ""), a.single.get("version", ""))
        if by_version:
            return by_version
    elif ka is not None or kb is not None:
        return -1 if ka is not None else 1
    # Last resort: the file name, newest version first.
    return vercmp(b.entry_id, a.entry_id) or (a.source > b.source) - (a.source < b.source)


def _loader_default(fs: ReadOnlyFs, loader_conf: str) -> str | None:
    text = fs.read_text(loader_conf)
    pattern = None
    for line in (text or "").splitlines():
        parts = line.strip().split(None, 1)
        if len(parts) == 2 and parts[0] == "default":
            pattern = parts[1].strip()
    return pattern


def _pick_default(
    confs: Sequence[_Conf],
    saved: str | None,
    pattern: str | None,
    warnings: list[ParseWarning],
    loader_conf: str,
) -> int:
    if saved:
        for i, c in enumerate(confs):
            if saved in (c.entry_id, c.single.get("title")):
                return i
        warnings.append(ParseWarning("grubenv", 0, f"saved_entry {saved!r} matches no entry"))
    if pattern and not pattern.startswith("@"):  # '@saved' and friends are EFI variables
        for i, c in enumerate(confs):
            if fnmatch.fnmatchcase(c.entry_id, pattern) or fnmatch.fnmatchcase(
                c.entry_id + ".conf", pattern
            ):
                return i
        warnings.append(ParseWarning(loader_conf, 0, f"default {pattern!r} matches no entry"))
    return 0


def _grubenv(fs: ReadOnlyFs, paths: Sequence[str]) -> tuple[dict[str, str], list[ParseWarning]]:
    for path in paths:
        text = fs.read_text(path)
        if text is not None:
            return parse_grubenv(text, path)
    return {}, []


def parse_bls(
    fs: ReadOnlyFs,
    entries_dir: str = "/loader/entries",
    grubenv_paths: Sequence[str] = DEFAULT_GRUBENV_PATHS,
    variables: Mapping[str, str] | None = None,
) -> tuple[list[BootEntry], list[ParseWarning]]:
    """Every entry in menu order (rank 0 first), and warnings for what was skipped.

    variables: GRUB's environment when its blscfg command reads the entries
    (grub.cfg's `set`s and the grubenv it loaded); they win over the grubenv
    file read here."""
    warnings: list[ParseWarning] = []
    names = fs.listdir(entries_dir)
    if not names:
        return [], warnings
    env, env_warnings = _grubenv(fs, grubenv_paths)
    warnings.extend(env_warnings)
    env.update(variables or {})
    if "kernelopts" not in env and env.get("default_kernelopts"):
        # Fedora's grub.cfg sets default_kernelopts for entries whose grubenv
        # lost kernelopts (its blscfg falls back to it, as Heads does)
        env["kernelopts"] = env["default_kernelopts"]
    confs: list[_Conf] = []
    for name in sorted(n for n in names if n.endswith(".conf") and "/" not in n):
        path = posixpath.join(entries_dir, name)
        if _has_line_break(name):  # a hostile /boot can name files so
            warnings.append(ParseWarning(entries_dir, 0, f"skipped {name!r}: line break in name"))
            continue
        text = fs.read_text(path)
        if text is None:
            warnings.append(ParseWarning(path, 0, "unreadable"))
            continue
        conf, conf_warnings = _read_conf(text, _TRIES.sub("", name[: -len(".conf")]), path)
        warnings.extend(conf_warnings)
        confs.append(conf)
    confs.sort(key=functools.cmp_to_key(_compare))
    entries: list[BootEntry] = []
    kept: list[_Conf] = []
    for conf in confs:
        entry, entry_warnings = _to_entry(conf, env, fs)
        warnings.extend(entry_warnings)
        if entry is not None:
            entries.append(replace(entry, rank=len(entries)))
            kept.append(conf)
    if not entries:
        return entries, warnings
    loader_conf = posixpath.join(posixpath.dirname(entries_dir.rstrip("/")), "loader.conf")
    default = _pick_default(
        kept, env.get("saved_entry"), _loader_default(fs, loader_conf), warnings, loader_conf
    )
    entries[default] = replace(entries[default], is_default=True)
    return entries, warnings
