"""Issue 25, "plain errors": what reaches the screen never holds exception
text, a command line, an NV index or a response code; that goes to the
runtime's log (runtime.error_detail), and the screen says what failed and
what to do. Each failure here is provoked for real where it is cheap (gpg,
a failing program, a damaged file) and with fakes where a device is needed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from runtime import error_detail
from runtime.error_detail import describe, detail, recent_details
from runtime.state.boot_side import BootSide
from runtime.state.platform import EnrolFacts
from tests.support.plain_words import assert_plain

pytestmark = pytest.mark.usefixtures("scratch_log")


#: what no screen string may hold (issue 25)
class FakeTss2Exception(Exception):
    """tpm2_pytss.TSS2_Exception as errors.translate sees it: an ``rc``."""

    def __init__(self, rc: int) -> None:
        super().__init__(f"TSS2_Exception rc 0x{rc:x}")
        self.rc = rc


# -- the detail module ---------------------------------------------------------------


def test_a_detail_goes_to_the_log_and_is_kept_for_the_ui(scratch_log: Path) -> None:
    detail("sign-boot", "gpg exited with status 2:\nno valid OpenPGP data\x1b[2J")
    (line,) = recent_details()
    assert line == "sign-boot: gpg exited with status 2: | no valid OpenPGP data\\x1b[2J"
    assert "\x1b" not in line and "\n" not in line  # cannot draw on a screen
    assert line in scratch_log.read_text()


def test_only_the_last_few_details_are_kept_in_memory(scratch_log: Path) -> None:
    for number in range(error_detail.MAX_KEPT + 5):
        detail("x", f"failure {number}")
    kept = recent_details()
    assert len(kept) == error_detail.MAX_KEPT
    assert kept[-1] == f"x: failure {error_detail.MAX_KEPT + 4}" and kept[0] == "x: failure 5"
    assert "failure 0" in scratch_log.read_text()  # the log keeps them all
    detail("x", "y" * 10_000)
    assert len(recent_details()[-1]) <= error_detail.MAX_CHARS + 3


def test_a_command_is_described_by_its_program_never_its_arguments() -> None:
    failed = subprocess.CalledProcessError(
        2,
        ["/usr/bin/hotp_verification", "set", "SECRETBASE32", "12345678"],
        stderr=b"first\n\nlast words\n",
    )
    text = describe(failed)
    assert text == "hotp_verification exited with status 2: first | last words"
    slow = subprocess.TimeoutExpired(["/bin/mount", "-o", "rw", "/dev/vda1"], 20)
    assert describe(slow) == "mount did not finish within 20 s"


def test_causes_are_described_too() -> None:
    try:
        try:
            raise FileNotFoundError(2, "No such file or directory", "/etc/x")
        except OSError as err:
            raise ValueError("cannot load") from err
    except ValueError as err:
        text = describe(err)
    assert text.startswith("ValueError: cannot load <- FileNotFoundError: [Errno 2]")


def test_enrol_facts_default_to_the_old_meaning() -> None:
    facts = EnrolFacts(None, "x")
    assert not facts.token_refused and not facts.wrong_pin and not facts.wrong_passphrase


# -- TPM errors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "rc", [0x98E, 0x9A2, 0x99D, 0x128, 0x921, 0x18B, 0x101, 0xA000A, 0x14C, 0x7000C, 0x14A]
)
def test_every_tpm_error_has_plain_words(rc: int) -> None:
    from runtime.tpm.errors import translate

    err = translate(
        FakeTss2Exception(rc),
        "Defining NV index 0x010a0af4",
        auth="TPM owner passphrase",
        owner_auth=True,
    )
    assert "0x010a0af4" in err.message  # the technical text stays for the log
    assert_plain(err.plain())


def test_a_wrong_owner_passphrase_says_try_again() -> None:
    from runtime.tpm.errors import translate

    err = translate(
        FakeTss2Exception(0x98E),
        "Defining NV index 0x010a0af4",
        auth="TPM owner passphrase",
        owner_auth=True,
    )
    assert err.plain().startswith("The TPM refused the owner passphrase.")
    assert "try again" in err.plain()


def test_the_rollback_counter_failure_is_plain_and_logged(monkeypatch: pytest.MonkeyPatch) -> None:
    from runtime.integrity.tpm_counter import CounterFailure, TpmCounter
    from runtime.state import platform_boot
    from runtime.tpm import counters
    from runtime.tpm.errors import translate

    def refused(tpm: object, owner_auth: bytes, index: int | None = None) -> int:
        raise translate(
            FakeTss2Exception(0x98E),
            "Defining NV index 0x010a0af4",
            auth="TPM owner passphrase",
            owner_auth=True,
        )

    monkeypatch.setattr(counters, "create_counter", refused)
    with pytest.raises(CounterFailure) as info:
        TpmCounter(object(), b"not the owner's").create()  # type: ignore[arg-type]
    shown = "/boot was not signed: " + platform_boot._os_words(info.value)
    assert_plain(shown)
    assert "refused the owner passphrase" in shown and "try again" in shown
    assert "Defining NV index 0x010a0af4 failed" in recent_details()[-1]


# -- gpg, for real -----------------------------------------------------------------------


@pytest.fixture
def corrupt_key(tmp_path: Path) -> Path:
    key = tmp_path / "owner.asc"
    key.write_text(
        "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nnot a key at all\n"
        "-----END PGP PUBLIC KEY BLOCK-----\n"
    )
    return key


def test_signing_with_a_corrupt_owner_key_is_plain(
    corrupt_key: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The issue's own example: gpg --import of the owner key failed, and the
    screen showed the command line and "returned non-zero exit status 2"."""
    from runtime.state import platform_boot

    monkeypatch.setattr(platform_boot, "OWNER_KEY_PATH", str(corrupt_key))
    monkeypatch.setattr(platform_boot, "OWNER_SECRET_KEY_PATH", str(tmp_path / "none.asc"))
    side = BootSide(boot_dir=str(tmp_path / "boot"), device="/dev/vda1")
    facts = platform_boot.sign(
        side, object(), lambda *_: None, lambda *_: None, None, lambda _: None
    )
    assert facts.check is None
    assert_plain(facts.problem)
    assert facts.problem.startswith("/boot was not signed: gpg could not load the owner's key")
    assert "Build the firmware image again" in facts.problem
    assert any("gpg exited with status 2" in line for line in recent_details())


def test_verifying_against_a_corrupt_owner_key_is_plain(corrupt_key: Path, tmp_path: Path) -> None:
    from runtime.integrity.verify_boot import verify_boot

    boot = tmp_path / "boot"
    boot.mkdir()
    (boot / "kexec.sig").write_text("not a signature")
    (boot / "kexec_rollback.txt").write_text("x" * 64 + "  /tmp/counter-1a2b3c\n")
    report = verify_boot(str(boot), str(corrupt_key), lambda index: 1)
    assert not report.ok
    for finding in report.findings:
        assert_plain(str(finding))


def test_the_keyring_of_a_corrupt_key_file_is_plain(corrupt_key: Path) -> None:
    from runtime.integrity.keyring import read_keyring

    facts = read_keyring(str(corrupt_key))
    assert not facts.fingerprints
    assert_plain(facts.problem)


# -- other programs and files ------------------------------------------------------------


def test_a_kexec_refusal_is_plain(tmp_path: Path) -> None:
    from runtime.kexec import load as kexec_load
    from runtime.kexec.errors import KexecError
    from runtime.kexec.plan import KexecPlan

    binary = tmp_path / "kexec"
    binary.write_text(
        f"#!{sys.executable}\nimport sys\n"
        "sys.stderr.write('kexec_load failed: Invalid argument\\n')\n"
        "sys.exit(255)\n"
    )
    binary.chmod(0o755)
    with pytest.raises(KexecError) as info:
        kexec_load.load(
            KexecPlan(("-l", "/boot/vmlinuz"), ("/boot/vmlinuz",)), kexec_binary=str(binary)
        )
    assert_plain(str(info.value))
    assert "Invalid argument" not in str(info.value)
    assert (
        "kexec exited with status 255: kexec_load failed: Invalid argument" in recent_details()[-1]
    )


def test_a_failed_mount_is_plain(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from runtime.devices import boot_device

    device = tmp_path / "disk.img"
    head = bytearray(4096)
    head[1080:1082] = b"\x53\xef"  # ext4, no journal waiting
    device.write_bytes(bytes(head))

    def refuse(cmd: list[str], **_: object) -> None:
        raise subprocess.CalledProcessError(
            32, ["/usr/bin/mount", *cmd[1:]], stderr=b"mount: wrong fs type, bad option"
        )

    monkeypatch.setattr(subprocess, "run", refuse)
    problem = boot_device.remount(str(device), str(tmp_path / "boot"), writable=True)
    assert_plain(problem)
    assert "could not be mounted read-write" in problem and "try again" in problem
    assert "mount exited with status 32: mount: wrong fs type" in recent_details()[-1]


@pytest.mark.parametrize("content", ["{not json", '{"source_date_epoch": "soon"}'])
def test_a_damaged_build_info_is_plain(tmp_path: Path, content: str) -> None:
    from runtime.devices.clock import ClockError, image_build_time

    info = tmp_path / "build-info.json"
    info.write_text(content)
    with pytest.raises(ClockError) as err:
        image_build_time(str(info))
    assert_plain(str(err.value))
    assert "source_date_epoch" not in str(err.value)  # the file's format is internal
    assert str(info) in recent_details()[-1]


def test_setting_the_time_with_an_unexpected_failure_is_plain(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from runtime.state import device_platform
    from runtime.state.device_platform import DevicePlatform

    def broken(when: object) -> None:
        raise PermissionError(1, "Operation not permitted", "/dev/rtc0")

    monkeypatch.setattr(device_platform, "set_system_time", broken)
    problem = DevicePlatform().set_time("2026-03-14 09:30")
    assert_plain(problem)
    assert "Try again" in problem


def test_a_damaged_board_file_is_plain(monkeypatch: pytest.MonkeyPatch) -> None:
    from runtime.config import ConfigError
    from runtime.state import platform_start
    from runtime.state.device_platform import DevicePlatform

    def damaged() -> None:
        raise ConfigError(
            "board file is not valid TOML: Expected '=' after a key in a "
            "key/value pair (at line 3, column 5)"
        )

    monkeypatch.setattr(platform_start, "load_board", damaged)
    facts = DevicePlatform().start()
    assert_plain(facts.fatal)
    assert "TOML" not in facts.fatal and "build it again" in facts.fatal
    assert "not valid TOML" in recent_details()[-1]


def test_the_rollback_preflight_names_no_nv_index(tmp_path: Path) -> None:
    from runtime.integrity.preflight import CounterMissing, preflight

    (tmp_path / "kexec_rollback.txt").write_text("x" * 64 + "  /tmp/counter-10a0af4\n")

    def gone(index: int) -> object:
        raise CounterMissing()

    problem = preflight(str(tmp_path), gone)  # type: ignore[arg-type]
    assert_plain(problem)
    assert "0x010a0af4" in recent_details()[-1]
