"""Creating a rollback counter retires the older ones (real swtpm, real gpg): an
older signed /boot naming a counter the owner has moved away from is refused,
and nothing that is not one of our rollback counters is touched."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from runtime.error_detail import recent_details
from runtime.integrity.boot_lists import ROLLBACK_FILE, parse_rollback
from runtime.integrity.gpg_signer import GpgSigner
from runtime.integrity.sign_boot import sign_boot
from runtime.integrity.tpm_counter import TpmCounter
from runtime.integrity.verify_boot import BootReport, Problem, verify_boot
from runtime.secrets.hotp.counter import TpmCounterStore
from runtime.tpm import counters, handles, nv, sealing
from runtime.tpm.connection import Tpm
from runtime.tpm.errors import TpmError
from runtime.tpm.nv_attrs import COUNTER_ATTRIBUTES, DA_PROTECTED_COUNTER_ATTRIBUTES, NvAttr
from tests.tpm.conftest import OWNER
from tools.owner_key import OwnerKey

#: Counters with our type but not our definition, as another program may define them.
OTHER_ATTRIBUTES = 0x01500010  # ownerwrite too (a common tpm2_nvdefine recipe)
OTHER_POLICY = 0x01500011  # our attributes, but an authorization policy
NOT_A_COUNTER = 0x01500012  # an ordinary index


@pytest.fixture
def boot(tmp_path: Path) -> Path:
    root = tmp_path / "boot"
    (root / "grub").mkdir(parents=True)
    (root / "grub" / "grub.cfg").write_text(
        "menuentry 'Debian' {\n linux /vmlinuz-6.1 root=/dev/vda2 ro\n}\n"
    )
    (root / "vmlinuz-6.1").write_bytes(b"kernel" * 1000)
    return root


def _sign(boot: Path, owner_key: OwnerKey, counter: TpmCounter) -> BootReport:
    return sign_boot(str(boot), GpgSigner(str(owner_key.home)), counter, str(owner_key.public))


def _named_counter(boot: Path) -> int:
    return parse_rollback((boot / ROLLBACK_FILE).read_bytes()).nv_index


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _define_strangers(tpm: Tpm) -> None:
    """The TOTP blob and HOTP counter as the project defines them, and indexes
    another program may have defined."""
    sealed = sealing.seal(tpm, bytes(20), [0])
    nv.store_sealed(tpm, sealed, handles.TOTP_SEALED_NV, OWNER)
    TpmCounterStore.open_or_create(tpm, OWNER)
    nv.define(tpm, OTHER_ATTRIBUTES, 8, COUNTER_ATTRIBUTES | NvAttr.OWNERWRITE, OWNER)
    nv.define(tpm, OTHER_POLICY, 8, COUNTER_ATTRIBUTES, OWNER, policy=bytes(32))
    nv.define(tpm, NOT_A_COUNTER, 8, NvAttr.OWNERWRITE | NvAttr.OWNERREAD, OWNER)


STRANGERS = (
    handles.TOTP_SEALED_NV,
    handles.HOTP_COUNTER_NV,
    OTHER_ATTRIBUTES,
    OTHER_POLICY,
    NOT_A_COUNTER,
)


@pytest.mark.parametrize("damage", ["deleted", "garbage"])
def test_older_boot_naming_a_retired_counter_is_refused(
    tpm: Tpm, boot: Path, owner_key: OwnerKey, tmp_path: Path, damage: str
) -> None:
    counter = TpmCounter(tpm, OWNER)
    assert _sign(boot, owner_key, counter).ok
    first = _named_counter(boot)
    old = tmp_path / "old-boot"
    shutil.copytree(boot, old, symlinks=True)
    # the attacker breaks the rollback file and waits for the owner to sign again
    if damage == "deleted":
        (boot / ROLLBACK_FILE).unlink()
    else:
        (boot / ROLLBACK_FILE).write_bytes(b"\x00\xffnot a rollback file\x17" * 3)
    assert _sign(boot, owner_key, counter).ok
    second = _named_counter(boot)
    assert second != first
    assert not nv.exists(tpm, first)
    assert counters.rollback_counters(tpm) == [second]
    shutil.rmtree(boot)
    shutil.copytree(old, boot, symlinks=True)  # the old, signed /boot put back
    report = verify_boot(str(boot), str(owner_key.public), counter.value)
    assert not report.ok
    assert {f.problem for f in report.findings} == {Problem.COUNTER_MISSING}
    assert "0x" not in str(report.findings[0])  # the NV index is for the log
    assert f"0x{first:08x}" in recent_details()[-1]


def test_create_leaves_what_is_not_a_rollback_counter(tpm: Tpm) -> None:
    _define_strangers(tpm)
    before = counters.create_counter(tpm, OWNER)
    counters.increment_counter(tpm, before)
    created = TpmCounter(tpm, OWNER).create()
    assert not nv.exists(tpm, before)
    for index in STRANGERS:
        assert nv.exists(tpm, index), f"0x{index:08x} was removed"
    assert counters.rollback_counters(tpm) == [created]


def test_rollback_counters_lists_exactly_ours(tpm: Tpm) -> None:
    _define_strangers(tpm)
    ours = sorted(counters.create_counter(tpm, OWNER) for _ in range(3))
    counters.increment_counter(tpm, ours[1])  # WRITTEN set: still ours
    heads_style = 0x01ABCDEF  # defined the way Heads' tpmr defines a counter (no NO_DA)
    nv.define(tpm, heads_style, 8, DA_PROTECTED_COUNTER_ATTRIBUTES, OWNER)
    assert counters.rollback_counters(tpm) == sorted([*ours, heads_style])
    assert set(STRANGERS) <= set(counters.defined_nv_indexes(tpm))


def test_every_reserved_index_in_handles_is_excluded() -> None:
    reserved = {v for k, v in vars(handles).items() if k.endswith("_NV") and isinstance(v, int)}
    assert reserved and reserved == counters.NOT_ROLLBACK


def test_retire_with_a_wrong_passphrase_removes_nothing(tpm: Tpm) -> None:
    _define_strangers(tpm)
    ours = sorted(counters.create_counter(tpm, OWNER) for _ in range(3))
    with pytest.raises(TpmError) as info:
        counters.retire_counters(tpm, b"wrong", keep=ours[0])
    assert "could not be removed" in info.value.message
    assert "wrong TPM owner passphrase" in info.value.message
    assert counters.rollback_counters(tpm) == ours
    for index in STRANGERS:
        assert nv.exists(tpm, index)
    assert counters.retire_counters(tpm, OWNER, keep=ours[0]) == ours[1:]
    assert counters.rollback_counters(tpm) == ours[:1]


def test_create_with_a_wrong_passphrase_changes_nothing(tpm: Tpm) -> None:
    first = counters.create_counter(tpm, OWNER)
    with pytest.raises(OSError, match="refused the owner passphrase") as info:
        TpmCounter(tpm, b"wrong").create()
    assert "try again" in str(info.value) and "0x" not in str(info.value)
    assert counters.rollback_counters(tpm) == [first]


def test_failed_retiring_signs_nothing_and_keeps_no_new_counter(
    tpm: Tpm, boot: Path, owner_key: OwnerKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    counter = TpmCounter(tpm, OWNER)
    assert _sign(boot, owner_key, counter).ok
    first = _named_counter(boot)
    (boot / ROLLBACK_FILE).unlink()
    before = _snapshot(boot)
    real_retire = counters.retire_counters

    # A real TPM refusal while retiring: the retiring is given a wrong passphrase.
    def refused_retire(tpm: Tpm, owner_auth: bytes, keep: int) -> list[int]:
        return real_retire(tpm, b"wrong", keep)

    monkeypatch.setattr(counters, "retire_counters", refused_retire)
    with pytest.raises(OSError) as info:
        _sign(boot, owner_key, counter)
    message = str(info.value)
    assert "An old rollback counter could not be removed" in message
    assert "No new rollback counter was made" in message
    assert "0x" not in message
    assert any(f"0x{first:08x} could not be removed" in line for line in recent_details())
    assert _snapshot(boot) == before
    assert counters.rollback_counters(tpm) == [first]
