"""Generated hostile /boot trees through the whole verified-boot cycle, against
a real swtpm counter and the real gpg: the owner signs a tree, it verifies;
the attacker (the disk, no key) changes it; verification then refuses every
change the signature covers, and a new signing by the owner, shown that
report, either refuses or signs a state that verifies and carries nothing
the attacker planted under ./kexec*.

The trees, the attacker's edits and the read checks are those of
tests/support/hostile_boot_trees.py. Every call runs in a thread joined with
a timeout, so a hang fails the test instead of blocking the run.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

from runtime.integrity.boot_lists import (
    DEFAULT_HASHES_FILE,
    HASHES_FILE,
    LINKS_FILE,
    ROLLBACK_FILE,
    SIGNATURE_FILE,
    SIGNED_GLOB,
    TREE_FILE,
    is_signed_state_path,
    is_state_file_name,
    parse_rollback,
    signed_listing,
)
from runtime.integrity.sign_boot import DefaultChoice, SigningError
from runtime.integrity.tpm_counter import TpmCounter
from runtime.integrity.verify_boot import BootReport, Problem
from runtime.tpm.connection import Tpm
from tests.hang_guard import within
from tests.support.hostile_boot_trees import (
    OP_KINDS,
    Node,
    Op,
    Target,
    Tree,
    apply_attack,
    attacks,
    boot_trees,
    check_views,
    materialize,
    scratch,
    sign_view,
    snapshot,
)
from tests.support.signed_boot import gpg_signature, owner_signs, owner_verifies
from tests.tpm.conftest import OWNER
from tools.owner_key import OwnerKey

#: seconds for one signing or verification (gpg and the TPM included)
SLOW = 120.0
#: the kexec*.txt files a signing writes itself; every other one it keeps must
#: be byte for byte one the owner's signature covered
WRITTEN = frozenset({HASHES_FILE, TREE_FILE, ROLLBACK_FILE, LINKS_FILE, DEFAULT_HASHES_FILE})
OWNER_DEFAULT = "Owner|elf|kernel /vmlinuz-6.1"

Snapshot = dict[str, tuple[str, str]]


def _sign(root: str, key: OwnerKey, counter: TpmCounter, **kw: Any) -> BootReport:
    return within(lambda: owner_signs(root, key, counter, **kw), SLOW)


def _verify(root: str, key: OwnerKey, counter: TpmCounter) -> BootReport:
    return within(lambda: owner_verifies(root, key, counter), SLOW)


def state_files(root: str) -> dict[str, bytes]:
    """The top-level kexec*.txt regular files and their bytes."""
    out: dict[str, bytes] = {}
    for name in os.listdir(root):
        path = os.path.join(root, name)
        if (
            fnmatch.fnmatchcase(name, SIGNED_GLOB)
            and os.path.isfile(path)
            and not os.path.islink(path)
        ):
            with open(path, "rb") as f:
                out[name] = f.read()
    return out


def assert_nothing_planted(root: str, owners: dict[str, bytes]) -> None:
    """Every kexec*.txt is one the signing wrote, or the owner's own bytes."""
    for name, data in state_files(root).items():
        if name not in WRITTEN:
            assert owners.get(name) == data, f"{name} was carried over, not the owner's"


def covered_changes(before: Snapshot, after: Snapshot) -> tuple[set[str], set[str]]:
    """(the names whose change a signature covers, those of them that are a
    symlink now where a directory or FIFO was signed beside signed symlinks).
    kexec.sig's own bytes are not covered: gpg takes trailing bytes after the
    armor, and what counts is that it still is the owner's signature.

    Heads' tree lists names, not kinds: a directory that became a FIFO is the
    same list. Regular files are hashed, symlink targets recorded, and the
    ./kexec* area holds nothing but the signed state."""
    changed: set[str] = set()
    unlisted_links: set[str] = set()
    links_signed = any(kind == "l" for kind, _ in before.values())
    for rel in before.keys() | after.keys():
        was, now = before.get(rel), after.get(rel)
        if was == now:
            continue
        if rel == "./" + SIGNATURE_FILE and was and now and was[0] == now[0] == "f":
            continue  # the signature itself: judged by whether it still checks
        if (
            is_signed_state_path(rel)
            or was is None
            or now is None
            or "f" in (was[0], now[0])
            or "l" in (was[0], now[0])
        ):
            changed.add(rel)
            if links_signed and was and now and was[0] in "dpo" and now[0] == "l":
                unlisted_links.add(rel)
    return changed, unlisted_links


def assert_refusal_kept(after: Snapshot, now: Snapshot) -> None:
    """A refused signing signed nothing and kept every state file; it may
    have cleared names under ./kexec* that no signature covers."""
    assert set(now) <= set(after)
    for rel, was in after.items():
        if now.get(rel) == was:
            continue
        name = rel[2:]
        state_file = was[0] == "f" and "/" not in name and is_state_file_name(name)
        assert is_signed_state_path(rel) and not state_file, f"a refused signing changed {rel}"


def check_signed_reads(root: str, base: str, report: BootReport, name: str) -> None:
    """The read properties on the view the boot would use after this report."""
    signed = report.signed()
    assert signed is not None
    check_views(root, base, sign_view(root, os.path.join(base, name), signed), [])


def tell(what: str, detail: str = "") -> None:
    """A statistic and a note for a falsifying example, when hypothesis runs."""
    if currently_in_test_context():
        event(what)
        if detail:
            note(detail)


def cycle(tpm: Tpm, key: OwnerKey, tree: Tree, ops: list[Op], with_default: bool) -> None:
    """Sign the tree, attack it, verify, sign again as shown; every property."""
    counter = TpmCounter(tpm, OWNER)
    with scratch() as base:
        root, outside = materialize(tree, base)
        default = DefaultChoice(1, OWNER_DEFAULT, ("/vmlinuz-6.1",)) if with_default else None
        try:
            first = _sign(root, key, counter, default=default)
        except SigningError as err:
            # a name Heads' lists cannot hold, or a default that boots no file
            tell("refused at the first signing", f"refused: {err}")
            return
        assert first.ok, first.findings
        owners = state_files(root)
        # whatever the generated tree held under ./kexec* is gone, not adopted
        assert_nothing_planted(root, {"kexec_default.1.txt": (OWNER_DEFAULT + "\n").encode()})
        assert _verify(root, key, counter).ok
        before = snapshot(root)

        apply_attack(root, outside, ops)
        after = snapshot(root)
        report = _verify(root, key, counter)
        tell("verified after the attack", f"findings: {[str(f) for f in report.findings]}")
        changed, _ = covered_changes(before, after)
        if changed:
            assert not report.ok, f"unnoticed: {sorted(changed)}"
        if before == after:
            assert report.ok, report.findings
        # the boot's view is built from a verification only when it passed
        assert (report.signed() is None) is (not report.ok)
        if report.ok:
            check_signed_reads(root, base, report, "as-verified")
        tell(f"after the attack: {'ok' if report.ok else 'refused'}")

        # the owner, shown this report, signs /boot as it is now
        try:
            again = _sign(root, key, counter, shown=report)
        except SigningError as err:
            tell("refused at the second signing", f"refused: {err}")
            assert_refusal_kept(after, snapshot(root))
            return
        assert again.ok, again.findings
        # only what the owner's signature still covered when shown may be carried
        trusted = {n: d for n, d in owners.items() if report.trusted_state.get(n) == d}
        assert_nothing_planted(root, trusted)
        check_signed_reads(root, base, again, "as-signed-again")


@settings(
    max_examples=20,
    deadline=None,
    # the TPM fixture is set up once for all examples: each example signs its
    # own /boot with a counter of its own (a new counter retires the others)
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(tree=boot_trees(fifos=False, listable=True), ops=attacks(), with_default=st.booleans())
def test_hostile_tree_signed_attacked_and_signed_again(
    tpm: Tpm, owner_key: OwnerKey, tree: Tree, ops: list[Op], with_default: bool
) -> None:
    cycle(tpm, owner_key, tree, ops, with_default)


GRUB = b"menuentry 'Debian' {\n linux /vmlinuz ro\n initrd /initrd.img-6.1\n}\n"
#: a /boot as an installed OS leaves it, for each edit alone
PLAIN_TREE = Tree(
    nodes=[
        Node(("vmlinuz-6.1",), "file", b"KERNEL 6.1"),
        Node(("vmlinuz-6.0",), "file", b"KERNEL 6.0"),
        Node(("initrd.img-6.1",), "file", b"INITRD"),
        Node(("vmlinuz",), "link", target="vmlinuz-6.1"),
        Node(("grub",), "dir"),
        Node(("grub", "grub.cfg"), "file", GRUB),
        Node(("boot",), "dir"),
        Node(("boot", "vmlinuz"), "link", target="../vmlinuz-6.0"),
    ],
    link_targets={},
    configs={},
)


@pytest.mark.parametrize("pick", [1, 4])
@pytest.mark.parametrize("what", OP_KINDS)
def test_each_attack_alone(tpm: Tpm, owner_key: OwnerKey, what: str, pick: int) -> None:
    """Every kind of edit by itself, so a check that only one kind trips
    (the ./kexec* area's, say) is exercised on every run, not by chance."""
    name = "kexec_zz.txt" if "state" in what else "new"
    op = Op(what, pick=pick, name=name, data=b"attacker", target=Target("node_up", pick))
    cycle(tpm, owner_key, PLAIN_TREE, [op], with_default=True)


# --- what the generated runs found, pinned ---------------------------------------


def _boot(tmp_path: Path) -> Path:
    root = tmp_path / "boot"
    (root / "grub").mkdir(parents=True)
    (root / "grub" / "grub.cfg").write_text(
        "menuentry 'Debian' {\n linux /vmlinuz root=/dev/vda2 ro\n}\n"
    )
    (root / "vmlinuz-6.1").write_bytes(b"signed new kernel" + os.urandom(4096))
    (root / "vmlinuz-6.0").write_bytes(b"signed OLD kernel" + os.urandom(4096))
    (root / "empty").mkdir()
    return root


@pytest.mark.parametrize("signed_links", [False, True], ids=["without-links", "with-links"])
def test_symlink_where_a_directory_was_signed_is_a_finding(
    tpm: Tpm, owner_key: OwnerKey, tmp_path: Path, signed_links: bool
) -> None:
    """With or without a kexec_symlinks.txt (none when no symlink was signed),
    a symlink where a directory was signed is a finding."""
    root = _boot(tmp_path)
    if signed_links:
        os.symlink("vmlinuz-6.1", root / "vmlinuz")
    counter = TpmCounter(tpm, OWNER)
    assert _sign(str(root), owner_key, counter).ok
    os.rmdir(root / "empty")
    os.symlink("vmlinuz-6.0", root / "empty")
    assert not _verify(str(root), owner_key, counter).ok


def test_a_planted_rollback_file_cannot_pick_the_counter_a_signing_moves(
    tpm: Tpm, owner_key: OwnerKey, tmp_path: Path
) -> None:
    """The owner's next signing after an unsigned kexec_rollback.txt named the
    HOTP counter neither moves that counter nor lets an older signed copy of
    /boot verify again."""
    from runtime.secrets.hotp.counter import TpmCounterStore
    from runtime.tpm.handles import HOTP_COUNTER_NV

    hotp = TpmCounterStore.open_or_create(tpm, OWNER)  # the enrolled HOTP token's counter
    hotp_before = hotp.read()
    root = _boot(tmp_path)
    counter = TpmCounter(tpm, OWNER)
    assert _sign(str(root), owner_key, counter).ok
    old = tmp_path / "old-boot"
    shutil.copytree(root, old, symlinks=True)
    # the evil maid: one unsigned line naming another NV counter of this TPM
    (root / ROLLBACK_FILE).write_text("0" * 64 + f"  /tmp/counter-{HOTP_COUNTER_NV:x}\n")
    shown = _verify(str(root), owner_key, counter)
    assert not shown.ok
    # the owner, told /boot changed, signs it again
    assert _sign(str(root), owner_key, counter, shown=shown).ok
    assert parse_rollback((root / ROLLBACK_FILE).read_bytes()).nv_index != HOTP_COUNTER_NV
    assert hotp.read() == hotp_before
    # the copy signed before cannot come back
    shutil.rmtree(root)
    shutil.copytree(old, root, symlinks=True)
    assert not _verify(str(root), owner_key, counter).ok


def test_default_planted_under_a_strangers_signature_does_not_survive(
    tpm: Tpm, owner_key: OwnerKey, stranger: OwnerKey, tmp_path: Path
) -> None:
    """kexec_default.7.txt and a valid signature over it, by a key that is not
    the owner's: nothing of that state is trusted, shown, or signed again."""
    root = _boot(tmp_path)
    counter = TpmCounter(tpm, OWNER)
    choice = DefaultChoice(1, OWNER_DEFAULT, ("/vmlinuz-6.1",))
    assert _sign(str(root), owner_key, counter, default=choice).ok
    (root / "kexec_default.7.txt").write_text("Evil|elf|kernel /vmlinuz-6.0|append init=/bin/sh\n")
    listing = signed_listing(state_files(str(root)))
    (root / SIGNATURE_FILE).write_bytes(gpg_signature(stranger, listing))
    shown = _verify(str(root), owner_key, counter)
    assert Problem.SIGNATURE_NOT_OWNER in {f.problem for f in shown.findings}
    assert shown.trusted_state == {} and shown.signed() is None
    again = _sign(str(root), owner_key, counter, shown=shown)
    assert again.ok, again.findings
    assert not (root / "kexec_default.7.txt").exists()
    # the owner's own default went too: its signature was replaced, so it is
    # chosen again rather than taken from an unverified state
    assert not (root / "kexec_default.1.txt").exists()
    assert_nothing_planted(str(root), {})


def test_a_tree_too_deep_to_list_is_a_signing_refusal(
    tpm: Tpm, owner_key: OwnerKey, tmp_path: Path
) -> None:
    root = _boot(tmp_path)
    root.joinpath(*["d"] * 70).mkdir(parents=True)
    with pytest.raises(SigningError):
        _sign(str(root), owner_key, TpmCounter(tpm, OWNER))
