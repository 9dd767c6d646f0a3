"""/boot as the menu and the boot read it, against generated hostile trees.

The rule: everything read from /boot to decide, to show or to boot is either
covered by the owner's signature or refused. A tree is generated (nested
directories, files, symlinks of every shape, FIFOs, names starting with kexec,
odd bytes in names, grub.cfg files whose entries climb, go through symlinks
and into ./kexec*), "signed" the way the runtime records it (scan_boot +
hash_files -> Signed), then changed by the attacker, and read through
BootView: signed (the verified boot after the disk changed under it) and
unsigned (the unsafe boot). Real files in a fresh temporary directory per
example; nothing is faked.

Markers make a wrong read visible: every file under ./kexec* and every file
outside the tree holds one, so a listing line, a text or a RAM copy carrying
a marker was read from where it must not be.
"""

from __future__ import annotations

import os
import pathlib
import stat

import pytest
from hypothesis import HealthCheck, event, given, note, settings

from runtime.integrity.boot_paths import BootPathError
from runtime.integrity.boot_view import BootView
from tests.support.hostile_boot_trees import (
    Op,
    Tree,
    apply_attack,
    attacks,
    boot_trees,
    check_views,
    make_outside,
    materialize,
    scenarios,
    scratch,
    sign_view,
    snapshot,
    walk,
    write_file,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario=scenarios())
def test_hostile_tree_is_read_only_where_signed(
    scenario: tuple[Tree, list[Op], list[str]],
) -> None:
    tree, ops, paths = scenario
    with scratch() as base:
        root, outside = materialize(tree, base)
        owner = sign_view(root, os.path.join(base, "as-signed"))
        # before the attack: the owner's own tree reads back as signed
        check_views(root, base, owner, paths)
        apply_attack(root, outside, ops)
        note(f"after the attack: {sorted(snapshot(root))!r}")
        staged = check_views(root, base, owner, paths)
        event("RAM copies checked after the attack", "some" if staged else "none")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=boot_trees(), ops=attacks())
def test_unsigned_view_never_reads_outside_the_tree_or_the_state_area(
    tree: Tree, ops: list[Op]
) -> None:
    """(d) through every path the tree itself offers: each name, each link's
    target as a path, each link followed by a file name."""
    with scratch() as base:
        root, outside = materialize(tree, base)
        apply_attack(root, outside, ops)
        paths = []
        for path, st_ in walk(root):
            paths.append("/" + "/".join(path))
            if stat.S_ISLNK(st_.st_mode):
                target = os.readlink(os.path.join(root, *path))
                paths += [
                    "/" + "/".join(path) + "/sentinel",
                    "/" + "/".join(path) + "/vmlinuz",
                    "/" + "/".join((*path[:-1], target)),
                ]
        check_views(root, base, None, paths)


def test_known_tricks_are_refused(tmp_path: pathlib.Path) -> None:
    """The generator's tricks once by hand, so a weakened strategy still has a floor."""
    base = str(tmp_path)
    outside = make_outside(base)
    root = os.path.join(base, "boot")
    os.makedirs(os.path.join(root, "grub"))
    write_file(root, ("vmlinuz-6.1",), b"signed kernel")
    os.symlink("vmlinuz-6.1", os.path.join(root, "vmlinuz"))
    write_file(root, ("grub", "grub.cfg"), b"menuentry 'D' {\n linux /vmlinuz\n}\n")
    owner = sign_view(root, os.path.join(base, "as-signed"))
    os.mkdir(os.path.join(root, "kexec.d"))
    write_file(root, ("kexec.d", "vmlinuz"), b"attacker")
    os.symlink("../grub", os.path.join(root, "kexec.d", "lnk"))
    os.symlink("kexec.d", os.path.join(root, "k"))
    os.symlink("../outside/sentinel", os.path.join(root, "out"))
    os.symlink(os.path.join(outside, "sentinel"), os.path.join(root, "abs"))
    os.mkfifo(os.path.join(root, "grub", "fifo.cfg"))
    os.unlink(os.path.join(root, "vmlinuz"))
    os.symlink("kexec.d/vmlinuz", os.path.join(root, "vmlinuz"))
    paths = [
        "/vmlinuz",
        "/k/vmlinuz",
        "/kexec.d/lnk/../vmlinuz-6.1",
        "/out",
        "/abs",
        "/grub/fifo.cfg",
        "/../outside/sentinel",
    ]
    check_views(root, base, owner, paths)
    view = BootView(root, owner.signed)
    # the signed link still leads to the signed kernel, whatever the disk's link says
    assert view.check_bootable("/vmlinuz") == "./vmlinuz-6.1"
    unsigned = BootView(root, None)
    for path in paths:
        with pytest.raises(BootPathError):
            unsigned.open(path)


def test_a_path_that_cannot_be_encoded_is_refused_in_words(tmp_path: pathlib.Path) -> None:
    root = str(tmp_path)
    write_file(root, ("vmlinuz",), b"k")
    view = BootView(root, None)
    with pytest.raises(BootPathError):
        view.check_bootable("/\ud800")
    assert view.read_text("/\ud800") is None
    assert view.exists("/\ud800") is False
