"""Test helper: prove that a secret does not escape a block of code.

    with LeakWatch(allowed_dir=store_path) as watch:
        code_that_handles(secret)
    watch.assert_clean(secret_forms(secret))

While the block runs, an audit hook records every command started
(subprocess, exec, posix_spawn, system, with their environments), every file
opened for writing and where renames moved it, and every fork; a handler
records all logging (the root logger is opened to DEBUG meanwhile), and the
runtime's stage log (runtime.bootlog) is pointed at a scratch file. After the
block, ``assert_clean`` reads the written files back (those inside
``allowed_dir`` excepted) and fails, naming each place, if any form of the
secret appears in an argument list, a file or a log line.

Not seen: what a forked child runs (a fork therefore fails the check unless
``allow_fork``), opens relative to a directory descriptor (``dir_fd``),
loggers that do not propagate to the root, and plain print() output.
"""

from __future__ import annotations

import base64
import logging
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any

from runtime import bootlog

_EXEC_EVENTS = frozenset({"subprocess.Popen", "os.exec", "os.posix_spawn", "os.system"})
_FORK_EVENTS = frozenset({"os.fork", "os.forkpty"})
_RENAME_EVENTS = frozenset({"os.rename", "os.replace"})
_EVENTS = _EXEC_EVENTS | _FORK_EVENTS | _RENAME_EVENTS | {"open"}
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
MIN_SECRET_SIZE = 8  # shorter byte strings turn up by chance

#: The watches inside their block. An audit hook cannot be removed, so the one
#: hook stays installed and does nothing while this list is empty.
_ACTIVE: list[LeakWatch] = []
_hook_installed = False


def _grouped(text: bytes, size: int = 4) -> bytes:
    return b" ".join(text[i : i + size] for i in range(0, len(text), size))


def secret_forms(secret: bytes | bytearray) -> list[bytes]:
    """The ways a secret is usually written down: raw, hex, base32 (padded,
    unpadded, lower case, grouped in fours as the enrolment screen shows it),
    base64, and the escaped text of its Python repr (what a %r log line holds)."""
    raw = bytes(secret)
    if len(raw) < MIN_SECRET_SIZE:
        raise ValueError(
            f"a {len(raw)}-byte secret is too short to search for without "
            f"false alarms; use at least {MIN_SECRET_SIZE} bytes in tests"
        )
    b32 = base64.b32encode(raw)
    unpadded = b32.rstrip(b"=")
    b64 = base64.b64encode(raw)
    forms = [
        raw,
        raw.hex().encode(),
        raw.hex().upper().encode(),
        b32,
        unpadded,
        unpadded.lower(),
        _grouped(unpadded),
        _grouped(unpadded).lower(),
        b64,
        b64.rstrip(b"="),
        base64.urlsafe_b64encode(raw).rstrip(b"="),
        repr(raw)[2:-1].encode(),
    ]
    return list(dict.fromkeys(forms))  # without duplicates, in order


def _as_bytes(value: Any) -> bytes:
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    try:
        return os.fsencode(value)
    except TypeError:
        return str(value).encode("utf-8", "surrogateescape")


def _items(value: Any) -> list[bytes]:
    if value is None:
        return []
    if isinstance(value, str | bytes | bytearray | os.PathLike):
        return [_as_bytes(value)]
    if isinstance(value, Mapping):
        return [_as_bytes(k) + b"=" + _as_bytes(v) for k, v in value.items()]
    if isinstance(value, Iterable):
        return [_as_bytes(item) for item in value]
    return [_as_bytes(value)]


def _path(value: Any) -> str | None:
    if isinstance(value, int):
        return None  # an open descriptor: its path was seen when it was opened
    try:
        return os.path.abspath(os.fsdecode(value))
    except TypeError:
        return None


def _opens_for_writing(mode: Any, flags: Any) -> bool:
    if isinstance(flags, int) and flags & _WRITE_FLAGS:
        return True
    return isinstance(mode, str) and any(c in mode for c in "wax+")


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if not _ACTIVE or event not in _EVENTS:
        return
    for watch in list(_ACTIVE):
        try:
            watch._record(event, args)
        except Exception as err:  # never break the audited call; report it later
            watch.problems.append(f"the watch could not record {event}: {err!r}")


def _install_hook() -> None:
    global _hook_installed
    if not _hook_installed:
        sys.addaudithook(_audit)
        _hook_installed = True


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record))
        except Exception as err:  # a bad format string must not hide the rest
            self.lines.append(f"(unformattable record {record.msg!r}: {err!r})")


class LeakWatch:
    """Records where data could escape during a ``with`` block; see the module doc."""

    def __init__(
        self,
        allowed_dir: str | os.PathLike[str] | None = None,
        *,
        allow_fork: bool = False,
        allow_vanished: bool = False,
    ) -> None:
        self.allowed_dirs = [os.path.realpath(allowed_dir)] if allowed_dir is not None else []
        self.allow_fork = allow_fork
        self.allow_vanished = allow_vanished
        self.commands: list[tuple[str, list[bytes]]] = []  # (event, argv and environment)
        self.written: list[str] = []  # paths opened for writing, in order
        self.moved: dict[str, str] = {}  # renamed: old path -> new path
        self.forks: list[str] = []
        self.problems: list[str] = []
        self.log_lines: list[str] = []
        self._handler = _Lines()
        self._scratch = ""
        self._inside = False
        self._saved_root_level = logging.NOTSET
        self._saved_log_path = ""
        self._bootlog_start = 0
        self._file_contents: dict[str, bytes] = {}
        self._vanished: list[str] = []

    # -- recording -----------------------------------------------------------------

    def _record(self, event: str, args: tuple[Any, ...]) -> None:
        if event == "open":
            path = _path(args[0])
            if (
                path is not None
                and _opens_for_writing(args[1], args[2])
                and not path.startswith(self._scratch + os.sep)
            ):
                self.written.append(path)
        elif event in _RENAME_EVENTS:
            source, target = _path(args[0]), _path(args[1])
            if source is not None and target is not None:
                self.moved[source] = target
                self.written.append(target)
        elif event in _FORK_EVENTS:
            self.forks.append(event)
        elif event == "subprocess.Popen":
            executable, argv, _cwd, env = args
            self.commands.append((event, _items(executable) + _items(argv) + _items(env)))
        else:  # os.exec, os.posix_spawn: (path, argv, env); os.system: (command,)
            self.commands.append((event, [item for arg in args for item in _items(arg)]))

    def __enter__(self) -> LeakWatch:
        _install_hook()
        self._scratch = os.path.realpath(tempfile.mkdtemp(prefix="leakwatch-"))
        self._saved_log_path = bootlog.LOG_PATH
        bootlog.LOG_PATH = os.path.join(self._scratch, "runtime.log")
        self._bootlog_start = len(bootlog._lines)
        root = logging.getLogger()
        self._saved_root_level = root.level
        root.setLevel(logging.DEBUG)
        root.addHandler(self._handler)
        self._inside = True
        _ACTIVE.append(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        _ACTIVE.remove(self)
        self._inside = False
        root = logging.getLogger()
        root.removeHandler(self._handler)
        root.setLevel(self._saved_root_level)
        self.log_lines = list(self._handler.lines)
        self.log_lines += bootlog._lines[self._bootlog_start :]
        try:
            with open(bootlog.LOG_PATH, encoding="utf-8", errors="surrogateescape") as f:
                self.log_lines += f.read().splitlines()
        except FileNotFoundError:
            pass
        bootlog.LOG_PATH = self._saved_log_path
        shutil.rmtree(self._scratch, ignore_errors=True)
        self._read_back()

    def _allowed(self, path: str) -> bool:
        real = os.path.realpath(path)
        return any(real == d or real.startswith(d + os.sep) for d in self.allowed_dirs)

    def _read_back(self) -> None:
        """Read every file written outside the allowed directory, as it is now."""
        for path in dict.fromkeys(self.written):
            if self._allowed(path) or path in self._file_contents:
                continue
            try:
                info = os.stat(path)
            except FileNotFoundError:
                if path not in self.moved:
                    self._vanished.append(path)
                continue
            if stat.S_ISREG(info.st_mode):  # devices (/dev/null, a tty) keep nothing
                with open(path, "rb") as f:
                    self._file_contents[path] = f.read()

    # -- checking ------------------------------------------------------------------

    def findings(self, forms: list[bytes]) -> list[str]:
        """Where any of ``forms`` was found, in plain words (the secret redacted)."""
        if self._inside:
            raise RuntimeError("check a LeakWatch after its with block, not inside it")
        if not forms or any(not form for form in forms):
            raise ValueError("give the forms to look for, e.g. secret_forms(secret)")

        def hits(data: bytes) -> list[int]:
            return [i for i, form in enumerate(forms) if form in data]

        def redacted(data: bytes) -> str:
            for form in sorted(forms, key=len, reverse=True):
                data = data.replace(form, b"<SECRET>")
            return data.decode("utf-8", "backslashreplace")

        found: list[str] = []
        for event, items in self.commands:
            joined = b" ".join(items)
            if any(hits(item) for item in items) or hits(joined):
                found.append(f"a command ({event}) carries the secret: {redacted(joined)}")
        for path, content in self._file_contents.items():
            if hits(content):
                found.append(
                    f"the file {path}, written outside the allowed directory, "
                    f"holds the secret (form #{hits(content)[0]})"
                )
        for line in self.log_lines:
            if hits(line.encode("utf-8", "surrogateescape")):
                found.append(
                    f"a log line holds the secret: "
                    f"{redacted(line.encode('utf-8', 'surrogateescape'))}"
                )
        if not self.allow_vanished:
            found += [
                f"the file {path} was written outside the allowed directory and "
                "removed before it could be checked (pass allow_vanished=True if "
                "that is expected)"
                for path in self._vanished
            ]
        if not self.allow_fork:
            found += [
                f"the process forked ({event}); what the child ran cannot be seen "
                "(start commands with subprocess, or pass allow_fork=True)"
                for event in self.forks
            ]
        return found + self.problems

    def assert_clean(self, secret_forms: list[bytes]) -> None:
        """Fail, naming every place, if a form of the secret escaped the block."""
        found = self.findings(secret_forms)
        if found:
            raise AssertionError("the secret escaped:\n  " + "\n  ".join(found))
