"""Nitrokey Pro / Storage / 3 and Librem Key, through Nitrokey's
``hotp_verification`` program (nitrokey-hotp-verification).

Facts used here, from that program's published source (src/main.c,
src/return_codes.{c,h}, src/device.c, src/operations*.c, README.md):

- usage: ``hotp_verification check <CODE>`` and
  ``hotp_verification set <BASE32 SECRET> <ADMIN PIN> [COUNTER]``;
- exit codes: 0 success, 1 could not connect, 2 wrong PIN, 3 other error,
  4 wrong code, 5 firmware without HOTP verification, 6 slot not programmed,
  7 bad format, 8 connection lost, 100 bad arguments. A Nitrokey 3 reports
  an unconfigured slot as 3 with the text "HOTP slot is not configured",
  and firmware without HOTP verification also ends with 3 ("Device is not
  supporting HOTP validation"), whatever the README says;
- the token tries its own counter and the 9 after it (10 values) and then
  sets its counter past the one that matched;
- Pro, Storage and Librem Key store at most 20 bytes of secret (longer ones
  are cut silently); a Nitrokey 3 takes a counter below 0xFFFFFFFF only.

A token is found by its USB IDs in sysfs before the program is run, so a
missing token is reported at once instead of after the program's own
connection attempts.
"""

from __future__ import annotations

import base64
import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

from runtime.secrets.hotp.token import HotpCheck, TokenStatus, is_code
from runtime.secrets.ram import wipe_buffer

PROGRAM = "hotp_verification"
SEARCH_PATH = ("/bin", "/usr/bin")
SYSFS_USB = "/sys/bus/usb/devices"
#: The token checks its counter and the 9 after it (README "Verifying HOTP code").
LOOKAHEAD = 10
#: The program waits for a token about 3 s and each device exchange takes
#: 200 ms or more; set sends four.
CHECK_TIMEOUT = 20.0
PROGRAM_TIMEOUT = 30.0


@dataclass(frozen=True)
class Dongle:
    vid: str
    pid: str
    brand: str
    hotp: bool  # hotp_verification can talk to it
    max_secret: int = 20  # bytes the token keeps
    max_counter: int = 2**63 - 1  # the program parses the counter with strtol


# hotp_verification tries the HID tokens in this order, then the Nitrokey 3.
_HOTP_DONGLES = (
    Dongle("20a0", "4108", "Nitrokey Pro", True),
    Dongle("316d", "4c4b", "Librem Key", True),
    Dongle("20a0", "4109", "Nitrokey Storage", True),
    Dongle("20a0", "42b2", "Nitrokey 3", True, max_secret=40, max_counter=0xFFFFFFFE),
)
# Security keys Heads knows (etc/dongle-versions) that this program cannot use.
_OTHER_DONGLES = (
    Dongle("20a0", "42d4", "Canokey (QEMU)", False),
    Dongle("16d0", "21dc", "Canokey", False),
)
_YUBICO_VID = "1050"


def _read_id(path: str) -> str:
    try:
        with open(path, encoding="ascii", errors="replace") as handle:
            return handle.read(16).strip().lower()
    except OSError:
        return ""


def find_dongles(sysfs_root: str = SYSFS_USB) -> list[Dongle]:
    """Security keys plugged in, by USB vendor:product ID, HOTP-capable ones first."""
    found: list[Dongle] = []
    try:
        entries = sorted(os.listdir(sysfs_root))
    except OSError:
        return found
    known = {(d.vid, d.pid): d for d in _HOTP_DONGLES + _OTHER_DONGLES}
    for entry in entries:
        vid = _read_id(os.path.join(sysfs_root, entry, "idVendor"))
        pid = _read_id(os.path.join(sysfs_root, entry, "idProduct"))
        dongle = known.get((vid, pid))
        if dongle is None and vid == _YUBICO_VID:
            dongle = Dongle(vid, pid, "YubiKey", False)
        if dongle is not None and dongle not in found:
            found.append(dongle)
    order = {d: i for i, d in enumerate(_HOTP_DONGLES)}
    return sorted(found, key=lambda d: order.get(d, len(order)))


def find_program(search_path: Sequence[str] = SEARCH_PATH) -> str | None:
    for folder in search_path:
        candidate = os.path.join(folder, PROGRAM)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


@dataclass(frozen=True)
class _Run:
    returncode: int | None  # None: it did not finish (see failure)
    output: bytes
    failure: str = ""


class NitrokeyToken:
    """HotpToken for Nitrokey Pro/Storage/3 and Librem Key.

    ``sysfs_root`` and ``search_path`` are parameters so tests can give a
    fake USB tree and a fake program.
    """

    def __init__(
        self,
        sysfs_root: str = SYSFS_USB,
        search_path: Sequence[str] = SEARCH_PATH,
        check_timeout: float = CHECK_TIMEOUT,
        program_timeout: float = PROGRAM_TIMEOUT,
    ) -> None:
        self._sysfs_root = sysfs_root
        self._search_path = tuple(search_path)
        self._check_timeout = check_timeout
        self._program_timeout = program_timeout
        self._dongle: Dongle | None = None

    @property
    def name(self) -> str:
        return self._dongle.brand if self._dongle else "Nitrokey or Librem Key"

    @property
    def lookahead(self) -> int:
        return LOOKAHEAD

    def _detect(self) -> Dongle | None:
        usable = [d for d in find_dongles(self._sysfs_root) if d.hotp]
        self._dongle = usable[0] if usable else None
        return self._dongle

    def present(self) -> bool:
        return find_program(self._search_path) is not None and self._detect() is not None

    def why_absent(self) -> TokenStatus:
        if find_program(self._search_path) is None:
            return TokenStatus(
                HotpCheck.ABSENT,
                (
                    f"This firmware has no {PROGRAM} program, so it cannot talk to a "
                    "Nitrokey or Librem Key: HOTP cannot be checked. Use the TOTP code on "
                    "your phone, or install firmware built with HOTP support."
                ),
            )
        dongles = find_dongles(self._sysfs_root)
        if dongles and not any(d.hotp for d in dongles):
            return TokenStatus(
                HotpCheck.ABSENT,
                (
                    f"A {dongles[0].brand} is plugged in, but it cannot check HOTP codes. "
                    "Plug in the Nitrokey or Librem Key that was programmed for this "
                    "computer, then retry."
                ),
            )
        return TokenStatus(
            HotpCheck.ABSENT,
            (
                "No HOTP token (Nitrokey or Librem Key) is plugged in, so the firmware was "
                "not checked by it. Plug the token in and retry; the HOTP counter was not "
                "used."
            ),
        )

    def _run(self, program: str, args: Sequence[str | bytes], timeout: float) -> _Run:
        try:
            done = subprocess.run(
                [program, *args],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=timeout,
                check=False,
                env={"PATH": "/bin:/usr/bin", "LC_ALL": "C"},
            )
        except subprocess.TimeoutExpired:  # run() has killed it
            return _Run(None, b"", f"no answer within {timeout:g} s")
        except OSError as err:
            return _Run(None, b"", f"{PROGRAM} could not be started: {err.strerror}")
        # stdout last: its final line is the program's verdict.
        return _Run(done.returncode, done.stderr + b"\n" + done.stdout)

    def _ready(self) -> str | None:
        """The program's path when it and a token are both there."""
        program = find_program(self._search_path)
        if program is None or self._detect() is None:
            return None
        return program

    def check(self, code: str) -> TokenStatus:
        """Ask the token to check ``code``.

        The code travels on the program's command line, the only way it takes
        one. That is acceptable: it is a one-time value that the token consumes
        (a matching code moves the token's counter past it) and it only proves
        something to the token it was made for.
        """
        if not is_code(code):
            return TokenStatus(
                HotpCheck.INVALID,
                ("The HOTP code to check is not six digits; it was not sent to the token."),
            )
        program = self._ready()
        if program is None:
            return self.why_absent()
        run = self._run(program, ["check", code], self._check_timeout)
        detail = _detail(run, (code.encode(),))
        if run.returncode is None:
            return self._no_answer(run)
        status = _CHECK_RESULTS.get(run.returncode)
        if run.returncode == 3:  # "other error": the text tells two cases apart
            if b"HOTP slot is not configured" in run.output:
                status = _CHECK_RESULTS[6]  # how a Nitrokey 3 reports an empty slot
            elif b"not supporting HOTP validation" in run.output:
                status = _CHECK_RESULTS[5]  # the program exits 3 here, not 5
        if status is None:
            return self._unexpected(run, detail)
        result, text = status
        return TokenStatus(result, text.format(brand=self.name), detail)

    def program(self, secret: bytearray, counter: int, admin_pin: bytearray) -> TokenStatus:
        """Store ``secret`` in the token's HOTP slot with its counter at ``counter``.

        hotp_verification takes the secret and the admin PIN only as command-line
        arguments (its main.c reads nothing else: no stdin, no environment, no
        file). While it runs, about a second, both are readable in
        /proc/<pid>/cmdline by any process of this machine; in the firmware's
        initramfs only the runtime runs, and the window is that one call. The
        arguments are immutable copies Python cannot wipe; ours are wiped.
        """
        program = self._ready()
        dongle = self._dongle
        if program is None or dongle is None:
            return self.why_absent()
        problem = _program_input_problem(secret, counter, dongle)
        if problem:
            return TokenStatus(HotpCheck.INVALID, problem)
        problem = _pin_problem(admin_pin)
        if problem:
            return TokenStatus(HotpCheck.INVALID, problem, wrong_pin=True)
        b32 = bytearray(base64.b32encode(bytes(secret)))
        try:
            run = self._run(
                program, ["set", bytes(b32), bytes(admin_pin), str(counter)], self._program_timeout
            )
            detail = _detail(run, (b32, admin_pin))
        finally:
            wipe_buffer(b32)
        if run.returncode is None:
            return self._no_answer(run)
        status = _PROGRAM_RESULTS.get(run.returncode)
        if status is None:
            return self._unexpected(run, detail)
        result, text = status
        return TokenStatus(
            result,
            text.format(brand=self.name),
            detail,
            wrong_pin=run.returncode == _WRONG_PIN_EXIT,
        )

    def _no_answer(self, run: _Run) -> TokenStatus:
        return TokenStatus(
            HotpCheck.ERROR,
            (
                f"{PROGRAM} gave no answer about the {self.name} ({run.failure}). Unplug the "
                "token, plug it in again and retry."
            ),
            run.failure,
        )

    def _unexpected(self, run: _Run, detail: str) -> TokenStatus:
        code = run.returncode if run.returncode is not None else 0
        how = f"was stopped by signal {-code}" if code < 0 else f"ended with code {code}"
        return TokenStatus(
            HotpCheck.ERROR,
            (
                f"{PROGRAM} {how}, which it does not document. The firmware's copy of the "
                f"program may not match this runtime. Retry; if it persists, replug the "
                f"{self.name}."
            ),
            detail,
        )


_REPLUG = "Unplug the {brand}, plug it in again and retry."

_CHECK_RESULTS: dict[int, tuple[HotpCheck, str]] = {
    0: (
        HotpCheck.SUCCESS,
        "The {brand} accepted the HOTP code: it agrees that this "
        "firmware holds the secret sealed to a trusted state.",
    ),
    1: (
        HotpCheck.ERROR,
        "The {brand} is plugged in but the program could not talk to it. " + _REPLUG,
    ),
    4: (
        HotpCheck.INVALID,
        "The {brand} refused the HOTP code. Either this firmware does "
        "not hold the secret the token was programmed with (firmware "
        "or measured state changed, or it is a different computer), "
        "or the token's counter is far ahead. Do not trust this boot "
        "until you know why.",
    ),
    5: (
        HotpCheck.ERROR,
        "The {brand}'s firmware cannot verify HOTP codes. Update the "
        "token's firmware (Nitrokey Pro 0.15, Nitrokey 3 1.8.3 or newer).",
    ),
    6: (
        HotpCheck.NOT_PROGRAMMED,
        "The {brand} has no HOTP secret yet, so it cannot "
        "check this firmware. Generate a new TOTP/HOTP secret "
        "to program it.",
    ),
    7: (
        HotpCheck.INVALID,
        "The {brand} rejected the code's format. This is a fault in "
        "the firmware, not the token; report it.",
    ),
    8: (HotpCheck.ERROR, "The connection to the {brand} was lost during the check. " + _REPLUG),
}

#: hotp_verification's exit code for a refused admin PIN
_WRONG_PIN_EXIT = 2

_PROGRAM_RESULTS: dict[int, tuple[HotpCheck, str]] = {
    0: (HotpCheck.SUCCESS, "The {brand} was programmed with the new HOTP secret."),
    1: _CHECK_RESULTS[1],
    2: (
        HotpCheck.INVALID,
        "The {brand} refused the admin PIN. Each wrong PIN uses up "
        "one of its few tries (3 on a Nitrokey Pro, Storage or Librem "
        "Key; 8 for a Nitrokey 3's Secrets app); when none are left "
        "the token must be reset. Check the PIN and try again.",
    ),
    3: (
        HotpCheck.ERROR,
        "The {brand} could not be programmed (on a Nitrokey 3: was its "
        "button touched when it blinked?). " + _REPLUG,
    ),
    5: _CHECK_RESULTS[5],
    7: (
        HotpCheck.INVALID,
        "The {brand} refused the admin PIN or the secret as badly "
        "formed (a PIN longer than the token accepts?).",
    ),
    8: _CHECK_RESULTS[8],
}


def _program_input_problem(secret: bytearray, counter: int, dongle: Dongle) -> str:
    if not 0 < len(secret) <= dongle.max_secret:
        return (
            f"The {dongle.brand} keeps secrets of at most {dongle.max_secret} bytes; "
            f"this one has {len(secret)}."
        )
    if not 0 <= counter <= dongle.max_counter:
        return (
            f"The {dongle.brand} cannot start at HOTP counter {counter} (the most "
            f"it takes is {dongle.max_counter})."
        )
    return ""


def _pin_problem(admin_pin: bytearray) -> str:
    if not admin_pin:
        return "The admin PIN is empty. Try again."
    if any(byte < 0x20 or byte == 0x7F for byte in admin_pin):
        return "The admin PIN contains control characters; it cannot be passed on. Try again."
    return ""


def _detail(run: _Run, hide: Sequence[bytes | bytearray]) -> str:
    """The tool's last meaningful line for the details view, with anything
    sensitive it might echo blanked out (before it becomes a string)."""
    lines = [line.strip() for line in run.output.splitlines()]
    meaningful = [
        line
        for line in lines
        if line
        and not line.startswith(b"HOTP code verification application")
        and set(line) != {ord(".")}
    ]
    text = meaningful[-1] if meaningful else b""
    for value in hide:
        if value:
            text = text.replace(value, b"***")
    return text.decode("utf-8", errors="replace")
