"""How long Heads' listing and the /boot scan take at their size limits.

A configuration file is read whole up to MAX_TEXT_BYTES (4 MiB), one view
reads at most MAX_READ_BYTES of them together, and a scan visits at most
MAX_SCAN_FILES names: within those limits the work must grow linearly and
end in bounded time on a slow machine. Each case prints its seconds and MB/s
(pytest -s shows them; they go in the README); the assertions are generous
ceilings, not benchmarks.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from runtime.boot_configs import fs
from runtime.boot_configs.heads_listing import MAX_SCAN_FILES, heads_listing
from runtime.integrity import boot_view
from runtime.integrity.boot_scan import hash_files, scan_boot
from runtime.integrity.boot_view import BootView, Signed

LIMIT = boot_view.MAX_TEXT_BYTES
N = LIMIT // 8  # 512 KiB: N and 4N, then the limit itself
#: the 4 MiB case on a slow 2-core CI machine
CEILING = 60.0
#: 4N against N: linear is 4x; 10x plus this much (seconds) for noise
SLACK = 2.0
MB = 1_000_000


def fill(unit: str, size: int, head: str = "", tail: str = "") -> bytes:
    """head + unit repeated + tail, exactly size bytes (ASCII units)."""
    body = size - len(head) - len(tail)
    return (head + unit * (body // len(unit) + 1))[: size - len(tail)].encode() + tail.encode()


GRUB_ENTRY = (
    "menuentry 'Debian GNU/Linux, with Linux 6.1.0-13-amd64' --class debian {\n"
    "\tlinux (hd0,gpt2)/vmlinuz-6.1 root=UUID=0a1b ro quiet\n"
    "\tinitrd (hd0,gpt2)/initrd.img-6.1\n}\n"
)
SYSLINUX_LABEL = (
    "label linux\n  menu label ^Debian\n  kernel /vmlinuz-6.1\n"
    "  append initrd=/initrd.img-6.1 root=/dev/sda1 ro\n\n"
)
#: what a hostile line is made of: expansions, parentheses, quotes, backslashes
HOSTILE_LINE = "$(\"'\\`${(a)$$\\\"'"


@dataclass(frozen=True)
class Shape:
    name: str
    make: Callable[[int], bytes]  # a grub.cfg of exactly this many bytes


ONE_ENTRY = "menuentry 'x' {\n linux /vmlinuz-6.1 "
SHAPES = [
    Shape("menuentries", lambda n: fill(GRUB_ENTRY, n, tail="\n")),
    Shape("hostile line", lambda n: fill(HOSTILE_LINE, n, head=ONE_ENTRY, tail="\n}\n")),
    Shape("dollars", lambda n: fill("$", n, head=ONE_ENTRY, tail="\n}\n")),
    Shape("syslinux labels", lambda n: fill(SYSLINUX_LABEL, n, tail="\n")),
]


def boot_with(config: bytes, base: str) -> str:
    root = os.path.join(base, "boot")
    os.makedirs(os.path.join(root, "grub"))
    for name in ("vmlinuz-6.1", "initrd.img-6.1"):
        with open(os.path.join(root, name), "wb") as f:
            f.write(b"k")
    with open(os.path.join(root, "grub", "grub.cfg"), "wb") as f:
        f.write(config)
    return root


def signed(root: str) -> Signed:
    scan = scan_boot(root)
    return Signed(hash_files(root, scan.files), frozenset(scan.tree), scan.links)


def timed_listing(root: str, verified: bool) -> tuple[float, int]:
    view = BootView(root, signed(root) if verified else None)
    start = time.perf_counter()
    listing = heads_listing(view)
    return time.perf_counter() - start, len(listing.lines)


def report(what: str, size: int, seconds: float, lines: int) -> None:
    rate = size / MB / seconds if seconds else float("inf")
    print(
        f"\n  {what:42} {size / MB:6.2f} MB  {seconds:7.2f} s  {rate:6.2f} MB/s  entries: {lines}"
    )


def test_limits_agree() -> None:
    assert boot_view.MAX_TEXT_BYTES == fs.MAX_TEXT_BYTES


@pytest.mark.parametrize("shape", SHAPES, ids=[s.name for s in SHAPES])
def test_listing_at_the_size_limit_is_linear_and_bounded(shape: Shape) -> None:
    times: dict[int, float] = {}
    for size in (N, 4 * N, LIMIT):
        config = shape.make(size)
        assert len(config) == size
        with tempfile.TemporaryDirectory() as base:
            root = boot_with(config, base)
            times[size], lines = timed_listing(root, verified=False)
            report(f"{shape.name}, unsigned view", size, times[size], lines)
            if size == LIMIT:
                seconds, lines = timed_listing(root, verified=True)
                report(f"{shape.name}, verified view", size, seconds, lines)
                assert seconds < CEILING
    assert times[LIMIT] < CEILING
    assert times[4 * N] < 10 * times[N] + SLACK, times


def test_one_byte_past_the_limit_is_not_read() -> None:
    with tempfile.TemporaryDirectory() as base:
        root = boot_with(SHAPES[0].make(LIMIT + 1), base)
        assert BootView(root, None).read_text("/grub/grub.cfg") is None
        start = time.perf_counter()
        assert heads_listing(BootView(root, None)).lines == []
        assert time.perf_counter() - start < 5.0


def root_of_one(base: str, config: str) -> str:
    with open(config, "rb") as f:
        return boot_with(f.read(), os.path.join(base, "one"))


class CountingView(BootView):
    """The real view; counts the text it hands the parsers and hands them
    nothing, so the reads are measured without the parsing."""

    def __init__(self, root: str, signed: Signed | None) -> None:
        super().__init__(root, signed)
        self.handed = 0
        self.reads = 0

    def read_text(self, path: str) -> str | None:
        text = super().read_text(path)
        if text is not None:
            self.handed += len(text)
            self.reads += 1
        return None if text is None else ""


def test_hard_linked_configurations_are_read_within_one_budget() -> None:
    """One 4 MiB grub.cfg hard-linked into 40 directories costs 4 MiB of disk
    and would cost 40 full parses; one view reads MAX_READ_BYTES in all."""
    links = 40
    with tempfile.TemporaryDirectory() as base:
        root = boot_with(SHAPES[0].make(LIMIT), base)
        first = os.path.join(root, "grub", "grub.cfg")
        for i in range(links):
            os.makedirs(os.path.join(root, f"d{i}", "grub"))
            os.link(first, os.path.join(root, f"d{i}", "grub", "grub.cfg"))
        for verified in (False, True):
            view = CountingView(root, signed(root) if verified else None)
            start = time.perf_counter()
            heads_listing(view)
            seconds = time.perf_counter() - start
            kind = "verified" if verified else "unsigned"
            print(
                f"\n  {links + 1} hard links of a 4 MiB grub.cfg ({kind}): {view.reads} "
                f"read, {view.handed / MB:.1f} MB handed on, {seconds:.2f} s"
            )
            assert view.handed <= boot_view.MAX_READ_BYTES
            assert view.reads < links
        # what parsing all a view reads costs, from one real parse of the file
        one, _ = timed_listing(root_of_one(base, first), verified=False)
        print(
            f"\n  so at most about {view.reads * one:.0f} s of parsing in one listing "
            f"({view.reads} x {one:.2f} s)"
        )


def test_scan_and_hash_of_many_small_files() -> None:
    """What verification does with a /boot of 20,000 small files, and what
    the listing's walk of it costs."""
    count, per_dir = 20_000, 200
    # on tmpfs when there is one: making 20,000 files is the slow part on a
    # journalled disk, and the scan reads from the page cache either way
    shm = "/dev/shm"
    with tempfile.TemporaryDirectory(dir=shm if os.access(shm, os.W_OK) else None) as base:
        root = os.path.join(base, "boot")
        os.mkdir(root)
        for i in range(count):
            directory = os.path.join(root, f"d{i // per_dir:03}")
            if i % per_dir == 0:
                os.mkdir(directory)
            with open(os.path.join(directory, f"f{i:05}.mod"), "wb") as f:
                f.write(i.to_bytes(4, "big") * 64)  # 256 bytes
        start = time.perf_counter()
        scan = scan_boot(root)
        scanned = time.perf_counter() - start
        digests = hash_files(root, scan.files)
        hashed = time.perf_counter() - start - scanned
        assert len(digests) == count
        walk_start = time.perf_counter()
        listing = heads_listing(BootView(root, None))
        walked = time.perf_counter() - walk_start
        print(
            f"\n  scan_boot of {count} files: {scanned:.2f} s ({count / scanned:,.0f} files/s); "
            f"hash_files: {hashed:.2f} s ({count / hashed:,.0f} files/s); "
            f"listing walk: {walked:.2f} s"
        )
        # the walk stops at MAX_SCAN_FILES names and says so
        assert count + count // per_dir > MAX_SCAN_FILES
        assert any("too many files" in w.message for w in listing.warnings)
        assert scanned + hashed < 120.0 and walked < 60.0
