"""The leak watch itself: it must catch a secret in an argument list, in a
file written outside the allowed directory and in a log line, and pass a
clean run."""

from __future__ import annotations

import base64
import logging
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from runtime import bootlog
from tests.leakcheck import LeakWatch, secret_forms

SECRET = bytes(range(1, 21))  # 20 bytes, like a TOTP secret
TRUE = shutil.which("true") or "/bin/true"
B32 = base64.b32encode(SECRET).decode().rstrip("=")


def test_secret_forms_cover_the_usual_spellings() -> None:
    forms = secret_forms(SECRET)
    assert SECRET in forms
    assert SECRET.hex().encode() in forms
    assert B32.encode() in forms
    assert " ".join(B32[i : i + 4] for i in range(0, len(B32), 4)).encode() in forms
    assert base64.b32encode(SECRET) in forms  # padded
    assert len(forms) == len(set(forms))
    with pytest.raises(ValueError, match="too short"):
        secret_forms(b"1234")


def test_a_clean_run_passes(tmp_path: Path) -> None:
    allowed = tmp_path / "secret"
    allowed.mkdir()
    with LeakWatch(allowed) as watch:
        (allowed / "key").write_bytes(SECRET)  # inside the allowed directory: fine
        (tmp_path / "note").write_text("nothing secret here")
        subprocess.run([TRUE, "--length", str(len(SECRET))], timeout=10, check=True)
        logging.getLogger("runtime.test").debug("unsealed %d bytes", len(SECRET))
        bootlog.stage("unsealed", size=len(SECRET))
    watch.assert_clean(secret_forms(SECRET))
    assert any(cmd[1][:2] == [TRUE.encode()] * 2 for cmd in watch.commands)
    assert str(tmp_path / "note") in watch.written
    assert any("stage=unsealed size=20" in line for line in watch.log_lines)


def test_a_secret_on_an_argument_list_is_caught() -> None:
    with LeakWatch() as watch:
        subprocess.run([TRUE, "--key", SECRET.hex()], timeout=10, check=True)
    with pytest.raises(AssertionError, match=r"subprocess.Popen.*--key <SECRET>"):
        watch.assert_clean(secret_forms(SECRET))


def test_a_secret_in_a_child_environment_or_shell_command_is_caught() -> None:
    with LeakWatch() as watch:
        subprocess.run([TRUE], env={"TOTP": B32}, timeout=10, check=True)
        os.system("true " + B32.lower())  # noqa: S605 - the leak under test
    found = watch.findings(secret_forms(SECRET))
    assert any("subprocess.Popen" in line and "TOTP=<SECRET>" in line for line in found)
    assert any("os.system" in line for line in found)


def test_a_secret_written_outside_the_allowed_directory_is_caught(tmp_path: Path) -> None:
    allowed = tmp_path / "secret"
    allowed.mkdir()
    leaked = tmp_path / "debug.txt"
    with LeakWatch(allowed) as watch:
        leaked.write_text(f"secret={B32}\n")
    with pytest.raises(AssertionError, match=f"the file {leaked}, written outside"):
        watch.assert_clean(secret_forms(SECRET))


def test_a_file_renamed_out_of_the_allowed_directory_is_followed(tmp_path: Path) -> None:
    allowed = tmp_path / "secret"
    allowed.mkdir()
    with LeakWatch(allowed) as watch:
        (allowed / "key").write_bytes(SECRET)
        os.rename(allowed / "key", tmp_path / "moved")
    found = watch.findings(secret_forms(SECRET))
    assert [line.split(",")[0] for line in found] == [f"the file {tmp_path / 'moved'}"]


def test_a_file_written_and_removed_outside_cannot_be_checked(tmp_path: Path) -> None:
    with LeakWatch(tmp_path / "secret") as watch:
        (tmp_path / "gone").write_bytes(SECRET)
        (tmp_path / "gone").unlink()
    assert "removed before it could be checked" in watch.findings(secret_forms(SECRET))[0]
    with LeakWatch(tmp_path / "secret", allow_vanished=True) as relaxed:
        (tmp_path / "gone").write_bytes(b"x")
        (tmp_path / "gone").unlink()
    relaxed.assert_clean(secret_forms(SECRET))


def test_a_secret_in_a_log_line_is_caught_even_at_debug_level() -> None:
    logger = logging.getLogger("runtime.test.leak")
    level = logging.getLogger().level
    with LeakWatch() as watch:
        logger.debug("the secret is %r", SECRET)
    with pytest.raises(AssertionError, match="a log line holds the secret"):
        watch.assert_clean(secret_forms(SECRET))
    assert logging.getLogger().level == level  # restored


def test_a_secret_in_the_stage_log_is_caught_and_run_log_untouched() -> None:
    before = bootlog.LOG_PATH
    with LeakWatch() as watch:
        bootlog.stage("oops", secret=SECRET.hex())
        assert before != bootlog.LOG_PATH  # pointed at the watch's scratch file
    assert before == bootlog.LOG_PATH
    found = watch.findings(secret_forms(SECRET))
    assert found and all("stage=oops secret=<SECRET>" in line for line in found)


def test_a_fork_is_reported_because_the_child_is_invisible() -> None:
    with LeakWatch() as watch:
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
    assert "forked (os.fork)" in watch.findings(secret_forms(SECRET))[0]


def test_checking_inside_the_block_is_refused() -> None:
    with LeakWatch() as watch, pytest.raises(RuntimeError, match="after its with block"):
        watch.assert_clean(secret_forms(SECRET))


def test_nested_watches_each_see_the_block() -> None:
    with LeakWatch() as outer:
        with LeakWatch() as inner:
            subprocess.run([TRUE, SECRET.hex()], timeout=10, check=True)
        subprocess.run([TRUE, "later"], timeout=10, check=True)
    assert len(inner.findings(secret_forms(SECRET))) == 1
    assert len(outer.commands) == 2
