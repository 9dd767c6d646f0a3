"""Print what the firmware would offer to boot from a directory (a mounted
/boot, an OS root, or an unpacked ISO), as JSON, one object per entry:

  python3 -m runtime.boot_configs /mnt/boot
  python3 -m runtime.boot_configs --heads /mnt/boot      # Heads' own listing lines
  python3 -m runtime.boot_configs --iso /tails.iso --fs-uuid 1234-ABCD /mnt/iso

Warnings not tied to one entry go to standard error, one line each. Exit
status: 0 when the menu offers something, 1 when it offers nothing, 2 on a
usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from runtime.boot_configs.discover import discover, discover_iso
from runtime.boot_configs.fs import DirFS
from runtime.boot_configs.heads_listing import heads_listing
from runtime.boot_configs.report import entry_json


def _args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python3 -m runtime.boot_configs",
        description="List the boot entries found under a directory, as JSON.",
    )
    parser.add_argument("directory", type=Path, help="a mounted /boot, root or unpacked ISO")
    parser.add_argument(
        "--heads",
        action="store_true",
        help="print Heads' listing (kexec_menu.txt lines) instead of the entries",
    )
    parser.add_argument(
        "--pattern",
        default="grub.cfg",
        help="with --heads: configuration file names to scan (Heads uses *.cfg for USB)",
    )
    parser.add_argument("--unique", action="store_true", help="with --heads: sort -r | uniq")
    parser.add_argument(
        "--iso",
        metavar="PATH",
        help="the directory is this ISO file's contents; PATH is where the file sits on "
        "its (USB) file system, e.g. /tails.iso",
    )
    parser.add_argument(
        "--fs-uuid", default="", help="with --iso: the UUID of the file system holding the ISO"
    )
    return parser.parse_args(argv)


def _emit(document: object, notes: list[str]) -> None:
    json.dump(document, sys.stdout, indent=2, ensure_ascii=False)
    print(flush=True)
    for note in notes:
        print(f"warning: {note}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = _args(sys.argv[1:] if argv is None else argv)
    if not args.directory.is_dir():
        print(f"{args.directory}: not a directory", file=sys.stderr)
        return 2
    fs = DirFS(args.directory)
    if args.heads:
        listing = heads_listing(fs, args.pattern, args.unique)
        _emit({"lines": listing.lines}, [str(w) for w in listing.warnings])
        return 0 if listing.lines else 1
    found = discover_iso(fs, args.iso, args.fs_uuid) if args.iso else discover(fs)
    # the menu holds the same entries (with the titles of collapsed repeats)
    menu = {(e.source, e.line, e.name): e for e in found.menu}
    out = []
    for e in found.entries:
        shown = menu.get((e.source, e.line, e.name))
        out.append(entry_json(shown or e, offered=shown is not None))
    per_entry = {(e.source, e.line) for e in found.entries}
    notes = [str(w) for w in found.warnings if (w.source, w.line) not in per_entry]
    if not found.menu:
        notes.append("nothing to boot: no entry has all its files present")
    _emit(out, notes)
    return 0 if found.menu else 1


if __name__ == "__main__":
    sys.exit(main())
