"""BLS type 1 entries (runtime/boot_configs/bls.py) and grubenv: u-root's
expectations, the spec's sort order and version comparison, Fedora's
$kernelopts, defaults, and a seeded mutation run over the corpus files."""

from __future__ import annotations

import contextlib
import posixpath
import random
from pathlib import Path

import pytest

from runtime.boot_configs.bls import parse_bls, vercmp
from runtime.boot_configs.entry import BootEntry, ConfigSyntaxError, EntryKind
from runtime.boot_configs.grubenv import parse_grubenv
from tests.support.uroot_corpus import Expected, UrootCorpus

CORPUS = UrootCorpus("bls/testdata")


class DictFs:
    """Files by absolute path; directories are implied by the paths."""

    def __init__(self, files: dict[str, str]) -> None:
        self.files = files

    def read_text(self, path: str) -> str | None:
        return self.files.get(path)

    def exists(self, path: str) -> bool:
        return path in self.files

    def listdir(self, path: str) -> list[str] | None:
        prefix = path.rstrip("/") + "/"
        names = {p[len(prefix) :].split("/")[0] for p in self.files if p.startswith(prefix)}
        return sorted(names) if names else None


class DirFs:
    """A directory standing in for the mounted /boot (read only)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, path: str) -> Path:
        return self.root / posixpath.normpath("/" + path).lstrip("/")

    def read_text(self, path: str) -> str | None:
        try:
            return self._path(path).read_text(errors="replace")
        except (OSError, ValueError):
            return None

    def exists(self, path: str) -> bool:
        try:
            return self._path(path).exists()
        except (OSError, ValueError):
            return False

    def listdir(self, path: str) -> list[str] | None:
        try:
            return sorted(p.name for p in self._path(path).iterdir())
        except (OSError, ValueError):
            return None


# --- u-root's expectations ---


def _same_path(got: str, expected: str) -> bool:
    # u-root resolves a relative linux/initrd value against the loader
    # directory; the spec (and we) against the partition root.
    return got == expected or "/loader" + got == expected


def _uroot_matches(exp: Expected, entry: BootEntry) -> list[str]:
    problems = []
    if exp.kind is not EntryKind.LINUX or entry.kind is not EntryKind.LINUX:
        problems.append("kind")
    if not _same_path(entry.kernel, exp.kernel):
        problems.append(f"kernel {entry.kernel}")
    if len(entry.initrds) != len(exp.initrds) or not all(
        _same_path(g, w) for g, w in zip(entry.initrds, exp.initrds, strict=True)
    ):
        problems.append(f"initrds {entry.initrds}")
    # u-root keeps only the last `options` line; the spec joins them all, so
    # u-root's command line is the tail of ours.
    want = exp.cmdline.split()
    got = entry.cmdline.split()
    if got[len(got) - len(want) :] != want:
        problems.append(f"cmdline {entry.cmdline!r}")
    # u-root's "rank" is a priority shared by all entries of a source, not a
    # menu position, so it is not compared.
    return problems


UROOT_CASES = [
    (case, i, exp) for case in CORPUS.cases for i, exp in enumerate(CORPUS.expectations(case))
]


@pytest.mark.parametrize(
    ("case", "index", "exp"), UROOT_CASES, ids=[f"{c}-{i}" for c, i, _ in UROOT_CASES]
)
def test_uroot_expectation(case: str, index: int, exp: Expected) -> None:
    entries, _ = parse_bls(DirFs(CORPUS.tree(case)))
    by_name = [e for e in entries if e.name == exp.name]
    assert by_name, f"no entry named {exp.name!r} in {[e.name for e in entries]}"
    assert _uroot_matches(exp, by_name[0]) == []


def test_uroot_expectation_count() -> None:
    passed = 0
    for case, _, exp in UROOT_CASES:
        entries, _ = parse_bls(DirFs(CORPUS.tree(case)))
        hits = [e for e in entries if e.name == exp.name]
        passed += bool(hits) and not _uroot_matches(exp, hits[0])
    print(f"u-root BLS expectations: {passed}/{len(UROOT_CASES)} pass")
    assert passed == len(UROOT_CASES)


def test_uroot_fedora_32_order_default_and_files() -> None:
    entries, warnings = parse_bls(DirFs(CORPUS.tree("fedora_32")))
    assert [e.rank for e in entries] == [0, 1]
    assert entries[0].name == "Fedora 32 (Server Edition) 5.6.6-300.fc32.x86_64"
    assert entries[0].is_default and not entries[1].is_default  # glob: the first match
    assert all(e.files_present for e in entries)
    assert warnings == []


def test_uroot_madeup_skips_entry_without_linux() -> None:
    entries, warnings = parse_bls(DirFs(CORPUS.tree("madeup")))
    assert len(entries) == 1
    assert entries[0].cmdline == "root=UUID=6d3376e4-fc93-4509-95ec-a21d68011da2 earlyprintk=ttyS0"
    assert any("entry-2.conf" in w.source and "linux" in w.message for w in warnings)


def test_uroot_typeone_unknown_and_empty_keys() -> None:
    text = (CORPUS.tree("typeone") / "fedora.conf").read_text()
    fs = DictFs({"/loader/entries/fedora.conf": text})
    entries, warnings = parse_bls(fs)
    assert len(entries) == 1
    e = entries[0]
    assert e.kernel == "/6a9857a393724b7a981ebb5b8495b9ea/3.8.0-2.fc19.x86_64/linux"
    assert e.cmdline == "root=UUID=6d3376e4-fc93-4509-95ec-a21d68011da2 quiet"
    assert not e.files_present  # kernel and initrd are not in this fake fs
    assert sum("missing" in w.message for w in warnings) == 2


# --- version comparison and sort order ---


@pytest.mark.parametrize(
    ("older", "newer"),
    [
        ("5.9", "5.10"),
        ("1~rc1", "1"),  # '~' sorts before the end
        ("1~rc1", "1~rc2"),
        ("1", "1^p1"),  # '^' sorts after the end
        ("1^p1", "1.1"),  # ... but before '.'
        ("1-2", "1^2"),  # '-' before '^'
        ("1.a", "1.1"),  # numbers are newer than letters
        ("a", "b"),
        ("ab", "abc"),
        ("4.18.0-80.el8", "5.6.6-300.fc32"),
        ("0-rescue", "5.6.6-300.fc32.x86_64"),
    ],
)
def test_vercmp_order(older: str, newer: str) -> None:
    assert vercmp(older, newer) == -1
    assert vercmp(newer, older) == 1


@pytest.mark.parametrize(("a", "b"), [("11", "011"), ("a+1", "a1"), ("", ""), ("1.0", "1.0")])
def test_vercmp_equal(a: str, b: str) -> None:
    assert vercmp(a, b) == 0


def _conf(title: str, **keys: str) -> str:
    extra = (f"{k.replace('_', '-')} {v}" for k, v in keys.items())
    lines = [f"title {title}", "linux /vmlinuz", *extra]
    return "\n".join(lines) + "\n"


def _fs(entries: dict[str, str], **extra: str) -> DictFs:
    files = {f"/loader/entries/{n}.conf": t for n, t in entries.items()}
    files["/vmlinuz"] = ""
    files.update(extra)
    return DictFs(files)


def test_sort_key_entries_first_then_machine_id_then_version_descending() -> None:
    fs = _fs(
        {
            "zzz-no-key": _conf("nokey"),
            "a": _conf("old", sort_key="fedora", machine_id="m1", version="5.9"),
            "b": _conf("new", sort_key="fedora", machine_id="m1", version="5.10"),
            "c": _conf("m0", sort_key="fedora", machine_id="m0", version="1"),
            "d": _conf("arch", sort_key="arch", machine_id="m9", version="1"),
        }
    )
    entries, _ = parse_bls(fs)
    assert [e.name for e in entries] == ["arch 1", "m0 1", "new 5.10", "old 5.9", "nokey"]
    assert [e.rank for e in entries] == [0, 1, 2, 3, 4]


def test_without_sort_key_file_names_newest_first() -> None:
    fs = _fs({"fc-5.9.1": _conf("x"), "fc-5.10.0": _conf("y"), "fc-0-rescue": _conf("z")})
    entries, _ = parse_bls(fs)
    assert [e.name for e in entries] == ["y", "x", "z"]
    assert entries[0].is_default


def test_boot_counting_suffix_is_not_part_of_the_id() -> None:
    fs = _fs(
        {"a-5.10+3-0": _conf("new"), "a-5.9": _conf("old")},
        **{"/loader/loader.conf": "default a-5.10\n"},
    )
    entries, warnings = parse_bls(fs)
    assert entries[0].name == "new" and entries[0].is_default
    assert warnings == []


# --- Fedora's grubenv: $kernelopts and saved_entry ---

GRUBENV = (
    "# GRUB Environment Block\n"
    "saved_entry=mid-5.9\n"
    "kernelopts=root=/dev/mapper/root ro rhgb quiet\n"
    "boot_success=0\n"
)


def test_kernelopts_and_saved_entry_from_grubenv() -> None:
    grubenv = GRUBENV + "#" * (1024 - len(GRUBENV))
    fs = _fs(
        {
            "mid-5.10": _conf("new", options="$kernelopts ${tuned_params}"),
            "mid-5.9": _conf("old", options="$kernelopts", initrd="/initramfs.img $tuned_initrd"),
        },
        **{
            "/grub2/grubenv": grubenv,
            "/initramfs.img": "",
            "/loader/loader.conf": "default mid-5.10\n",
        },
    )
    entries, warnings = parse_bls(fs)
    assert [e.name for e in entries] == ["new", "old"]
    assert entries[0].cmdline == "root=/dev/mapper/root ro rhgb quiet"
    assert entries[1].initrds == ("/initramfs.img",)
    assert entries[1].is_default and not entries[0].is_default  # saved_entry wins
    assert {w.message for w in warnings} == {
        "$tuned_params is not set in grubenv",
        "$tuned_initrd is not set in grubenv",
    }
    assert all(w.line > 0 for w in warnings)


def test_default_glob_matching_nothing_falls_back_to_first() -> None:
    fs = _fs({"a": _conf("a"), "b": _conf("b")}, **{"/loader/loader.conf": "default zz*\n"})
    entries, warnings = parse_bls(fs)
    assert [e.is_default for e in entries] == [True, False]
    assert any("matches no entry" in w.message for w in warnings)


def test_missing_initrd_marks_entry_and_efi_only_is_skipped() -> None:
    fs = _fs({"a": _conf("a", initrd="/gone.img"), "u": "title uki\nefi /EFI/Linux/x.efi\n"})
    entries, warnings = parse_bls(fs)
    assert [e.name for e in entries] == ["a"]
    assert not entries[0].files_present
    assert "/gone.img is missing" in entries[0].warnings
    assert any(w.message == "/gone.img is missing" and w.line == 3 for w in warnings)
    assert any("EFI program" in w.message and w.source.endswith("u.conf") for w in warnings)


def test_no_entries_directory() -> None:
    assert parse_bls(DictFs({})) == ([], [])


# --- grubenv ---


def test_grubenv_values_padding_and_escapes() -> None:
    text = "# GRUB Environment Block\na=1\nb=x\\\\y\\\nz\n" + "#" * 900
    values, warnings = parse_grubenv(text)
    assert values == {"a": "1", "b": "x\\y\nz"}
    assert warnings == []


def test_grubenv_garbage_is_warned_and_skipped() -> None:
    values, warnings = parse_grubenv("junk\nok=1\n=nokey\nbad key=2\n\x00\x01\n", "/grub2/grubenv")
    assert values == {"ok": "1"}
    assert [w.line for w in warnings] == [1, 1, 3, 4, 5]
    assert warnings[0].message.startswith("missing")


def test_grubenv_empty() -> None:
    values, warnings = parse_grubenv("")
    assert values == {} and len(warnings) == 1


# --- robustness: mutated corpus files ---

_NOISE = [
    "$",
    "${",
    "}",
    "~",
    "^",
    "-",
    ".",
    "\x00",
    "\\",
    "#",
    "=",
    " ",
    "\t",
    "\n",
    "linux ",
    "initrd ",
    "options ",
    "sort-key ",
    "version ",
    "é",
    "\ud800",
    "*",
    "[",
]


def _mutate(rng: random.Random, text: str) -> str:
    chars = list(text)
    for _ in range(rng.randint(1, 8)):
        op = rng.randrange(4)
        pos = rng.randint(0, len(chars))
        if op == 0:
            chars[pos:pos] = list(rng.choice(_NOISE))
        elif op == 1 and chars:
            del chars[pos : pos + rng.randint(1, 20)]
        elif op == 2:
            chars[pos:pos] = chars[rng.randint(0, len(chars)) :][: rng.randint(1, 40)]
        else:
            chars = chars[:pos]
    return "".join(chars)


def _corpus_texts() -> list[str]:
    texts = [GRUBENV, "default *\n", _conf("t", version="1~rc^2", sort_key="k")]
    if CORPUS.root.is_dir():
        texts += [p.read_text() for p in sorted(CORPUS.root.rglob("*.conf"))]
    return texts


def test_mutated_inputs_raise_only_config_syntax_error() -> None:
    rng = random.Random(20260525)
    texts = _corpus_texts()
    count = 0
    for _ in range(1500):
        files = {"/vmlinuz": "", "/initrd": ""}
        for i in range(rng.randint(1, 4)):
            name = f"/loader/entries/e{i}-{rng.randint(0, 99)}.conf"
            files[name] = _mutate(rng, rng.choice(texts))
        files["/loader/loader.conf"] = _mutate(rng, "default e*\n")
        files["/grub2/grubenv"] = _mutate(rng, GRUBENV)
        try:
            entries, _ = parse_bls(DictFs(files))
        except ConfigSyntaxError:
            pass
        else:
            assert [e.rank for e in entries] == list(range(len(entries)))
            assert sum(e.is_default for e in entries) == (1 if entries else 0)
        with contextlib.suppress(ConfigSyntaxError):
            parse_grubenv(_mutate(rng, GRUBENV))
        count += 1
    print(f"mutated BLS inputs: {count} (plus as many grubenv blocks)")
