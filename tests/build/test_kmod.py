"""Kernel module load order (tools/initrd/kmod.py) on the locked kernel package."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tools.boards import load_board_table
from tools.initrd.cache import default_cache_dir
from tools.initrd.kmod import ModuleError, load_order, modinfo
from tools.initrd.lock import load_lock
from tools.initrd.pool import unpack

pytestmark = pytest.mark.build


def _name(path: Path) -> str:
    return path.name.removesuffix(".ko").replace("-", "_")


@pytest.fixture(scope="module")
def modules_dir() -> Path:
    kernel = load_board_table("qemu-swtpm")["kernel"]
    tree = unpack(load_lock().deb(kernel["package"]), default_cache_dir())
    path: Path = tree / "lib" / "modules" / str(kernel["release"])
    assert (path / "modules.builtin").is_file()
    return path


def _deps(path: Path) -> list[str]:
    return [d.replace("-", "_") for d in modinfo(path).get("depends", "").split(",") if d]


def _check_order(order: list[Path], builtin: set[str]) -> None:
    names = [_name(p) for p in order]
    assert len(names) == len(set(names)), f"duplicates in {names}"
    position = {n: i for i, n in enumerate(names)}
    for path in order:
        for dep in _deps(path):
            if dep in builtin:
                continue
            assert dep in position, f"{_name(path)} needs {dep}, which is not loaded"
            assert position[dep] < position[_name(path)], f"{dep} after its user {_name(path)}"


def _builtin(modules_dir: Path) -> set[str]:
    return {_name(Path(line)) for line in (modules_dir / "modules.builtin").read_text().split()}


def test_dependencies_come_first_without_duplicates(modules_dir: Path) -> None:
    order = load_order(modules_dir, ["ext4", "virtio_blk"])
    names = [_name(p) for p in order]
    assert {"ext4", "virtio_blk", "jbd2", "mbcache", "virtio", "virtio_ring"} <= set(names)
    _check_order(order, _builtin(modules_dir))
    assert all(p.is_file() and modules_dir in p.parents for p in order)
    # Asking again, or for a module twice, gives the same list.
    assert load_order(modules_dir, ["ext4", "virtio_blk", "ext4"]) == order


def test_the_board_modules_order(modules_dir: Path) -> None:
    wanted = load_board_table("qemu-swtpm")["kernel"]["modules"]
    order = load_order(modules_dir, wanted)
    _check_order(order, _builtin(modules_dir))
    loaded = {_name(p) for p in order}
    builtin = _builtin(modules_dir)
    assert all(w in loaded or w in builtin for w in wanted)


def test_modinfo_agrees_with_objcopy(modules_dir: Path) -> None:
    """pyelftools' reading of .modinfo equals binutils' for ext4."""
    objcopy = shutil.which("objcopy")
    if objcopy is None:
        pytest.skip("objcopy (binutils) is not installed")
    (ext4,) = [p for p in load_order(modules_dir, ["ext4"]) if _name(p) == "ext4"]
    done = subprocess.run(
        [objcopy, "-O", "binary", "--only-section=.modinfo", str(ext4), "/dev/stdout"],
        capture_output=True,
        check=True,
        timeout=60,
    )
    items = [i.decode() for i in done.stdout.split(b"\0") if b"=" in i]
    (depends,) = [i.split("=", 1)[1] for i in items if i.startswith("depends=")]
    assert modinfo(ext4)["depends"] == depends


def test_dashes_and_underscores_are_the_same_module(modules_dir: Path) -> None:
    assert load_order(modules_dir, ["virtio-blk"]) == load_order(modules_dir, ["virtio_blk"])


def test_unknown_module_raises(modules_dir: Path) -> None:
    with pytest.raises(ModuleError, match="no_such_module"):
        load_order(modules_dir, ["ext4", "no_such_module"])


def test_builtin_module_is_skipped(modules_dir: Path) -> None:
    builtin = sorted(_builtin(modules_dir))
    assert builtin
    assert load_order(modules_dir, builtin[:5]) == []
    with_builtin = load_order(modules_dir, [builtin[0], "virtio_blk"])
    assert with_builtin == load_order(modules_dir, ["virtio_blk"])
