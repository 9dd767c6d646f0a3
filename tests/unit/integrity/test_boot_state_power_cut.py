"""A power cut at every step of re-signing /boot: the writes, fsyncs, renames
and the counter increment of one signing are recorded, then every prefix is
replayed on a copy of /boot as a crash would leave it (data written but not
yet fsynced is lost), the next start settles what it finds, and /boot must
then hold exactly the old or exactly the new signed state.

The counter here is a stand-in for the TPM's: a real NV counter cannot be set
back for each replay (the TPM tier tests the real one).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from runtime.integrity.gpg_signer import GpgSigner
from runtime.integrity.sign_boot import sign_boot
from runtime.integrity.signed_state_commit import RealDisk, settle_pending
from runtime.integrity.verify_boot import Problem, verify_boot
from tools.owner_key import OwnerKey

COUNTER_INDEX = 0x01ABCDEF


class StandInCounter:
    def __init__(self, value: int, log: list[tuple[str, ...]] | None = None) -> None:
        self.value_now = value
        self.log = log

    def exists(self, index: int) -> bool:
        return index == COUNTER_INDEX

    def read(self, index: int) -> int | None:
        return self.value_now

    def create(self) -> int:
        return COUNTER_INDEX

    def is_rollback(self, index: int) -> bool:
        return index == COUNTER_INDEX

    def retire_others(self, index: int) -> None:
        pass

    def increment(self, index: int) -> int:
        self.value_now += 1
        if self.log is not None:
            self.log.append(("increment",))
        return self.value_now

    def get(self, index: int) -> int:
        return self.value_now


class RecordingDisk(RealDisk):
    def __init__(self, log: list[tuple[str, ...]]) -> None:
        self.log = log

    def write(self, path: str, data: bytes) -> None:
        self.log.append(("write", path, data.hex()))
        super().write(path, data)

    def fsync(self, path: str) -> None:
        self.log.append(("fsync", path))
        super().fsync(path)

    def rename(self, src: str, dst: str) -> None:
        self.log.append(("rename", src, dst))
        super().rename(src, dst)

    def unlink(self, path: str) -> None:
        self.log.append(("unlink", path))
        super().unlink(path)

    def mkdir(self, path: str) -> None:
        self.log.append(("mkdir", path))
        super().mkdir(path)

    def rmdir(self, path: str) -> None:
        self.log.append(("rmdir", path))
        super().rmdir(path)

    def rmtree(self, path: str) -> None:
        self.log.append(("rmtree", path))
        super().rmtree(path)


def _replay(ops: list[tuple[str, ...]], src: str, dst: str, counter: StandInCounter) -> None:
    """Apply ops (paths under src) to dst, then lose every unsynced write."""
    unsynced: set[str] = set()

    def at(path: str) -> str:
        return dst + path[len(src) :]

    for op, *args in ops:
        if op == "write":
            Path(at(args[0])).write_bytes(bytes.fromhex(args[1]))
            unsynced.add(at(args[0]))
        elif op == "fsync":
            unsynced.discard(at(args[0]))
        elif op == "rename":
            os.rename(at(args[0]), at(args[1]))
            if at(args[0]) in unsynced:
                unsynced.discard(at(args[0]))
                unsynced.add(at(args[1]))
        elif op == "unlink":
            os.unlink(at(args[0]))
        elif op == "mkdir":
            os.mkdir(at(args[0]))
        elif op == "rmdir":
            os.rmdir(at(args[0]))
        elif op == "rmtree":
            RealDisk().rmtree(at(args[0]))
        elif op == "increment":
            counter.value_now += 1
    for path in unsynced:
        if os.path.exists(path):
            Path(path).write_bytes(b"")  # the data never reached the disk


def _signed_state(boot: Path) -> dict[str, bytes]:
    return {
        p.name: p.read_bytes() for p in boot.iterdir() if p.name.startswith("kexec") and p.is_file()
    }


def test_every_prefix_of_a_resign_leaves_old_or_new(tmp_path: Path, owner_key: OwnerKey) -> None:
    boot = tmp_path / "boot"
    (boot / "grub").mkdir(parents=True)
    (boot / "grub" / "grub.cfg").write_text("menuentry A { linux /vmlinuz }\n")
    (boot / "vmlinuz").write_bytes(b"kernel 1")
    counter = StandInCounter(41)
    signer = GpgSigner(str(owner_key.home))
    assert sign_boot(str(boot), signer, counter, str(owner_key.public)).ok
    (boot / "vmlinuz").write_bytes(b"kernel 2, after an OS update")
    old_state, old_value = _signed_state(boot), counter.value_now
    before = tmp_path / "before"
    shutil.copytree(boot, before)

    log: list[tuple[str, ...]] = []
    counter.log = log
    assert sign_boot(str(boot), signer, counter, str(owner_key.public), disk=RecordingDisk(log)).ok
    new_state = _signed_state(boot)
    assert new_state != old_state
    kinds = [op[0] for op in log]
    assert kinds.count("increment") == 1 and kinds.count("rename") >= 4

    outcomes = {"old": 0, "new": 0}
    for cut in range(len(log) + 1):
        trial = tmp_path / f"cut-{cut}"
        shutil.copytree(before, trial)
        trial_counter = StandInCounter(old_value)
        _replay(log[:cut], str(boot), str(trial), trial_counter)
        settle_pending(str(trial), trial_counter.value_now)
        state = _signed_state(trial)
        report = verify_boot(str(trial), str(owner_key.public), trial_counter.get)
        if state == new_state:
            assert report.ok, (cut, report.findings)
            outcomes["new"] += 1
        else:
            assert state == old_state, f"cut after step {cut}: neither old nor new"
            # the old signature stands; only the updated kernel differs from it
            assert {f.problem for f in report.findings} == {Problem.FILES_MODIFIED}, cut
            outcomes["old"] += 1
        shutil.rmtree(trial)
    print(f"power cut after each of {len(log)} steps: {outcomes}")
    assert outcomes["old"] and outcomes["new"]
