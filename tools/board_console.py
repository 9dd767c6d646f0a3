"""Drive a booted board as a user would: keys in over the serial console, the
screen read back through a terminal emulator (pyte), the
runtime's stage log collected from the console. QEMU and swtpm are always
cleaned up, also on failure and timeout.

Every boot made by boot() has `runtime.trace` on its kernel command line (the
stage lines reach the console only then); that word is measured into PCR 9,
so a PCR 9 prediction for such a boot takes its command line from
Boot.kernel_cmdline() or harness_cmdline().
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import pexpect
import pyte

from tools.boards import load_board_table
from tools.qemu_board import BoardFiles, BoardInstance, board_files, kernel_cmdline

KEYS = {
    "up": "\x1b[A",
    "down": "\x1b[B",
    "right": "\x1b[C",
    "left": "\x1b[D",
    "enter": "\r",
    "esc": "\x1b",
    "backspace": "\x7f",
    "tab": "\t",
}
STAGE = re.compile(r"runtime: t=(?P<t>[\d.]+) stage=(?P<stage>\S+)(?P<rest>[^\r\n]*)")


class BootTimeout(AssertionError):
    pass


@dataclass
class Boot:
    """One running boot of a board instance."""

    instance: BoardInstance
    files: BoardFiles
    columns: int = 80
    rows: int = 24
    child: pexpect.spawn | None = None
    raw: bytearray = field(default_factory=bytearray)
    started: float = 0.0
    #: (end offset in raw, host monotonic time) of each chunk read: when text arrived.
    arrivals: list[tuple[int, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.screen = pyte.Screen(self.columns, self.rows)
        self.stream = pyte.ByteStream(self.screen)

    def start(self) -> Boot:
        if self.child is not None and self.child.isalive():
            raise RuntimeError("this machine is already running")
        self.instance.prepare(self.files)
        self.instance.start_swtpm()
        command = self.instance.qemu_command(self.files)
        self.started = time.monotonic()
        self.child = pexpect.spawn(command[0], command[1:], timeout=5, echo=False)
        self.child.setwinsize(self.rows, self.columns)
        return self

    def _pump(self, wait: float) -> bool:
        """Read what the guest wrote within ``wait`` seconds; False once QEMU is gone."""
        assert self.child is not None
        try:
            data = self.child.read_nonblocking(65536, timeout=wait)
        except pexpect.TIMEOUT:
            return True
        except pexpect.EOF:
            return False
        self.raw += data
        self.arrivals.append((len(self.raw), time.monotonic()))
        self.stream.feed(data)
        return True

    def arrival(self, pattern: str) -> float:
        """Seconds from QEMU's start until the first text matching ``pattern`` arrived."""
        found = re.search(pattern.encode(), bytes(self.raw))
        if not found:
            raise AssertionError(f"{pattern!r} never arrived")
        for end, when in self.arrivals:
            if end >= found.end():
                return when - self.started
        raise AssertionError("arrival times are incomplete")

    def screen_text(self) -> str:
        return "\n".join(line.rstrip() for line in self.screen.display)

    def console_text(self) -> str:
        return self.raw.decode("utf-8", "replace")

    def wait_for_screen(self, text: str, timeout: float = 240) -> str:
        """The screen once ``text`` is on it and the drawing has paused."""
        deadline = time.monotonic() + timeout
        why = f"after {timeout} s"
        while time.monotonic() < deadline:
            if text in self.screen_text():
                return self.settle()
            if not self._pump(0.2):
                why = "before QEMU exited"
                break
        raise BootTimeout(
            f"{text!r} not on screen {why}; screen:\n"
            f"{self.screen_text()}\n--- console tail:\n"
            f"{self.console_text()[-3000:]}"
        )

    def wait_for_any(self, texts: tuple[str, ...], timeout: float = 240) -> tuple[str, str]:
        """The first of ``texts`` on a settled screen, and that screen: for a
        start that ends on one of several screens (progress screens between
        them may mention the same words)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen_text()
            if any(text in screen for text in texts):
                screen = self.settle()
                for text in texts:
                    if text in screen:
                        return text, screen
            if not self._pump(0.2):
                break
        raise BootTimeout(
            f"none of {texts!r} on screen after {timeout} s; screen:\n"
            f"{self.screen_text()}\n--- console tail:\n"
            f"{self.console_text()[-3000:]}"
        )

    def wait_for_console(self, pattern: str, timeout: float = 240) -> re.Match[str]:
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = regex.search(self.console_text())
            if found:
                return found
            if not self._pump(0.2):
                found = regex.search(self.console_text())
                if found:
                    return found
                break
        raise BootTimeout(
            f"{pattern!r} not on the console after {timeout} s; tail:\n"
            f"{self.console_text()[-3000:]}"
        )

    def press(self, *keys: str, settle: float = 0.3) -> None:
        """Send keys (names from KEYS, or literal text), then read what changed."""
        assert self.child is not None
        for key in keys:
            self.child.send(KEYS.get(key, key))
            self._pump(settle)

    def settle(self, quiet: float = 0.7, most: float = 15.0) -> str:
        """Read until the guest has sent nothing for ``quiet`` seconds (a serial
        line draws a screen row by row: its title arrives before its end)."""
        deadline = time.monotonic() + most
        while time.monotonic() < deadline:
            before = len(self.raw)
            if not self._pump(quiet) or len(self.raw) == before:
                break
        return self.screen_text()

    def watch(self, seconds: float) -> None:
        """Keep reading the screen for ``seconds`` without pressing anything."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and self._pump(min(0.2, seconds)):
            pass

    def kernel_cmdline(self) -> str:
        """The kernel command line this boot is given (PCR 9 measures it)."""
        return self.instance.kernel_cmdline(self.files)

    def stages(self) -> dict[str, tuple[float, str]]:
        """The runtime's stage log lines: stage -> (seconds since boot, the rest).
        Only a boot with the trace on prints them (boot() turns it on)."""
        out: dict[str, tuple[float, str]] = {}
        for m in STAGE.finditer(self.console_text()):
            out.setdefault(m["stage"], (float(m["t"]), m["rest"].strip()))
        return out

    def pcr(self, index: int) -> str:
        found = re.search(rf"stage=pcr index={index} sha256=([0-9a-f]{{64}})", self.console_text())
        if not found:
            raise AssertionError(
                f"PCR {index} was not logged (is the trace on? {self.kernel_cmdline()!r})"
            )
        return found.group(1)

    def wait_exit(self, timeout: float = 120) -> int:
        assert self.child is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self._pump(0.5):
                self.child.close()
                # The machine is off: its TPM goes too (its state is on disk), so
                # the next boot of this instance can start its own.
                self.instance.stop_swtpm()
                return int(self.child.exitstatus or 0)
        raise BootTimeout(f"QEMU still running after {timeout} s")

    def close(self) -> None:
        if self.child is not None and self.child.isalive():
            self.child.terminate(force=True)
        self.instance.stop_swtpm()

    def __enter__(self) -> Boot:
        # `with boot(...).start() as b` must not start a second machine on the
        # same TPM state: a second swtpm's start unlinks the first one's socket,
        # and the first one's exit then unlinks the second's.
        return self if self.child is not None else self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


#: The harness reads stages() and pcr() from the console: its boots trace.
HARNESS_TRACE = True


def harness_cmdline(board: str) -> str:
    """The kernel command line boot() gives ``board`` (without extra_cmdline),
    for a PCR 9 prediction made before or without a Boot."""
    return kernel_cmdline(str(load_board_table(board)["kernel"]["cmdline"]), HARNESS_TRACE)


def boot(board: str, directory: Path, initrd: Path, **kwargs: object) -> Boot:
    instance = BoardInstance(board, directory, initrd, trace=HARNESS_TRACE)
    return Boot(instance, board_files(board), **kwargs)  # type: ignore[arg-type]
