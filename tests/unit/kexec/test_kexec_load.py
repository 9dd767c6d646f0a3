"""load/unload/execute against a fake kexec that records its arguments."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from runtime.error_detail import recent_details
from runtime.kexec import load as kexec_load
from runtime.kexec.errors import KexecError
from runtime.kexec.plan import KexecPlan

# The fake writes its arguments (and, if asked, the combined initrd it was given)
# as JSON next to itself, then says and exits as configured.
FAKE = """#!{python}
import json, os, sys, time
here = os.path.dirname(os.path.abspath(__file__))
record = {{"argv": sys.argv[1:]}}
initrd = [a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--initrd=")]
if initrd:
    with open(initrd[0], "rb") as f:
        record["initrd"] = f.read().hex()
with open(os.path.join(here, "calls.jsonl"), "a") as f:
    f.write(json.dumps(record) + "\\n")
time.sleep({sleep})
sys.stderr.write({stderr!r})
sys.exit({status})
"""


def fake_kexec(tmp_path: Path, *, status: int = 0, stderr: str = "", sleep: float = 0) -> str:
    path = tmp_path / "kexec"
    path.write_text(FAKE.format(python=sys.executable, status=status, stderr=stderr, sleep=sleep))
    path.chmod(0o755)
    return str(path)


def calls(tmp_path: Path) -> list[dict[str, object]]:
    lines = (tmp_path / "calls.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_load_runs_kexec_with_the_plan_arguments(tmp_path: Path) -> None:
    binary = fake_kexec(tmp_path)
    plan = KexecPlan(("-l", "/boot/vmlinuz", "--append=root=x ro"), ("/boot/vmlinuz",))
    kexec_load.load(plan, kexec_binary=binary)
    assert calls(tmp_path) == [{"argv": ["-l", "/boot/vmlinuz", "--append=root=x ro"]}]


def test_load_writes_the_combined_initrd_first(tmp_path: Path) -> None:
    binary = fake_kexec(tmp_path)
    (tmp_path / "a").write_bytes(b"12345")
    (tmp_path / "b").write_bytes(b"6789")
    out = str(tmp_path / "out.cpio")
    parts = (str(tmp_path / "a"), str(tmp_path / "b"))
    plan = KexecPlan(("-l", "/k", f"--initrd={out}"), ("/k", *parts), parts, out)
    kexec_load.load(plan, kexec_binary=binary)
    (call,) = calls(tmp_path)
    assert call["initrd"] == (b"12345\0\0\0" + b"6789").hex()
    assert os.stat(out).st_mode & 0o777 == 0o600


def test_unload_arguments(tmp_path: Path) -> None:
    binary = fake_kexec(tmp_path)
    kexec_load.unload(kexec_binary=binary)
    assert [c["argv"] for c in calls(tmp_path)] == [["-u"]]


def test_failure_reports_kexec_stderr(tmp_path: Path) -> None:
    binary = fake_kexec(tmp_path, status=1, stderr="Cannot determine the file type of x\n")
    plan = KexecPlan(("-l", "/x"), ("/x",))
    with pytest.raises(KexecError) as info:
        kexec_load.load(plan, kexec_binary=binary)
    message = str(info.value)
    assert message.startswith("Loading the kernel failed: kexec refused it.")
    assert "choose another entry" in message
    # kexec's own words and status go to the runtime's log, not the screen
    assert "Cannot determine the file type" not in message and "status" not in message
    assert "exited with status 1: Cannot determine the file type of x" in recent_details()[-1]
    with pytest.raises(KexecError, match="Unloading the kernel failed"):
        kexec_load.unload(kexec_binary=binary)


def test_failure_without_stderr_says_so(tmp_path: Path) -> None:
    binary = fake_kexec(tmp_path, status=3)
    with pytest.raises(KexecError, match=r"refused it without giving a reason"):
        kexec_load.unload(kexec_binary=binary)


def test_timeout_is_enforced(tmp_path: Path) -> None:
    binary = fake_kexec(tmp_path, sleep=30)
    start = time.monotonic()
    with pytest.raises(KexecError, match=r"within 0\.5 s"):
        kexec_load.load(KexecPlan(("-l", "/x"), ("/x",)), kexec_binary=binary, timeout=0.5)
    assert time.monotonic() - start < 10


def test_missing_binary_is_plain(tmp_path: Path) -> None:
    with pytest.raises(KexecError, match="is missing"):
        kexec_load.unload(kexec_binary=str(tmp_path / "no-kexec"))


def test_unreadable_initrd_part_is_plain_and_leaves_no_file(tmp_path: Path) -> None:
    binary = fake_kexec(tmp_path)
    out = str(tmp_path / "out.cpio")
    parts = (str(tmp_path / "gone-a"), str(tmp_path / "gone-b"))
    plan = KexecPlan(("-l", "/k", f"--initrd={out}"), ("/k", *parts), parts, out)
    with pytest.raises(KexecError, match="Cannot write the combined initrd"):
        kexec_load.load(plan, kexec_binary=binary)
    assert not os.path.exists(out)
    assert not (tmp_path / "calls.jsonl").exists()  # kexec never ran
