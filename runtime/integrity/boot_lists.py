"""The signed files in /boot, byte for byte as Heads writes and reads them
(../shared/reference/heads-facts.md §3), so a /boot signed by Heads verifies here and ours
under Heads:

  kexec_hashes.txt   `sha256sum` lines `<hex>  ./rel/path` for every regular file
                     (symlinks and kexec* paths left out)
  kexec_tree.txt     every path (`./` first, directories and symlinks too), sorted,
                     each ended by a NUL: it catches added files
  kexec_rollback.txt `<hex>  /tmp/counter-<id>`: sha256 of the counter's line
  kexec.sig          an armored detached signature over the `sha256sum kexec*.txt`
                     listing (names relative, in the shell's glob order)
  kexec_symlinks.txt (ours, when /boot has symlinks) every symlink and its target,
                     `./rel` NUL `target` NUL, sorted: Heads' lists name a symlink
                     but never sign where it points. Heads' own check accepts it:
                     it is one more kexec*.txt under the signature.

Pure: paths are `str` as os.fsdecode gives them (undecodable bytes survive as
surrogates and go back to the same bytes with os.fsencode).
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

HASHES_FILE = "kexec_hashes.txt"
TREE_FILE = "kexec_tree.txt"
SIGNATURE_FILE = "kexec.sig"
ROLLBACK_FILE = "kexec_rollback.txt"
DEFAULT_HASHES_FILE = "kexec_default_hashes.txt"
PRIMARY_HANDLE_HASH_FILE = "kexec_primhdl_hash.txt"
#: the files kexec.sig covers: `sha256sum kexec*.txt`
SIGNED_GLOB = "kexec*.txt"
#: OS package hooks drop these before an update is signed (Debian's heads hooks)
PACKAGE_TRIGGER_GLOB = "kexec_package_trigger_*.txt"
LINKS_FILE = "kexec_symlinks.txt"
#: where a signing is staged (signed_state_commit.py); settled at the next start
PENDING_DIR = "kexec.next.d"

_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
#: where Heads keeps the counter's line while it checks kexec_rollback.txt
#: (a name inside a file's text: nothing is written there)
COUNTER_FILE_DIR = "/tmp"  # noqa: S108


class ListFormatError(ValueError):
    """A list file that is not in the format Heads writes."""


def is_signed_state_path(rel: str) -> bool:
    """`find ./ ! -path './kexec*'` leaves these out of both lists: the signed
    state cannot cover itself. `*` crosses '/', so a kexec* directory's
    contents are left out too."""
    return rel.startswith("./kexec")


def is_state_file_name(name: str) -> bool:
    """A top-level name the signed state may hold: `kexec*.txt` (all covered by
    kexec.sig) and kexec.sig itself, named so a sha256sum listing can hold it.
    Anything else under ./kexec* is no firmware's: nothing reads it and no
    signature covers it."""
    if not name.isprintable() or any(c in name for c in "\\/") or len(os.fsencode(name)) > 255:
        return False
    return name == SIGNATURE_FILE or fnmatch.fnmatchcase(name, SIGNED_GLOB)


def sort_key(path: str) -> bytes:
    """`sort` without a locale (as in the firmware): byte order."""
    return os.fsencode(path)


@dataclass(frozen=True)
class SumLine:
    digest: str  # 64 lowercase hex digits
    name: str


def _unescape(name: str) -> str:
    """GNU sha256sum's escaped names (a line starting with '\\')."""
    out: list[str] = []
    i = 0
    while i < len(name):
        c = name[i]
        if c == "\\" and i + 1 < len(name):
            nxt = name[i + 1]
            out.append({"\\": "\\", "n": "\n", "r": "\r"}.get(nxt, "\\" + nxt))
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


#: more lines or paths than this in one list is no /boot's (the scan stops at 200k)
MAX_LIST_ENTRIES = 250_000


def parse_sums(data: bytes, source: str, max_entries: int = MAX_LIST_ENTRIES) -> list[SumLine]:
    """`sha256sum` output: `<hex>  name` (text mode) or `<hex> *name` (binary),
    a leading backslash marking GNU's escaped names. Blank lines are refused,
    as sha256sum -c refuses them: a list is either entirely valid or not."""
    if data.count(b"\n") > max_entries:
        raise ListFormatError(f"{source} holds more than {max_entries} lines")
    lines: list[SumLine] = []
    text = os.fsdecode(data)
    if text and not text.endswith("\n"):
        text += "\n"  # sha256sum -c accepts a last line without its newline
    for number, line in enumerate(text.split("\n")[:-1], start=1):
        escaped = line.startswith("\\")
        body = line[1:] if escaped else line
        digest, sep, rest = body[:64], body[64:66], body[66:]
        if not _HEX64.fullmatch(digest) or sep not in ("  ", " *") or not rest:
            raise ListFormatError(f"{source} line {number} is not '<sha256>  <file>'")
        lines.append(SumLine(digest.lower(), _unescape(rest) if escaped else rest))
    return lines


def format_sum_line(digest: str, name: str) -> str:
    """One `sha256sum` line. Names with a line break or a backslash need GNU's
    escaping, which busybox (Heads' sha256sum) does not read: refuse them."""
    if any(c in name for c in "\n\r\\"):
        raise ListFormatError(f"the file name {name!r} cannot go in a sha256sum list")
    if not _HEX64.fullmatch(digest):
        raise ListFormatError(f"{digest!r} is not a sha256 digest")
    return f"{digest.lower()}  {name}\n"


def format_hashes(digests: Mapping[str, str]) -> bytes:
    """kexec_hashes.txt from {'./rel/path': hex}; sorted, so the same /boot
    gives the same bytes (Heads writes find's order; sha256sum -c takes any)."""
    return os.fsencode(
        "".join(format_sum_line(digests[rel], rel) for rel in sorted(digests, key=sort_key))
    )


def format_tree(paths: Iterable[str]) -> bytes:
    """kexec_tree.txt: `find ./ ... -print0 | sort -z`."""
    return b"".join(os.fsencode(p) + b"\0" for p in sorted(paths, key=sort_key))


def parse_tree(data: bytes, source: str) -> list[str]:
    if data and not data.endswith(b"\0"):
        raise ListFormatError(f"{source} does not end with a NUL: it is cut short")
    if data.count(b"\0") > MAX_LIST_ENTRIES:
        raise ListFormatError(f"{source} holds more than {MAX_LIST_ENTRIES} paths")
    names = [os.fsdecode(p) for p in data.split(b"\0")[:-1]]
    if any(not n.startswith("./") for n in names):
        raise ListFormatError(f"{source} holds a path that does not start with './'")
    return names


def signed_names(names: Iterable[str]) -> list[str]:
    """The names `kexec*.txt` expands to, in glob order (byte order without a
    locale), less those no listing can hold (they are unexpected files)."""
    return sorted(
        (n for n in names if fnmatch.fnmatchcase(n, SIGNED_GLOB) and is_state_file_name(n)),
        key=sort_key,
    )


def signed_listing(files: Mapping[str, bytes], prefix: str = "") -> bytes:
    """What kexec.sig signs: `sha256sum kexec*.txt` run in /boot (prefix ''),
    or, for signatures made by old Heads, with absolute names (prefix '/boot/')."""
    return os.fsencode(
        "".join(
            format_sum_line(hashlib.sha256(files[n]).hexdigest(), prefix + n)
            for n in signed_names(files)
        )
    )


def counter_text(counter_id: str, value: int) -> bytes:
    """The counter's line as Heads' counter_read prints it: `<id>: <16 hex>`."""
    if not re.fullmatch(r"[0-9a-f]{1,8}", counter_id):
        raise ListFormatError(f"{counter_id!r} is not a counter id")
    if not 0 <= value < 1 << 64:
        raise ListFormatError(f"{value} is not a 64-bit counter value")
    return f"{counter_id}: {value:016x}\n".encode()


def counter_path(counter_id: str) -> str:
    return f"{COUNTER_FILE_DIR}/counter-{counter_id}"


def format_rollback(counter_id: str, value: int) -> bytes:
    """kexec_rollback.txt: sha256sum of the counter file, absolute name."""
    digest = hashlib.sha256(counter_text(counter_id, value)).hexdigest()
    return format_sum_line(digest, counter_path(counter_id)).encode()


@dataclass(frozen=True)
class Rollback:
    counter_id: str  # lowercase hex, no 0x: the NV index is 0x01000000 | int(id, 16)
    digest: str  # sha256 of the counter's line at signing time

    @property
    def nv_index(self) -> int:
        index = int(self.counter_id, 16)
        return index if index > 0xFFFFFF else 0x01000000 | index

    def matches(self, value: int) -> bool:
        return hashlib.sha256(counter_text(self.counter_id, value)).hexdigest() == self.digest


def parse_rollback(data: bytes) -> Rollback:
    lines = parse_sums(data, ROLLBACK_FILE)
    if len(lines) != 1:
        raise ListFormatError(f"{ROLLBACK_FILE} holds {len(lines)} lines, not one")
    line = lines[0]
    m = re.fullmatch(re.escape(COUNTER_FILE_DIR) + r"/counter-([0-9a-fA-F]{1,8})", line.name)
    if not m:
        raise ListFormatError(f"{ROLLBACK_FILE} names {line.name!r}, not a TPM counter")
    return Rollback(m.group(1).lower(), line.digest)


def format_links(links: Mapping[str, str]) -> bytes:
    """kexec_symlinks.txt from {'./rel': target}: pairs, each part NUL-ended."""
    out = bytearray()
    for rel in sorted(links, key=sort_key):
        target = links[rel]
        if not rel.startswith("./") or not target or "\0" in rel + target:
            raise ListFormatError(f"the symlink {rel!r} -> {target!r} cannot be recorded")
        out += os.fsencode(rel) + b"\0" + os.fsencode(target) + b"\0"
    return bytes(out)


def parse_links(data: bytes, source: str = LINKS_FILE) -> dict[str, str]:
    if data and not data.endswith(b"\0"):
        raise ListFormatError(f"{source} does not end with a NUL: it is cut short")
    parts = [os.fsdecode(p) for p in data.split(b"\0")[:-1]]
    if len(parts) % 2:
        raise ListFormatError(f"{source} holds a symlink without its target")
    links: dict[str, str] = {}
    for rel, target in zip(parts[::2], parts[1::2], strict=True):
        if not rel.startswith("./") or not target or rel in links:
            raise ListFormatError(f"{source} holds a damaged entry ({rel!r})")
        links[rel] = target
    return links
