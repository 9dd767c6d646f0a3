"""cryptsetup for the Disk Unlock Key, against real cryptsetup on LUKS1 and
LUKS2 image files (this host's kernel has no device-mapper: nothing is ever
activated, and nothing here needs it). Key derivation is made fast
(pbkdf2, 1000 iterations); each test gets a fresh copy of a formatted image.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runtime.disk import cryptsetup_ops as ops
from runtime.disk.cryptsetup_ops import CryptsetupError, Pbkdf, Problem
from tests.support.luks_images import IMAGE_SIZE, luks_format
from tests.support.plain_words import assert_plain

pytestmark = pytest.mark.skipif(
    not os.access(ops.CRYPTSETUP, os.X_OK), reason=f"{ops.CRYPTSETUP} is not installed"
)

RECOVERY = b"recovery passphrase"
#: what the DUK's tests look for in argv, files and messages
DUK = b"DUK-\x00\n\xff-" + b"k" * 120
FAST = Pbkdf(kind="pbkdf2", iterations=1000)
DUK_SLOT = {1: 7, 2: 31}
#: argv and options of each process started
Spawned = list[tuple[Any, dict[str, Any]]]


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    folder = tmp_path_factory.mktemp("luks")
    made = {}
    for version in (1, 2):
        made[version] = folder / f"luks{version}.img"
        luks_format(made[version], version, RECOVERY)
    return made


@pytest.fixture(params=[1, 2], ids=["luks1", "luks2"])
def version(request: pytest.FixtureRequest) -> int:
    value: int = request.param
    return value


@pytest.fixture
def disk(tmp_path: Path, templates: dict[int, Path], version: int) -> str:
    """A fresh LUKS image of ``version`` whose slot 0 RECOVERY opens."""
    path = tmp_path / "disk.img"
    shutil.copyfile(templates[version], path)
    return str(path)


@pytest.fixture
def work_dir(tmp_path: Path) -> str:
    path = tmp_path / "secret"
    path.mkdir(mode=0o700)
    return str(path)


@pytest.fixture
def spawned(monkeypatch: pytest.MonkeyPatch) -> Spawned:
    """Every process started, argv and options, while the test runs."""
    calls: Spawned = []
    real = subprocess.Popen

    class Recording(real):  # type: ignore[misc,valid-type]
        def __init__(self, args: Any, *rest: Any, **options: Any) -> None:
            calls.append((args, options))
            super().__init__(args, *rest, **options)

    monkeypatch.setattr(subprocess, "Popen", Recording)
    return calls


def fake_cryptsetup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str) -> None:
    tool = tmp_path / "fake-cryptsetup"
    tool.write_text("#!/bin/sh\n" + script)
    tool.chmod(0o755)
    monkeypatch.setattr(ops, "CRYPTSETUP", str(tool))


def problem_of(call: Any, *args: Any, **kwargs: Any) -> Problem:
    with pytest.raises(CryptsetupError) as caught:
        call(*args, **kwargs)
    assert_plain(caught.value.plain())
    return caught.value.problem


# --- which container, which version, which UUID ---


def test_is_luks_gives_the_version(disk: str, version: int) -> None:
    assert ops.is_luks(disk) == version


def test_luks_uuid_is_cryptsetups_and_the_headers(disk: str) -> None:
    said = subprocess.run(
        [ops.CRYPTSETUP, "luksUUID", disk], capture_output=True, check=True, timeout=30
    )
    assert ops.luks_uuid(disk) == said.stdout.decode().strip()


def test_a_file_that_is_not_luks_is_not_luks(tmp_path: Path) -> None:
    plain = tmp_path / "plain.img"
    plain.write_bytes(os.urandom(8192))
    assert ops.is_luks(str(plain)) is None
    assert problem_of(ops.luks_uuid, str(plain)) is Problem.NOT_LUKS
    assert problem_of(ops.used_slots, str(plain)) is Problem.NOT_LUKS


def test_a_secondary_only_header_is_not_a_container(
    tmp_path: Path, templates: dict[int, Path]
) -> None:
    # the LUKS2 secondary header (at 16 KiB) copied to the start of a file
    data = templates[2].read_bytes()
    image = tmp_path / "secondary.img"
    image.write_bytes(data[16384 : 2 * 16384] + bytes(IMAGE_SIZE - 16384))
    assert ops.is_luks(str(image)) is None
    assert problem_of(ops.slot_opened_by, str(image), RECOVERY) is Problem.NOT_LUKS


def test_a_wiped_primary_is_never_handed_to_cryptsetup(
    tmp_path: Path, templates: dict[int, Path], spawned: Spawned
) -> None:
    """cryptsetup would rebuild the primary from the secondary: a write, even
    for isLuks --readonly. The runtime reads the first bytes and stops."""
    image = tmp_path / "wiped.img"
    shutil.copyfile(templates[2], image)
    with open(image, "r+b") as f:
        f.write(bytes(4096))
    before = hashlib.sha256(image.read_bytes()).digest()
    assert ops.is_luks(str(image)) is None
    assert spawned == []
    assert hashlib.sha256(image.read_bytes()).digest() == before


def test_a_header_whose_uuid_holds_garbage_is_refused_unread_by_cryptsetup(
    disk: str, spawned: Spawned
) -> None:
    with open(disk, "r+b") as f:
        f.seek(168)
        f.write(b"$(reboot)\n;")
    for call in (ops.is_luks, ops.luks_uuid, ops.used_slots):
        assert problem_of(call, disk) is Problem.BAD_HEADER
    assert problem_of(ops.add_key, disk, RECOVERY, DUK, 3) is Problem.BAD_HEADER
    assert spawned == []


def test_a_header_cryptsetup_does_not_take_is_refused(
    tmp_path: Path, templates: dict[int, Path]
) -> None:
    """The first 4 KiB look right, the JSON area behind them is gone."""
    image = tmp_path / "no-json.img"
    head = templates[2].read_bytes()[:4096]
    image.write_bytes(head + bytes(IMAGE_SIZE - 4096))
    assert problem_of(ops.is_luks, str(image)) is Problem.BAD_HEADER


def test_a_truncated_header_is_refused(tmp_path: Path, templates: dict[int, Path]) -> None:
    image = tmp_path / "short.img"
    image.write_bytes(templates[2].read_bytes()[:1000])
    assert problem_of(ops.is_luks, str(image)) is Problem.BAD_HEADER


# --- hostile paths ---


def test_a_device_that_vanished_is_reported_plainly(tmp_path: Path) -> None:
    gone = str(tmp_path / "sdz9")
    for call in (ops.is_luks, ops.luks_uuid, ops.used_slots):
        assert problem_of(call, gone) is Problem.NO_DEVICE
    assert problem_of(ops.slot_opened_by, gone, RECOVERY) is Problem.NO_DEVICE
    assert problem_of(ops.kill_slot, gone, 1, RECOVERY) is Problem.NO_DEVICE


def test_a_symlink_to_a_container_is_refused(tmp_path: Path, disk: str) -> None:
    link = tmp_path / "link"
    link.symlink_to(disk)
    assert problem_of(ops.is_luks, str(link)) is Problem.UNSAFE_PATH
    assert problem_of(ops.slot_opened_by, str(link), RECOVERY) is Problem.UNSAFE_PATH


@pytest.mark.timeout(20)
def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert problem_of(ops.is_luks, str(fifo)) is Problem.UNSAFE_PATH
    assert problem_of(ops.header_backup_digest, str(fifo), str(tmp_path)) is Problem.UNSAFE_PATH


def test_other_kinds_of_file_are_refused(tmp_path: Path) -> None:
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(tmp_path / "sock"))
    try:
        for path in ("/dev/null", str(tmp_path), str(tmp_path / "sock")):
            assert problem_of(ops.is_luks, path) is Problem.UNSAFE_PATH
    finally:
        server.close()


def test_a_relative_path_is_refused_as_it_could_read_as_an_option() -> None:
    assert problem_of(ops.is_luks, "--help") is Problem.UNSAFE_PATH


# --- passphrases ---


def test_the_slot_a_passphrase_opens(disk: str) -> None:
    assert ops.slot_opened_by(disk, RECOVERY) == 0
    assert ops.slot_opened_by(disk, bytearray(RECOVERY)) == 0


@pytest.mark.parametrize(
    "wrong", [b"wrong", RECOVERY[:-1], RECOVERY + b"\n", b"\0" + RECOVERY], ids=repr
)
def test_a_wrong_passphrase_opens_none(disk: str, wrong: bytes) -> None:
    assert ops.slot_opened_by(disk, wrong) is None


def test_a_passphrase_of_any_bytes_works_exactly_as_given(tmp_path: Path, version: int) -> None:
    odd = b"a\x00b\nc\xff\xfe\xc3\xa9 \t\n"
    image = tmp_path / "odd.img"
    luks_format(image, version, odd)
    assert ops.slot_opened_by(str(image), odd) == 0
    assert ops.slot_opened_by(str(image), odd.rstrip(b"\n")) is None
    assert ops.slot_opened_by(str(image), odd.split(b"\0")[0]) is None
    ops.add_key(str(image), odd, DUK, DUK_SLOT[version], pbkdf=FAST)
    assert ops.slot_opened_by(str(image), DUK) == DUK_SLOT[version]


def test_secrets_must_be_bytes_of_a_sane_length(disk: str) -> None:
    with pytest.raises(TypeError):
        ops.slot_opened_by(disk, "text")  # type: ignore[arg-type]
    assert problem_of(ops.slot_opened_by, disk, b"") is Problem.BAD_SECRET
    too_long = b"x" * (ops.MAX_SECRET + 1)
    assert problem_of(ops.slot_opened_by, disk, too_long) is Problem.BAD_SECRET


# --- key slots ---


def test_used_slots(disk: str, version: int) -> None:
    assert ops.used_slots(disk) == {0}
    ops.add_key(disk, RECOVERY, DUK, DUK_SLOT[version], pbkdf=FAST)
    assert ops.used_slots(disk) == {0, DUK_SLOT[version]}


def test_add_key_puts_the_duk_into_heads_slot(disk: str, version: int) -> None:
    ops.add_key(disk, RECOVERY, DUK, DUK_SLOT[version], pbkdf=FAST)
    assert ops.slot_opened_by(disk, DUK) == DUK_SLOT[version]
    assert ops.slot_opened_by(disk, RECOVERY) == 0


def test_add_key_never_overwrites_a_slot_in_use(disk: str, version: int) -> None:
    ops.add_key(disk, RECOVERY, b"first", 3, pbkdf=FAST)
    problem = problem_of(ops.add_key, disk, RECOVERY, DUK, 3, pbkdf=FAST)
    assert problem is Problem.SLOT_IN_USE
    assert ops.slot_opened_by(disk, b"first") == 3
    assert ops.slot_opened_by(disk, DUK) is None


def test_cryptsetup_itself_refuses_a_slot_in_use(
    disk: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ops, "used_slots", lambda device, timeout=0: set())
    with pytest.raises(CryptsetupError) as caught:
        ops.add_key(disk, RECOVERY, DUK, 0, pbkdf=FAST)
    assert caught.value.problem is Problem.SLOT_IN_USE and caught.value.returncode == 1
    assert "is full" in str(caught.value)
    assert ops.slot_opened_by(disk, RECOVERY) == 0


def test_a_slot_the_version_does_not_have_is_refused(disk: str, version: int) -> None:
    for slot in (-1, 8, 32, 99) if version == 1 else (-1, 32, 99):
        assert problem_of(ops.add_key, disk, RECOVERY, DUK, slot) is Problem.SLOT_INVALID
        assert problem_of(ops.kill_slot, disk, slot, RECOVERY) is Problem.SLOT_INVALID
    with pytest.raises(TypeError):
        ops.add_key(disk, RECOVERY, DUK, True)


def test_add_key_with_a_wrong_passphrase_adds_nothing(disk: str, version: int) -> None:
    problem = problem_of(ops.add_key, disk, b"wrong", DUK, DUK_SLOT[version], pbkdf=FAST)
    assert problem is Problem.WRONG_PASSPHRASE
    assert ops.used_slots(disk) == {0}


def test_luks2_slot_31_needs_no_bigger_keyslots_area_only_room(tmp_path: Path) -> None:
    """LUKS2 numbers its slots 0-31 whatever the keyslots area holds; a small
    area runs out of room, not out of numbers."""
    image = tmp_path / "small-area.img"
    luks_format(image, 2, RECOVERY, "--luks2-keyslots-size=512k")
    ops.add_key(str(image), RECOVERY, DUK, 31, pbkdf=FAST)
    assert ops.slot_opened_by(str(image), DUK) == 31
    problem = problem_of(ops.add_key, str(image), RECOVERY, b"third", 5, pbkdf=FAST)
    assert problem is Problem.NO_KEYSLOT_SPACE


def test_kill_slot_wipes_the_duk_slot(disk: str, version: int) -> None:
    ops.add_key(disk, RECOVERY, DUK, DUK_SLOT[version], pbkdf=FAST)
    ops.kill_slot(disk, DUK_SLOT[version], RECOVERY)
    assert ops.used_slots(disk) == {0}
    assert ops.slot_opened_by(disk, DUK) is None


def test_the_recovery_slot_is_never_wiped_with_its_own_passphrase(disk: str, version: int) -> None:
    ops.add_key(disk, RECOVERY, DUK, DUK_SLOT[version], pbkdf=FAST)
    assert problem_of(ops.kill_slot, disk, 0, RECOVERY) is Problem.OWN_SLOT
    assert ops.slot_opened_by(disk, RECOVERY) == 0


def test_cryptsetup_itself_refuses_a_passphrase_of_the_slot_it_wipes(
    disk: str, version: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With other slots left, luksKillSlot checks the passphrase against them only."""
    ops.add_key(disk, RECOVERY, DUK, DUK_SLOT[version], pbkdf=FAST)
    monkeypatch.setattr(ops, "slot_opened_by", lambda device, secret, timeout=0: 5)
    assert problem_of(ops.kill_slot, disk, 0, RECOVERY) is Problem.WRONG_PASSPHRASE
    monkeypatch.undo()
    assert ops.slot_opened_by(disk, RECOVERY) == 0


def test_without_the_runtimes_check_cryptsetup_wipes_the_last_slot(
    disk: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Why kill_slot asks which slot the passphrase opens: in batch mode,
    luksKillSlot takes the last slot's own passphrase and wipes it."""
    monkeypatch.setattr(ops, "slot_opened_by", lambda device, secret, timeout=0: 5)
    ops.kill_slot(disk, 0, RECOVERY)
    assert ops.used_slots(disk) == set()


def test_kill_slot_refuses_a_wrong_passphrase_and_an_empty_slot(disk: str, version: int) -> None:
    ops.add_key(disk, RECOVERY, DUK, DUK_SLOT[version], pbkdf=FAST)
    problem = problem_of(ops.kill_slot, disk, DUK_SLOT[version], b"wrong")
    assert problem is Problem.WRONG_PASSPHRASE
    assert problem_of(ops.kill_slot, disk, 2, RECOVERY) is Problem.SLOT_EMPTY
    assert ops.used_slots(disk) == {0, DUK_SLOT[version]}


def test_pbkdf_arguments() -> None:
    assert FAST.args(2) == ["--pbkdf=pbkdf2", "--pbkdf-force-iterations=1000"]
    capped = Pbkdf(kind="argon2id", memory_kib=65536, iter_time_ms=500)
    assert capped.args(2) == ["--pbkdf=argon2id", "--pbkdf-memory=65536", "--iter-time=500"]
    assert Pbkdf().args(1) == []
    for bad, version in (
        (Pbkdf(kind="argon2id"), 1),
        (Pbkdf(kind="md5"), 2),
        (Pbkdf(iterations=0), 2),
        (Pbkdf(memory_kib=True), 2),
    ):
        with pytest.raises(ValueError):
            bad.args(version)


# --- secrets stay out of argv, files and messages ---


def test_secrets_never_reach_argv_the_environment_or_a_file(
    disk: str, version: int, spawned: Spawned, tmp_path: Path, work_dir: str
) -> None:
    slot = DUK_SLOT[version]
    ops.add_key(disk, RECOVERY, DUK, slot, pbkdf=FAST)
    assert ops.slot_opened_by(disk, DUK) == slot
    ops.header_backup_digest(disk, work_dir)
    ops.kill_slot(disk, slot, RECOVERY)
    for wrong in (DUK, b"wrong " + RECOVERY):
        with pytest.raises(CryptsetupError) as caught:
            ops.add_key(disk, wrong, DUK, 5, pbkdf=FAST)
        for text in (str(caught.value), caught.value.plain()):
            assert not _holds_secret(text.encode("utf-8", "surrogateescape"))
    assert len(spawned) >= 8
    for argv, options in spawned:
        assert isinstance(argv, list) and not options.get("shell")
        assert not any(_holds_secret(os.fsencode(arg)) for arg in argv)
        env = options.get("env") or {}
        assert not any(_holds_secret(os.fsencode(v)) for v in env.values())
    # the secrets went through pipes: not in any file, not left in the RAM folder
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert not _holds_secret(path.read_bytes()), path
    assert os.listdir(work_dir) == []


def _holds_secret(data: bytes) -> bool:
    return any(secret in data for secret in (RECOVERY, DUK, DUK[8:40], RECOVERY[3:15]))


def test_every_call_has_a_timeout_and_a_closed_stdin(disk: str, spawned: Spawned) -> None:
    ops.is_luks(disk)
    ops.slot_opened_by(disk, RECOVERY)
    assert spawned and all(opts["stdin"] is subprocess.DEVNULL for _, opts in spawned)


# --- the header backup, what PCR 6 is extended with ---


def test_header_backup_digest_is_the_backup_files_sha256(
    disk: str, work_dir: str, tmp_path: Path
) -> None:
    by_hand = tmp_path / "by-hand"
    subprocess.run(
        [ops.CRYPTSETUP, "luksHeaderBackup", "--header-backup-file", str(by_hand), disk],
        check=True,
        capture_output=True,
        timeout=30,
    )
    digest = ops.header_backup_digest(disk, work_dir)
    assert digest == hashlib.sha256(by_hand.read_bytes()).digest()
    assert ops.header_backup_digest(disk, work_dir) == digest
    assert os.listdir(work_dir) == []


def test_header_backup_digest_changes_with_a_new_key(
    disk: str, version: int, work_dir: str
) -> None:
    before = ops.header_backup_digest(disk, work_dir)
    ops.add_key(disk, RECOVERY, DUK, DUK_SLOT[version], pbkdf=FAST)
    assert ops.header_backup_digest(disk, work_dir) != before


def test_header_backup_digest_refuses_a_missing_or_linked_work_dir(
    disk: str, tmp_path: Path, work_dir: str
) -> None:
    missing = str(tmp_path / "nowhere")
    assert problem_of(ops.header_backup_digest, disk, missing) is Problem.BACKUP_NOT_WRITTEN
    link = tmp_path / "linked"
    link.symlink_to(work_dir)
    assert problem_of(ops.header_backup_digest, disk, str(link)) is Problem.BACKUP_NOT_WRITTEN
    assert os.listdir(work_dir) == []


def test_a_backup_that_fails_half_written_leaves_nothing(
    disk: str, work_dir: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As cryptsetup does when the RAM folder fills up: part of the file, status 1."""
    fake_cryptsetup(
        tmp_path,
        monkeypatch,
        'file="${1#--header-backup-file=}"; file="${2#--header-backup-file=}"\n'
        'head -c 1000 /dev/zero > "$file"\n'
        'echo "Cannot write header backup file $file." >&2; exit 1\n',
    )
    assert problem_of(ops.header_backup_digest, disk, work_dir) is Problem.BACKUP_NOT_WRITTEN
    assert os.listdir(work_dir) == []


def test_a_backup_said_to_be_written_but_missing_is_a_failure(
    disk: str, work_dir: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_cryptsetup(tmp_path, monkeypatch, "exit 0\n")
    assert problem_of(ops.header_backup_digest, disk, work_dir) is Problem.FAILED
    assert os.listdir(work_dir) == []


# --- a tool that hangs, is missing, or fails in other ways ---


def test_a_hanging_cryptsetup_is_stopped(
    disk: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_cryptsetup(tmp_path, monkeypatch, "exec sleep 30\n")
    assert problem_of(ops.is_luks, disk, timeout=0.5) is Problem.TIMEOUT


def test_a_missing_cryptsetup_is_reported(disk: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ops, "CRYPTSETUP", "/nonexistent/cryptsetup")
    assert problem_of(ops.is_luks, disk) is Problem.NO_TOOL


def test_slot_opened_by_distinguishes_other_failures_from_a_wrong_passphrase(
    disk: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_cryptsetup(tmp_path, monkeypatch, "echo 'Out of memory.' >&2; exit 3\n")
    assert problem_of(ops.slot_opened_by, disk, RECOVERY) is Problem.OUT_OF_MEMORY
    fake_cryptsetup(tmp_path, monkeypatch, "echo 'Command successful.'; exit 0\n")
    assert problem_of(ops.slot_opened_by, disk, RECOVERY) is Problem.FAILED


@pytest.mark.parametrize(
    "status,said,problem",
    [
        (2, "No key available with this passphrase.", Problem.WRONG_PASSPHRASE),
        (3, "", Problem.OUT_OF_MEMORY),
        (4, "Device /dev/sdz does not exist or access denied.", Problem.NO_DEVICE),
        (5, "Device is busy.", Problem.BUSY),
        (1, "Key slot 7 is full, please select another one.", Problem.SLOT_IN_USE),
        (1, "Key slot 8 is invalid, please select between 0 and 7.", Problem.SLOT_INVALID),
        (1, "Keyslot 5 is not active.", Problem.SLOT_EMPTY),
        (1, "No space for new keyslot.", Problem.NO_KEYSLOT_SPACE),
        (1, "Device x is not a valid LUKS device.", Problem.NOT_LUKS),
        (1, "something new", Problem.FAILED),
        (139, "", Problem.FAILED),
    ],
)
def test_exit_statuses_and_messages_become_problems(
    status: int, said: str, problem: Problem
) -> None:
    result = subprocess.CompletedProcess(["cryptsetup"], status, b"", said.encode())
    err = ops.failure(result, "luksAddKey", "/dev/sdz")
    assert err.problem is problem and err.returncode == status
    assert f"exit status {status}" in str(err) and said in str(err)
    assert_plain(err.plain())


def test_every_problem_has_plain_words() -> None:
    for problem in Problem:
        err = CryptsetupError(problem, "detail")
        assert_plain(err.plain())
        assert "/" not in err.plain() and "cryptsetup" not in err.plain()
        assert err.summary.endswith(".")


@pytest.fixture(autouse=True)
def _no_stray_processes() -> Iterator[None]:
    yield
    # every cryptsetup started was waited for (subprocess.run), none left behind
    assert not [p for p in os.listdir("/proc") if p.isdigit() and _is_our_child(int(p))]


def _is_our_child(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return int(fields[1]) == os.getpid() and "cryptsetup" in _cmdline(pid)


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""
