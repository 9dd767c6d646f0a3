"""The Nitrokey / Librem Key backend against replayed hotp_verification runs.

No token can be attached here: a fake ``hotp_verification`` (a Python script
written into tmp_path) replays the transcripts in
hotp_recordings/hotp_verification_1.7.json (see its "_source") and logs the
arguments it was given; a fake sysfs tree says which USB IDs are plugged in.
"""

from __future__ import annotations

import json
import os
import stat
import sys
import time
from pathlib import Path

import pytest

from runtime.secrets.hotp.nitrokey import LOOKAHEAD, NitrokeyToken, find_dongles
from runtime.secrets.hotp.token import HotpCheck
from tests.conftest import data_dir
from tests.leakcheck import LeakWatch, secret_forms

RECORDINGS = data_dir() / "hotp_recordings" / "hotp_verification_1.7.json"
SECRET = bytearray(b"12345678901234567890")
B32 = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
PIN = bytearray(b"12345678")

_FAKE = """#!{python}
import json, os, sys, time
with open({log!r}, "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
with open({recordings!r}) as f:
    case = json.load(f)[sys.argv[1]][{pick!r}[sys.argv[1]]]
sys.stdout.write(case["stdout"])
sys.stderr.write(case["stderr"])
sys.stdout.flush()
sys.stderr.flush()
time.sleep(case.get("sleep", 0))
if "signal" in case:
    os.kill(os.getpid(), case["signal"])
sys.exit(case["exit"])
"""


class Rig:
    """A fake USB tree and a fake program, and what the program was given."""

    def __init__(self, root: Path) -> None:
        self.sysfs = root / "usb"
        self.bin = root / "bin"
        self.log = root / "argv.log"
        self.sysfs.mkdir()
        self.bin.mkdir()

    def plug(self, vid: str, pid: str, port: str = "1-1") -> None:
        device = self.sysfs / port
        device.mkdir()
        (device / "idVendor").write_text(vid + "\n")
        (device / "idProduct").write_text(pid + "\n")
        (self.sysfs / f"{port}:1.0").mkdir()  # an interface: no IDs, to be skipped

    def program(self, check: str = "success", set_: str = "success") -> None:
        script = self.bin / "hotp_verification"
        script.write_text(
            _FAKE.format(
                python=sys.executable,
                log=str(self.log),
                recordings=str(RECORDINGS),
                pick={"check": check, "set": set_},
            )
        )
        script.chmod(script.stat().st_mode | stat.S_IXUSR)

    def calls(self) -> list[list[str]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def token(self, **kwargs: float) -> NitrokeyToken:
        return NitrokeyToken(str(self.sysfs), [str(self.bin / "empty"), str(self.bin)], **kwargs)


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    return Rig(tmp_path)


def test_the_recordings_name_their_source() -> None:
    data = json.loads(RECORDINGS.read_text())
    assert "nitrokey-hotp-verification" in data["_source"]
    assert {"check", "set"} <= data.keys()


@pytest.mark.parametrize(
    ("vid", "pid", "brand"),
    [
        ("20a0", "4108", "Nitrokey Pro"),
        ("20a0", "4109", "Nitrokey Storage"),
        ("20a0", "42b2", "Nitrokey 3"),
        ("316d", "4c4b", "Librem Key"),
        ("316D", "4C4B", "Librem Key"),  # sysfs writes lowercase; accept either
    ],
)
def test_tokens_are_found_by_usb_id(rig: Rig, vid: str, pid: str, brand: str) -> None:
    rig.plug(vid, pid)
    rig.program()
    token = rig.token()
    assert token.present()
    assert token.name == brand
    assert token.lookahead == LOOKAHEAD == 10


def test_no_token_is_absent_without_running_the_program(rig: Rig) -> None:
    rig.program()
    token = rig.token()
    assert not token.present()
    status = token.why_absent()
    assert status.result is HotpCheck.ABSENT and "No HOTP token" in status.message
    assert token.check("123456").result is HotpCheck.ABSENT
    assert rig.calls() == []


def test_a_key_without_hotp_support_is_named(rig: Rig) -> None:
    rig.plug("1050", "0407")
    rig.program()
    token = rig.token()
    assert not token.present()
    assert "YubiKey is plugged in, but it cannot check HOTP" in token.why_absent().message


def test_the_hotp_capable_key_wins_over_others(rig: Rig) -> None:
    rig.plug("16d0", "21dc", "1-1")
    rig.plug("20a0", "42b2", "1-2")
    rig.plug("20a0", "4108", "2-1")
    assert [d.brand for d in find_dongles(str(rig.sysfs))] == [
        "Nitrokey Pro",
        "Nitrokey 3",
        "Canokey",
    ]


def test_a_missing_program_is_said_plainly(rig: Rig) -> None:
    rig.plug("20a0", "4108")
    token = rig.token()
    assert not token.present()
    status = token.check("123456")
    assert status.result is HotpCheck.ABSENT
    assert "no hotp_verification program" in status.message


def test_a_missing_sysfs_is_no_token(tmp_path: Path) -> None:
    assert find_dongles(str(tmp_path / "nowhere")) == []


@pytest.mark.parametrize(
    ("case", "result", "words"),
    [
        ("success", HotpCheck.SUCCESS, "accepted"),
        ("wrong_code", HotpCheck.INVALID, "refused the HOTP code"),
        ("bad_format", HotpCheck.INVALID, "format"),
        ("not_programmed", HotpCheck.NOT_PROGRAMMED, "no HOTP secret"),
        ("not_programmed_nk3", HotpCheck.NOT_PROGRAMMED, "no HOTP secret"),
        ("not_connected", HotpCheck.ERROR, "could not talk to it"),
        ("connection_lost", HotpCheck.ERROR, "connection"),
        ("unsupported_firmware", HotpCheck.ERROR, "Update the token's firmware"),
        ("invalid_params", HotpCheck.ERROR, "ended with code 100"),
        ("crash", HotpCheck.ERROR, "stopped by signal 6"),
    ],
)
def test_check_maps_each_recorded_outcome(
    rig: Rig, case: str, result: HotpCheck, words: str
) -> None:
    rig.plug("20a0", "4108")
    rig.program(check=case)
    status = rig.token().check("755224")
    assert status.result is result
    assert words in status.message
    assert "755224" not in status.message + status.detail
    assert rig.calls() == [["check", "755224"]]


def test_the_detail_is_the_programs_verdict(rig: Rig) -> None:
    rig.plug("20a0", "4108")
    rig.program(check="not_programmed")
    assert (
        rig.token().check("755224").detail == "Error occurred, status code 3: Slot not programmed"
    )


def test_a_malformed_code_never_reaches_the_program(rig: Rig) -> None:
    rig.plug("20a0", "4108")
    rig.program()
    token = rig.token()
    for code in ("12345", "1234567", "12a456", "", "１２３４５６"):
        assert token.check(code).result is HotpCheck.INVALID
    assert rig.calls() == []


def test_a_hanging_program_times_out(rig: Rig) -> None:
    rig.plug("20a0", "4108")
    rig.program(check="hang")
    started = time.monotonic()
    status = rig.token(check_timeout=0.5).check("755224")
    assert time.monotonic() - started < 5
    assert status.result is HotpCheck.ERROR
    assert "no answer within 0.5 s" in status.message


def test_program_passes_secret_pin_and_counter(rig: Rig) -> None:
    rig.plug("316d", "4c4b")
    rig.program()
    status = rig.token().program(SECRET, 7, PIN)
    assert status.result is HotpCheck.SUCCESS and "Librem Key was programmed" in status.message
    assert rig.calls() == [["set", B32, "12345678", "7"]]
    assert bytes(SECRET) == b"12345678901234567890" and bytes(PIN) == b"12345678"


@pytest.mark.parametrize(
    ("case", "result", "words"),
    [
        ("wrong_pin", HotpCheck.INVALID, "refused the admin PIN"),
        ("bad_base32", HotpCheck.INVALID, "badly formed"),
        ("pin_too_long", HotpCheck.INVALID, "badly formed"),
        ("nk3_touch", HotpCheck.ERROR, "touched"),
    ],
)
def test_program_maps_each_recorded_outcome(
    rig: Rig, case: str, result: HotpCheck, words: str
) -> None:
    rig.plug("20a0", "42b2")
    rig.program(set_=case)
    status = rig.token().program(SECRET, 1, PIN)
    assert status.result is result and words in status.message
    for secret in (B32, "12345678"):
        assert secret not in status.message + status.detail


def test_program_times_out(rig: Rig) -> None:
    rig.plug("20a0", "4108")
    rig.program(set_="hang")
    status = rig.token(program_timeout=0.5).program(SECRET, 1, PIN)
    assert status.result is HotpCheck.ERROR


@pytest.mark.parametrize(
    ("pid", "secret", "counter", "pin", "words"),
    [
        ("4108", bytearray(21), 1, PIN, "at most 20 bytes"),  # the Pro would cut it silently
        ("4108", bytearray(), 1, PIN, "at most 20 bytes"),
        ("42b2", SECRET, 0xFFFFFFFF, PIN, "cannot start at HOTP counter"),
        ("4108", SECRET, -1, PIN, "cannot start at HOTP counter"),
        ("4108", SECRET, 1, bytearray(), "empty"),
        ("4108", SECRET, 1, bytearray(b"12\n45678"), "control characters"),
    ],
)
def test_program_refuses_what_the_token_would_mangle(
    rig: Rig, pid: str, secret: bytearray, counter: int, pin: bytearray, words: str
) -> None:
    rig.plug("20a0", pid)
    rig.program()
    status = rig.token().program(secret, counter, pin)
    assert status.result is HotpCheck.INVALID and words in status.message
    assert rig.calls() == []


def test_a_nitrokey_3_takes_a_32_bit_counter_and_a_longer_secret(rig: Rig) -> None:
    rig.plug("20a0", "42b2")
    rig.program()
    assert rig.token().program(bytearray(40), 0xFFFFFFFE, PIN).ok


def test_the_program_runs_with_a_clean_environment(rig: Rig, monkeypatch) -> None:
    monkeypatch.setenv("LEAK", "1")
    rig.plug("20a0", "4108")
    script = rig.bin / "hotp_verification"
    script.write_text(
        f"#!{sys.executable}\nimport os, sys\n"
        f"open({str(rig.log)!r}, 'w').write(repr(sorted(os.environ)))\n"
        "sys.exit(0)\n"
    )
    script.chmod(0o755)
    assert rig.token().check("123456").ok
    assert "LEAK" not in rig.log.read_text()
    assert os.environ["LEAK"] == "1"


def test_only_the_set_command_line_carries_secret_and_pin(rig: Rig) -> None:
    """The documented exposure (hotp_verification reads them from argv only),
    and nothing beyond it: no file, no log, no other command."""
    rig.plug("20a0", "4108")
    rig.program()
    secret, pin = bytearray(os.urandom(20)), bytearray(b"admin pin 987")
    with LeakWatch() as watch:
        assert rig.token().program(secret, 3, pin).ok
        assert rig.token().check("755224").ok
    found = watch.findings(secret_forms(secret) + secret_forms(pin))
    assert len(found) == 1 and found[0].startswith("a command (subprocess.Popen)")
    assert " set <SECRET> <SECRET> 3" in found[0]
    assert bytes(secret) != bytes(20) and bytes(pin) == b"admin pin 987"  # the caller's
