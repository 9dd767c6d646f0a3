"""Heads' OS package triggers: before and after an update touches /boot, the
OS writes kexec_package_trigger_{pre,post}.txt naming what changed, so the
firmware can tell the user "your OS updated these files" instead of only
"these files changed". The files are kexec*.txt, so they also make the
signature fail until /boot is signed again, which removes them.

Format (../shared/reference/heads-facts.md §3): `CHANGED_FILES="..."`,
`UPDATE_INITRAMFS_PACKAGE="..."`,
then free lines (dpkg's log).
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass

PHASES = ("pre", "post")
MAX_TRIGGER_BYTES = 256 * 1024


@dataclass(frozen=True)
class Trigger:
    phase: str
    changed_files: tuple[str, ...]
    package: str
    notes: tuple[str, ...]


def trigger_name(phase: str) -> str:
    if phase not in PHASES:
        raise ValueError(f"phase must be one of {PHASES}, not {phase!r}")
    return f"kexec_package_trigger_{phase}.txt"


def format_trigger(
    changed_files: Sequence[str], package: str = "", notes: Sequence[str] = ()
) -> bytes:
    lines = [
        f"CHANGED_FILES={shlex.quote(' '.join(changed_files))}"
        if changed_files
        else 'CHANGED_FILES=""',
        f"UPDATE_INITRAMFS_PACKAGE={shlex.quote(package)}"
        if package
        else 'UPDATE_INITRAMFS_PACKAGE=""',
        *(n.replace("\n", " ") for n in notes),
    ]
    return ("\n".join(lines) + "\n").encode()


_ASSIGN = re.compile(r"^(CHANGED_FILES|UPDATE_INITRAMFS_PACKAGE)=(.*)$")


def parse_trigger(name: str, text: str) -> Trigger:
    """What an OS hook wrote; never fails (it is advice, not trusted)."""
    phase = name.removeprefix("kexec_package_trigger_").removesuffix(".txt")
    values = {"CHANGED_FILES": "", "UPDATE_INITRAMFS_PACKAGE": ""}
    notes: list[str] = []
    for line in text[:MAX_TRIGGER_BYTES].splitlines():
        m = _ASSIGN.match(line)
        if m:
            try:
                words = shlex.split(m.group(2))
            except ValueError:
                words = [m.group(2).strip("\"'")]
            values[m.group(1)] = " ".join(words)
        elif line.strip():
            notes.append(line)
    return Trigger(
        phase,
        tuple(values["CHANGED_FILES"].split()),
        values["UPDATE_INITRAMFS_PACKAGE"],
        tuple(notes),
    )


def write_trigger(boot_dir: str, phase: str, data: bytes) -> str:
    """Atomically: a temp file, fsync, rename, fsync the directory."""
    name = trigger_name(phase)
    final = os.path.join(boot_dir, name)
    temp = final + ".tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(temp, final)
    dfd = os.open(boot_dir, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
    return final
