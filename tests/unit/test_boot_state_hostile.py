"""/boot as an evil maid leaves it: any kind of file under any name, in
kexec.next.d (or as kexec.next.d) and as kexec_rollback.txt. Settling a
pending signing and the power-on preflight must answer in plain words, within
seconds, drop hostile content without adopting it, and leave /boot's top
level as it was (only kexec.next.d goes).

Every call runs in a thread joined with a timeout: a FIFO opened for reading
blocks forever, and that must fail the test, not hang the run.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from runtime.integrity import signed_state_commit as boot_state
from runtime.integrity.preflight import CounterView, preflight
from runtime.integrity.safe_read import kind_of
from runtime.integrity.signed_state_commit import (
    COMMIT_FILE,
    PENDING_DIR,
    NewState,
    RealDisk,
    read_pending,
    settle_pending,
    stage,
)
from runtime.integrity.verify_boot import MAX_LIST_BYTES
from tests.hang_guard import within

T = TypeVar("T")

COUNTER = 42
OLD = {
    "kexec_hashes.txt": b"old hashes\n",
    "kexec.sig": b"old signature",
    "kexec_rollback.txt": b"old rollback\n",
}
NEW_HASHES = b"new hashes\n"
NEW_SIG = b"new signature"
ROLLBACK_LINE = b"5d41402abc4b2a76b9719d911017c592" * 2 + b"  /tmp/counter-1a2b3c\n"
HUGE = 33 * 1024 * 1024  # past the 32 MiB bound on a staged file


def assert_plain(text: str) -> None:
    assert text, "an empty answer where a finding was expected"
    assert text.endswith("."), text
    for leak in ("[Errno", "Traceback", "Error(", "\n"):
        assert leak not in text, text


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def snapshot(top: Path) -> dict[str, object]:
    """Every entry under top (kexec.next.d aside): its kind and content, a
    link's target; links are not followed."""
    seen: dict[str, object] = {}
    for here, dirs, files in os.walk(top):
        if Path(here) == top and PENDING_DIR in dirs:
            dirs.remove(PENDING_DIR)
        for name in dirs + files:
            path = Path(here, name)
            rel = str(path.relative_to(top))
            if rel == PENDING_DIR:
                continue
            mode = os.lstat(path).st_mode
            if stat.S_ISREG(mode):
                seen[rel] = path.read_bytes()
            elif stat.S_ISLNK(mode):
                seen[rel] = ("link", os.readlink(path))
            else:
                seen[rel] = kind_of(mode)
    return seen


def make_boot(tmp_path: Path) -> Path:
    boot = tmp_path / "boot"
    (boot / "grub").mkdir(parents=True)
    (boot / "grub" / "grub.cfg").write_text("menuentry A { linux /vmlinuz }\n")
    (boot / "vmlinuz").write_bytes(b"kernel")
    for name, data in OLD.items():
        (boot / name).write_bytes(data)
    return boot


def write_commit(directory: Path, files: dict[str, bytes | str], counter: object = COUNTER) -> None:
    """COMMIT as stage writes it; a str value is a digest given as is."""
    digests = {n: d if isinstance(d, str) else sha(d) for n, d in files.items()}
    doc = {"files": digests, "remove": [], "counter": counter}
    (directory / COMMIT_FILE).write_text(json.dumps(doc))


def outside_dir(tmp_path: Path) -> Path:
    """A directory beside /boot holding what a followed link would adopt."""
    outside = tmp_path / "elsewhere"
    outside.mkdir(exist_ok=True)
    (outside / "kexec_hashes.txt").write_bytes(NEW_HASHES)
    (outside / "precious").write_bytes(b"not /boot's to delete")
    return outside


# -- hostile entries inside kexec.next.d -------------------------------------
# Each plants kexec_hashes.txt (or a badly named file) in the pending directory,
# beside a genuine staged kexec.sig, under a COMMIT that would otherwise be
# rolled forward (its counter is the TPM's). None of it may reach /boot.


def plant_directory(pending: Path, tmp_path: Path) -> None:
    entry = pending / "kexec_hashes.txt"
    (entry / "sub" / "deeper").mkdir(parents=True)
    (entry / "file").write_bytes(NEW_HASHES)
    (entry / "sub" / "deeper" / "out").symlink_to(outside_dir(tmp_path))
    write_commit(pending, {"kexec_hashes.txt": NEW_HASHES, "kexec.sig": NEW_SIG})


def plant_fifo(pending: Path, tmp_path: Path) -> None:
    os.mkfifo(pending / "kexec_hashes.txt")
    write_commit(pending, {"kexec_hashes.txt": NEW_HASHES, "kexec.sig": NEW_SIG})


def plant_link_to_dev_zero(pending: Path, tmp_path: Path) -> None:
    (pending / "kexec_hashes.txt").symlink_to("/dev/zero")
    write_commit(pending, {"kexec_hashes.txt": NEW_HASHES, "kexec.sig": NEW_SIG})


def plant_link_to_matching_file(pending: Path, tmp_path: Path) -> None:
    # the target holds exactly the committed bytes: following it would adopt it
    (pending / "kexec_hashes.txt").symlink_to(outside_dir(tmp_path) / "kexec_hashes.txt")
    write_commit(pending, {"kexec_hashes.txt": NEW_HASHES, "kexec.sig": NEW_SIG})


def plant_link_to_outside_dir(pending: Path, tmp_path: Path) -> None:
    (pending / "kexec_hashes.txt").symlink_to(outside_dir(tmp_path))
    write_commit(pending, {"kexec_hashes.txt": NEW_HASHES, "kexec.sig": NEW_SIG})


def plant_huge_file(pending: Path, tmp_path: Path) -> None:
    with open(pending / "kexec_hashes.txt", "wb") as f:
        f.truncate(HUGE)  # sparse: zeros, with COMMIT's hash of exactly those zeros
    digest = hashlib.sha256()
    zeros = bytes(1 << 20)
    for _ in range(HUGE >> 20):
        digest.update(zeros)
    write_commit(pending, {"kexec_hashes.txt": digest.hexdigest(), "kexec.sig": NEW_SIG})


def plant_newline_name(pending: Path, tmp_path: Path) -> None:
    (pending / "kexec_x\n.txt").write_bytes(NEW_HASHES)
    write_commit(pending, {"kexec_x\n.txt": NEW_HASHES, "kexec.sig": NEW_SIG})


def plant_backslash_name(pending: Path, tmp_path: Path) -> None:
    (pending / "kexec\\x.txt").write_bytes(NEW_HASHES)
    write_commit(pending, {"kexec\\x.txt": NEW_HASHES, "kexec.sig": NEW_SIG})


def plant_deep_tree(pending: Path, tmp_path: Path) -> None:
    # deeper than Python's recursion limit and than PATH_MAX allows by name
    fd = os.open(pending, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(1500):
            os.mkdir("kexec_d" * 4, dir_fd=fd)
            sub = os.open("kexec_d" * 4, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = sub
        os.mkfifo("fifo", dir_fd=fd)
    finally:
        os.close(fd)
    write_commit(pending, {"kexec.sig": NEW_SIG, "kexec_hashes.txt": NEW_HASHES})


def plant_junk_without_commit(pending: Path, tmp_path: Path) -> None:
    os.mkfifo(pending / "fifo")
    (pending / "to-zero").symlink_to("/dev/zero")
    (pending / "dir" / "sub").mkdir(parents=True)
    (pending / "kexec_hashes.txt").write_bytes(NEW_HASHES)


HOSTILE_ENTRIES = {
    "a directory": plant_directory,
    "a FIFO": plant_fifo,
    "a symlink to /dev/zero": plant_link_to_dev_zero,
    "a symlink to a matching file outside /boot": plant_link_to_matching_file,
    "a symlink to a directory outside /boot": plant_link_to_outside_dir,
    "a huge file": plant_huge_file,
    "a name with a newline": plant_newline_name,
    "a name with a backslash": plant_backslash_name,
    "a tree deeper than the stack": plant_deep_tree,
    "junk and no COMMIT": plant_junk_without_commit,
}


def settle_and_check(boot: Path, tmp_path: Path) -> str:
    """Settle with the counter at COMMIT's value; /boot's top level and the
    world outside it must be as before, kexec.next.d gone."""
    before, outside_before = snapshot(boot), snapshot(tmp_path / "elsewhere")
    message = within(lambda: settle_pending(str(boot), COUNTER))
    assert_plain(message)
    assert not os.path.lexists(boot / PENDING_DIR)
    assert snapshot(boot) == before
    assert snapshot(tmp_path / "elsewhere") == outside_before
    # and the owner can sign again
    within(lambda: stage(str(boot), NewState({"kexec.sig": b"s"}, [], COUNTER + 1)))
    assert read_pending(str(boot)) is not None
    return message


@pytest.mark.parametrize("plant", HOSTILE_ENTRIES.values(), ids=HOSTILE_ENTRIES.keys())
def test_hostile_entry_in_pending_dir_is_dropped(
    tmp_path: Path, plant: Callable[[Path, Path], None]
) -> None:
    boot = make_boot(tmp_path)
    outside_dir(tmp_path)
    pending = boot / PENDING_DIR
    pending.mkdir()
    (pending / "kexec.sig").write_bytes(NEW_SIG)  # genuine, yet not adopted alone
    plant(pending, tmp_path)
    assert "dropped" in settle_and_check(boot, tmp_path)


# -- kexec.next.d itself is not a directory ----------------------------------


def pending_link_to_staging_outside(boot: Path, tmp_path: Path) -> None:
    # a complete, committed staging out of /boot: entering the link would adopt it
    outside = outside_dir(tmp_path)
    (outside / "kexec.sig").write_bytes(NEW_SIG)
    write_commit(outside, {"kexec_hashes.txt": NEW_HASHES, "kexec.sig": NEW_SIG})
    (boot / PENDING_DIR).symlink_to(outside)


def pending_link_to_dev_zero(boot: Path, tmp_path: Path) -> None:
    (boot / PENDING_DIR).symlink_to("/dev/zero")


def pending_dangling_link(boot: Path, tmp_path: Path) -> None:
    (boot / PENDING_DIR).symlink_to(tmp_path / "nowhere")


def pending_fifo(boot: Path, tmp_path: Path) -> None:
    os.mkfifo(boot / PENDING_DIR)


def pending_regular_file(boot: Path, tmp_path: Path) -> None:
    (boot / PENDING_DIR).write_text(json.dumps({"files": {}, "remove": [], "counter": COUNTER}))


HOSTILE_PENDING = {
    "a symlink to a committed staging outside /boot": pending_link_to_staging_outside,
    "a symlink to /dev/zero": pending_link_to_dev_zero,
    "a dangling symlink": pending_dangling_link,
    "a FIFO": pending_fifo,
    "a regular file": pending_regular_file,
}


@pytest.mark.parametrize("plant", HOSTILE_PENDING.values(), ids=HOSTILE_PENDING.keys())
def test_pending_dir_that_is_not_a_directory_is_removed_as_itself(
    tmp_path: Path, plant: Callable[[Path, Path], None]
) -> None:
    boot = make_boot(tmp_path)
    outside_dir(tmp_path)
    plant(boot, tmp_path)
    assert within(lambda: read_pending(str(boot))) is None
    assert within(lambda: boot_state.pending_counter_index(str(boot))) is None
    message = settle_and_check(boot, tmp_path)
    assert PENDING_DIR in message and "removed" in message


@pytest.mark.parametrize("plant", HOSTILE_PENDING.values(), ids=HOSTILE_PENDING.keys())
def test_signing_clears_a_pending_name_settling_skipped(
    tmp_path: Path, plant: Callable[[Path, Path], None]
) -> None:
    # platform_boot.settle only settles a directory: the next signing must cope
    boot = make_boot(tmp_path)
    outside_dir(tmp_path)
    plant(boot, tmp_path)
    outside_before = snapshot(tmp_path / "elsewhere")
    within(lambda: stage(str(boot), NewState({"kexec.sig": NEW_SIG}, [], COUNTER)))
    pending = read_pending(str(boot))
    assert pending is not None and pending.complete
    assert snapshot(tmp_path / "elsewhere") == outside_before


# -- a COMMIT that is not what a signing writes ------------------------------


def commit_fifo(pending: Path, tmp_path: Path) -> None:
    os.mkfifo(pending / COMMIT_FILE)


def commit_link_outside(pending: Path, tmp_path: Path) -> None:
    outside = outside_dir(tmp_path)
    write_commit(outside, {"kexec.sig": NEW_SIG})
    (pending / COMMIT_FILE).symlink_to(outside / COMMIT_FILE)


def commit_directory(pending: Path, tmp_path: Path) -> None:
    (pending / COMMIT_FILE / "sub").mkdir(parents=True)


def commit_huge(pending: Path, tmp_path: Path) -> None:
    with open(pending / COMMIT_FILE, "wb") as f:
        f.truncate(2 * 1024 * 1024)


def commit_text(text: str) -> Callable[[Path, Path], None]:
    return commit_bytes(text.encode())


def commit_bytes(data: bytes) -> Callable[[Path, Path], None]:
    def plant(pending: Path, tmp_path: Path) -> None:
        (pending / COMMIT_FILE).write_bytes(data)

    return plant


def commit_named(name: str) -> Callable[[Path, Path], None]:
    def plant(pending: Path, tmp_path: Path) -> None:
        write_commit(pending, {name: NEW_SIG, "kexec.sig": NEW_SIG})

    return plant


GOOD_FILES = {"kexec.sig": sha(NEW_SIG)}
HOSTILE_COMMITS = {
    "a FIFO": commit_fifo,
    "a symlink out of /boot": commit_link_outside,
    "a directory": commit_directory,
    "a huge file": commit_huge,
    "nested too deep for the parser": commit_text("[" * 200_000),
    "an infinite counter": commit_text('{"files": {}, "remove": [], "counter": 1e400}'),
    "a counter that is true": commit_text('{"files": {}, "remove": [], "counter": true}'),
    "a counter past 64 bits": commit_text(
        json.dumps({"files": GOOD_FILES, "remove": [], "counter": 1 << 64})
    ),
    "a digest that is not one": commit_text(
        json.dumps({"files": {"kexec.sig": ["x"]}, "remove": [], "counter": COUNTER})
    ),
    "a removal that is not a name": commit_text(
        json.dumps({"files": GOOD_FILES, "remove": [{"a": 1}], "counter": COUNTER})
    ),
    "a list, not an object": commit_text("[1, 2]"),
    "invalid UTF-8": commit_bytes(b'{"files": "\xff"}'),
    "a name with a slash": commit_named("kexec/../../vmlinuz"),
    "a name with NUL": commit_named("kexec\0.txt"),
    "a name with a newline": commit_named("kexec\n.txt"),
    "the pending dir's own name": commit_named(PENDING_DIR),
    "a name too long": commit_named("kexec" + "x" * 300),
}


@pytest.mark.parametrize("plant", HOSTILE_COMMITS.values(), ids=HOSTILE_COMMITS.keys())
def test_hostile_commit_is_dropped(tmp_path: Path, plant: Callable[[Path, Path], None]) -> None:
    boot = make_boot(tmp_path)
    outside_dir(tmp_path)
    pending = boot / PENDING_DIR
    pending.mkdir()
    (pending / "kexec.sig").write_bytes(NEW_SIG)
    plant(pending, tmp_path)
    assert within(lambda: read_pending(str(boot))) is None
    assert "dropped" in settle_and_check(boot, tmp_path)


def test_names_a_signing_writes_are_accepted() -> None:
    for name in (
        "kexec.sig",
        "kexec_hashes.txt",
        "kexec_default.3.txt",
        "kexec_package_trigger_pre.txt",
        "kexec_primhdl_hash.txt",
    ):
        assert boot_state.check_name(name) == name


def test_staged_bound_is_the_list_bound() -> None:
    assert boot_state.MAX_STAGED_BYTES == MAX_LIST_BYTES


def test_a_failing_disk_becomes_a_sentence(tmp_path: Path) -> None:
    boot = make_boot(tmp_path)
    stage(str(boot), NewState({"kexec.sig": NEW_SIG}, [], COUNTER))

    class BrokenDisk(RealDisk):
        def rename(self, src: str, dst: str) -> None:
            raise OSError(5, "Input/output error", src)

    message = within(lambda: settle_pending(str(boot), COUNTER, BrokenDisk()))
    assert_plain(message)
    assert "could not be settled" in message and "Input/output error" in message


def test_a_directory_in_the_way_of_the_new_state_is_replaced(tmp_path: Path) -> None:
    boot = make_boot(tmp_path)
    stage(str(boot), NewState({"kexec_tree.txt": b"tree\n"}, [], COUNTER))
    (boot / "kexec_tree.txt" / "sub").mkdir(parents=True)
    message = within(lambda: settle_pending(str(boot), COUNTER))
    assert message == "An interrupted signing of /boot was found and completed."
    assert (boot / "kexec_tree.txt").read_bytes() == b"tree\n"


# -- a genuine interrupted signing still settles -----------------------------

NEW_STATE = NewState(
    {"kexec_hashes.txt": NEW_HASHES, "kexec.sig": NEW_SIG, "kexec_rollback.txt": b"new rb\n"},
    ["kexec_default.1.txt"],
    COUNTER,
)


def new_boot(boot: Path) -> dict[str, object]:
    want = snapshot(boot)
    want.update(NEW_STATE.files)
    want.pop("kexec_default.1.txt", None)
    return want


@pytest.mark.parametrize("renamed", [0, 1, 3], ids=["none", "one", "all"])
def test_genuine_interrupted_signing_rolls_forward(tmp_path: Path, renamed: int) -> None:
    boot = make_boot(tmp_path)
    (boot / "kexec_default.1.txt").write_bytes(b"old default\n")
    stage(str(boot), NEW_STATE)
    want = new_boot(boot)
    # junk beside a genuine staging is dropped, never renamed into /boot
    os.mkfifo(boot / PENDING_DIR / "kexec_extra.txt")
    for name in sorted(NEW_STATE.files)[:renamed]:  # the cut came mid-way through the renames
        os.rename(boot / PENDING_DIR / name, boot / name)
    message = within(lambda: settle_pending(str(boot), COUNTER))
    assert message == "An interrupted signing of /boot was found and completed."
    assert snapshot(boot) == want
    assert not os.path.lexists(boot / PENDING_DIR)


def test_genuine_interrupted_signing_before_the_counter_moved_is_dropped(
    tmp_path: Path,
) -> None:
    boot = make_boot(tmp_path)
    before = snapshot(boot)
    stage(str(boot), NEW_STATE)
    message = within(lambda: settle_pending(str(boot), COUNTER - 1))
    assert_plain(message)
    assert "before its rollback counter moved" in message
    assert snapshot(boot) == before
    assert not os.path.lexists(boot / PENDING_DIR)


# -- the power-on preflight ----------------------------------------------------


def fine(index: int) -> CounterView:
    return CounterView(None)


def rollback_fifo(boot: Path, tmp_path: Path) -> None:
    os.mkfifo(boot / "kexec_rollback.txt")


def rollback_to_dev_zero(boot: Path, tmp_path: Path) -> None:
    (boot / "kexec_rollback.txt").symlink_to("/dev/zero")


def rollback_to_good_file_outside(boot: Path, tmp_path: Path) -> None:
    (tmp_path / "good.txt").write_bytes(ROLLBACK_LINE)
    (boot / "kexec_rollback.txt").symlink_to(tmp_path / "good.txt")


def rollback_directory(boot: Path, tmp_path: Path) -> None:
    (boot / "kexec_rollback.txt").mkdir()
    (boot / "kexec_rollback.txt" / "x").write_bytes(ROLLBACK_LINE)


def rollback_huge(boot: Path, tmp_path: Path) -> None:
    with open(boot / "kexec_rollback.txt", "wb") as f:
        f.write(ROLLBACK_LINE)
        f.truncate(HUGE)


HOSTILE_ROLLBACK = {
    "a FIFO": (rollback_fifo, "is a FIFO, not a regular file"),
    "a symlink to /dev/zero": (rollback_to_dev_zero, "is a symbolic link"),
    "a symlink out of /boot": (rollback_to_good_file_outside, "is a symbolic link"),
    "a directory": (rollback_directory, "is a directory, not a regular file"),
    "a huge file": (rollback_huge, "is larger than 4096 bytes"),
}


@pytest.mark.parametrize("case", HOSTILE_ROLLBACK.values(), ids=HOSTILE_ROLLBACK.keys())
def test_preflight_names_a_hostile_rollback_file(
    tmp_path: Path, case: tuple[Callable[[Path, Path], None], str]
) -> None:
    plant, says = case
    boot = tmp_path / "boot"
    boot.mkdir()
    (boot / "kexec.sig").write_bytes(b"sig")
    plant(boot, tmp_path)
    before = snapshot(boot)
    problem = within(lambda: preflight(str(boot), fine))
    assert_plain(problem)
    assert problem.startswith(f"/boot/kexec_rollback.txt {says}"), problem
    assert "sign /boot again" in problem
    assert snapshot(boot) == before


@pytest.mark.parametrize("kind", ["a FIFO", "a dangling symlink", "a directory"])
def test_preflight_sees_signed_state_of_any_kind(tmp_path: Path, kind: str) -> None:
    boot = tmp_path / "boot"
    boot.mkdir()
    sig = boot / "kexec.sig"
    if kind == "a FIFO":
        os.mkfifo(sig)
    elif kind == "a directory":
        sig.mkdir()
    else:
        sig.symlink_to(tmp_path / "nowhere")
    problem = within(lambda: preflight(str(boot), fine))
    assert_plain(problem)
    assert "signed state (kexec.sig) but no kexec_rollback.txt" in problem
