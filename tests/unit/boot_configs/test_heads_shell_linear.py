"""Heads' listing copy costs time linear in the configuration's size: /boot is
the attacker's, and one long line with many '$' (or '(' with no ')') must not
keep the firmware busy for seconds. The figures are printed (pytest -s); the
assertions are generous ceilings, not benchmarks."""

from __future__ import annotations

import functools
import itertools
import time
from collections.abc import Callable

from runtime.boot_configs.fs import MemoryFS
from runtime.boot_configs.heads_listing import heads_listing
from runtime.boot_configs.heads_shell import eval_echo

N = 100 * 1024  # 4N is the 400 KiB line the review timed

# a mix of every '$' form the emulation knows, and plain text between them
_DOLLARS = "a$b $$ $1 ${v} $ x$(c) $((1)) $"


def _line(size: int, unit: str) -> str:
    return (unit * (size // len(unit) + 1))[:size]


def _cpu_seconds(work: Callable[[], object]) -> float:
    """Best of two runs, in CPU time, so other processes on the machine
    (parallel test workers) blur the figures less."""
    best = float("inf")
    for _ in range(2):
        start = time.process_time()
        work()
        best = min(best, time.process_time() - start)
    return best


def _grub(line: str) -> MemoryFS:
    return MemoryFS(
        {"/grub/grub.cfg": f"menuentry 'x' {{\n linux /vmlinuz {line}\n}}\n", "/vmlinuz": "k"}
    )


def _listing_of(trees: dict[int, MemoryFS], n: int) -> object:
    return heads_listing(trees[n])


def _check_linear(label: str, work: Callable[[int], object], steps: int = 1) -> None:
    """Times work at N, 4N (400 KiB) and, with steps=2, 16N: quadratic work
    shows only once the copying outweighs the per-character cost, and the old
    eval_echo went 8x from N to 4N but 14x from 4N to 16N."""
    sizes = [N * 4**k for k in range(steps + 1)]
    seconds = [_cpu_seconds(functools.partial(work, n)) for n in sizes]
    print(
        f"{label}: " + ", ".join(f"{n} chars {t:.3f}s" for n, t in zip(sizes, seconds, strict=True))
    )
    assert seconds[1] < 2.0
    for small, large in itertools.pairwise(seconds):
        # linear work gives about 4x; quadratic, 16x
        assert large < 10 * small + 0.25


def test_eval_echo_is_linear_in_dollars() -> None:
    _check_linear("eval_echo '$' only", lambda n: eval_echo("$" * n), steps=2)
    _check_linear("eval_echo '$' mix", lambda n: eval_echo(_line(n, _DOLLARS)))


def test_heads_listing_is_linear_in_a_long_line() -> None:
    for label, unit in (("'$' mix", _DOLLARS), ("'(' without ')'", "(")):
        trees = {n: _grub(_line(n, unit)) for n in (N, 4 * N)}
        _check_linear(f"heads_listing {label}", functools.partial(_listing_of, trees))


def test_heads_listing_is_linear_in_many_modules() -> None:
    def listing(n: int) -> object:
        cfg = "menuentry 'x' {\n multiboot /xen\n" + "module /m\n" * (n // 10) + "}\n"
        return heads_listing(MemoryFS({"/grub.cfg": cfg, "/xen": "x"}))

    _check_linear("heads_listing module lines", listing)
    # syslinux puts a Xen entry's modules on one append line, split on ' --- '
    syslinux = "label x\n kernel mboot.c32\n append {}\n\n"
    files = {n: syslinux.format("a --- " * (n // 6)) for n in (N, 4 * N)}
    _check_linear(
        "heads_listing syslinux modules",
        lambda n: heads_listing(MemoryFS({"/s.cfg": files[n], "/mboot.c32": "k"}), "*.cfg"),
    )


def test_the_long_line_still_prints_the_same() -> None:
    # the speed-up changed no output: unset variables vanish, a lone '$' stays
    assert eval_echo("a$b $$ $1 ${v} $ x").text == "a $ x"
    assert eval_echo("x$(c) $((1)) $").text == "x $"
    assert eval_echo("$" * 5).text == "$"
    # GRUB device names leave the kernel and initrd paths, up to the first ')'
    cfg = "menuentry 'x' {\n linux (hd0,gpt2)/vmlinuz (a(b)c (\n initrd (hd0)/i(\n}\n"
    fs = MemoryFS({"/grub.cfg": cfg, "/vmlinuz": "k"})
    assert heads_listing(fs).lines == ["x|elf|kernel /vmlinuz|initrd /i(|append (a(b)c ("]
