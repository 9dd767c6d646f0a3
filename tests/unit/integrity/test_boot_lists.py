"""The signed-state formats against the commands Heads runs: GNU find, sort,
sha256sum on a real directory tree (../shared/reference/heads-facts.md §3)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from runtime.integrity.boot_lists import (
    ListFormatError,
    counter_text,
    format_hashes,
    format_rollback,
    format_sum_line,
    format_tree,
    parse_rollback,
    parse_sums,
    parse_tree,
    signed_listing,
)
from runtime.integrity.boot_scan import hash_files, scan_boot

C_LOCALE = {"LC_ALL": "C", "PATH": os.environ.get("PATH", "/usr/bin:/bin")}


def _run(args: list[str], cwd: Path) -> bytes:
    return subprocess.run(
        args, cwd=cwd, env=C_LOCALE, capture_output=True, check=True, timeout=60
    ).stdout


def _boot(tmp_path: Path) -> Path:
    boot = tmp_path / "boot"
    (boot / "grub" / "fonts").mkdir(parents=True)
    (boot / "grub" / "grub.cfg").write_text("menuentry x { linux /vmlinuz }\n")
    (boot / "grub" / "fonts" / "unicode.pf2").write_bytes(os.urandom(3000))
    (boot / "vmlinuz-6.1").write_bytes(os.urandom(5000))
    (boot / "initrd.img-6.1").write_bytes(b"")
    (boot / "with space é").write_bytes(b"x")
    (boot / "B-upper").write_bytes(b"y")
    (boot / "vmlinuz").symlink_to("vmlinuz-6.1")
    (boot / "lost+found").mkdir()
    (boot / "kexec_hashes.txt").write_text("old\n")
    (boot / "kexecdir").mkdir()
    (boot / "kexecdir" / "inner").write_text("z")
    (boot / "empty-dir").mkdir()
    return boot


def test_tree_and_hashes_match_find_sort_and_sha256sum(tmp_path: Path) -> None:
    boot = _boot(tmp_path)
    scan = scan_boot(str(boot))
    tree = _run(["sh", "-c", "find ./ ! -path './kexec*' -print0 | sort -z"], boot)
    assert format_tree(scan.tree) == tree
    assert parse_tree(tree, "t") == sorted(scan.tree, key=os.fsencode)
    theirs = _run(
        ["sh", "-c", "find ./ -type f ! -path './kexec*' -print0 | xargs -0 sha256sum"], boot
    )
    digests = hash_files(str(boot), scan.files)
    assert sorted(format_hashes(digests).splitlines()) == sorted(theirs.splitlines())
    # and sha256sum -c accepts what we write
    (boot / "kexec_hashes.txt").write_bytes(format_hashes(digests))
    _run(["sha256sum", "-c", "--quiet", "kexec_hashes.txt"], boot)


def test_signed_listing_matches_sha256sum_of_the_glob(tmp_path: Path) -> None:
    boot = tmp_path
    files = {
        "kexec_hashes.txt": b"a\n",
        "kexec_tree.txt": b"./\0",
        "kexec_rollback.txt": b"r\n",
        "kexec_default.1.txt": b"x|elf|kernel /v\n",
        "kexec.sig": b"sig",
        "kexec_hotp_counter": b"3\n",
    }
    for name, data in files.items():
        (boot / name).write_bytes(data)
    assert signed_listing(files) == _run(["sh", "-c", "sha256sum kexec*.txt"], boot)
    absolute = _run(["sh", "-c", f"sha256sum {boot}/kexec*.txt"], boot)
    assert signed_listing(files, f"{boot}/") == absolute


def test_rollback_file_is_sha256sum_of_the_counter_line(tmp_path: Path) -> None:
    counter = tmp_path / "counter-1a2b3c4"
    counter.write_bytes(counter_text("1a2b3c4", 2))
    assert counter.read_text() == "1a2b3c4: 0000000000000002\n"
    theirs = _run(["sha256sum", str(counter)], tmp_path)
    ours = format_rollback("1a2b3c4", 2)
    assert ours == theirs.replace(str(tmp_path).encode(), b"/tmp")
    rollback = parse_rollback(ours)
    assert rollback.nv_index == 0x01A2B3C4
    assert rollback.matches(2) and not rollback.matches(1) and not rollback.matches(3)


def test_sum_lines_parse_gnu_escapes_and_refuse_junk() -> None:
    digest = hashlib.sha256(b"").hexdigest()
    lines = parse_sums(f"{digest}  ./a b\n{digest} *./bin\n\\{digest}  ./new\\nline".encode(), "l")
    assert [x.name for x in lines] == ["./a b", "./bin", "./new\nline"]
    for bad in (b"\n", b"xyz  ./a\n", digest.encode() + b" ./a\n", digest.encode() + b"  \n"):
        with pytest.raises(ListFormatError):
            parse_sums(bad, "l")
    with pytest.raises(ListFormatError):
        format_sum_line(digest, "./new\nline")
    with pytest.raises(ListFormatError):
        parse_tree(b"./\0./cut", "t")
    with pytest.raises(ListFormatError):
        parse_rollback(b"")


@pytest.mark.skipif(shutil.which("busybox") is None, reason="busybox not installed")
def test_busybox_sha256sum_checks_our_list(tmp_path: Path) -> None:
    boot = _boot(tmp_path)
    scan = scan_boot(str(boot))
    (boot / "kexec_hashes.txt").write_bytes(format_hashes(hash_files(str(boot), scan.files)))
    _run(["busybox", "sha256sum", "-c", "-s", "kexec_hashes.txt"], boot)
