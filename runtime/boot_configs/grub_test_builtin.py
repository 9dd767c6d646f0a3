"""GRUB's `test` builtin (also spelled `[ ... ]`) and the `true`/`false`
conditions, decided on already-expanded words.

Each answer is True, False or None for "cannot be known here": a file test
on another disk, an operator this reader does not model. `-o` splits first,
so `-a` binds tighter; either is decided by one known side when that side
suffices.
"""

from __future__ import annotations

from collections.abc import Callable

from runtime.boot_configs.fs import BootFS, normalize

#: (operator, path) -> whether the file test holds, None when unknown
FileTest = Callable[[str, str], "bool | None"]

#: longer expressions are no menu's; the limit bounds the recursion below
_MAX_ARGS = 32
_FILE_OPS = ("-e", "-f", "-d", "-s")
_INT_OPS = {"-eq": 0, "-ne": 1, "-lt": 2, "-le": 3, "-gt": 4, "-ge": 5}


def evaluate_test(args: list[str], file_test: FileTest | None = None) -> bool | None:
    """GRUB's `test` on known strings: -o, -a, !, -n, -z, =, ==, !=, integer
    comparisons; file tests (-e -f -d -s) through file_test, else unknown."""
    if len(args) > _MAX_ARGS:
        return None
    for joiner in ("-o", "-a"):
        if joiner in args:
            i = args.index(joiner)
            both = (evaluate_test(args[:i], file_test), evaluate_test(args[i + 1 :], file_test))
            # one known side can decide: `[ $grub_platform = efi -a -f /x ]` on pc
            decisive = joiner == "-o"
            if decisive in both:
                return decisive
            return None if None in both else not decisive
    if args[:1] == ["!"]:
        v = evaluate_test(args[1:], file_test)
        return None if v is None else not v
    if len(args) == 1:
        return bool(args[0])
    if len(args) == 2 and args[0] in ("-n", "-z"):
        return bool(args[1]) == (args[0] == "-n")
    if len(args) == 2 and args[0] in _FILE_OPS:
        return file_test(args[0], args[1]) if file_test else None
    if len(args) == 3:
        return _binary(*args)
    return None


def _binary(lhs: str, op: str, rhs: str) -> bool | None:
    if op in ("=", "=="):
        return lhs == rhs
    if op == "!=":
        return lhs != rhs
    if op not in _INT_OPS:
        return None
    try:
        x, y = int(lhs), int(rhs)
    except ValueError:
        return None
    return (x == y, x != y, x < y, x <= y, x > y, x >= y)[_INT_OPS[op]]


def evaluate_condition(args: list[str], file_test: FileTest | None = None) -> bool | None:
    """An `if`/`elif` condition as words: `true`, `false`, `[ ... ]` or
    `test ...`; anything else (another command's status) is unknown."""
    if args == ["true"]:
        return True
    if args == ["false"]:
        return False
    if len(args) >= 2 and args[0] == "[" and args[-1] == "]":
        return evaluate_test(args[1:-1], file_test)
    if args and args[0] == "test":
        return evaluate_test(args[1:], file_test)
    return None


def file_test_on(fs: BootFS) -> FileTest:
    """`-e/-f/-d/-s path` answered from the file system being read; a path on
    a named device (hd0,1) is another disk's and stays unknown."""

    def file_test(op: str, path: str) -> bool | None:
        if path.startswith("(") or not path.startswith("/"):
            return None
        norm = normalize(path)
        if norm is None:
            return False
        scan = getattr(fs, "scan", None)
        is_dir = scan is not None and scan(norm) is not None
        if op == "-d":
            return is_dir if scan is not None else None
        if not fs.exists(norm):
            return False
        if op == "-e":
            return True
        if is_dir:
            return False
        return op == "-f" or fs.read_text(norm) != ""

    return file_test
