"""GRUB parser: u-root's testdata_new expectations through an adapter,
hand-written cases for the lexer and the parser, and a seeded mutation run."""

from __future__ import annotations

import json
import random
import re

import pytest

from runtime.boot_configs.entry import BootEntry, ConfigSyntaxError, EntryKind, Module
from runtime.boot_configs.fs import DirFS, MemoryFS
from runtime.boot_configs.grub import parse_grub
from runtime.boot_configs.grub_lexer import tokenize
from tests.support.boot_config_tree import config_tree, parsed
from tests.support.uroot_corpus import Expected, UrootCorpus

CORPUS = UrootCorpus("grub/testdata_new")
CASES = CORPUS.cases


# --- u-root expectations ------------------------------------------------------

_VARREF = re.compile(r"\$\{?[A-Za-z0-9_]+\}?")


def _loose(cmdline: str) -> tuple[str, ...]:
    """u-root keeps GRUB's text raw: variables unexpanded (${loopback}),
    backslashes and quotes in place. We expand as GRUB does, so both sides drop
    backslashes and quotes, words holding a reference, and words an empty
    expansion left as 'key='; the expected words must then appear in order."""
    out = []
    for w in cmdline.replace("\\", "").replace('"', "").replace("'", "").split():
        if _VARREF.search(w) or w.endswith("="):
            continue
        out.append(w)
    return tuple(out)


def _subseq(small: tuple[str, ...], big: tuple[str, ...]) -> bool:
    it = iter(big)
    return all(any(x == y for y in it) for x in small)


def _matches(exp: Expected, e: BootEntry) -> bool:
    # u-root names a BLS entry "<title> <version>"; GRUB's blscfg shows the title
    bls_name = e.source.endswith(".conf") and exp.name.startswith(e.name + " ")
    return (
        (exp.name == e.name or bls_name)
        and exp.kind is e.kind
        and exp.kernel == e.kernel
        and exp.initrds == e.initrds
        and _subseq(_loose(exp.cmdline), _loose(e.cmdline))
        and len(exp.modules) == len(e.modules)
        and all(
            x.path == m.path and _subseq(_loose(x.cmdline), _loose(m.cmdline))
            for x, m in zip(exp.modules, e.modules, strict=True)
        )
    )


def _config(case: str) -> str:
    base = CORPUS.tree(case)
    for rel in (
        "EFI/BOOT/grub.cfg",
        "EFI/centos/grub.cfg",
        "boot/grub2/grub.cfg",
        "boot/grub/grub.cfg",
        "grub2/grub.cfg",
        "grub/grub.cfg",
    ):
        if (base / rel).is_file():
            return "/" + rel
    raise AssertionError(f"no grub.cfg in {case}")


def _u_root_case(case: str) -> tuple[list[Expected], list[BootEntry]]:
    entries, _ = parse_grub(DirFS(CORPUS.tree(case)), _config(case))
    # a search --fs-uuid may resolve to another device of the case
    return CORPUS.expectations(case, any_device=True), entries


def _count(case: str) -> tuple[int, int]:
    expected, entries = _u_root_case(case)
    return sum(1 for x in expected if any(_matches(x, e) for e in entries)), len(expected)


@pytest.mark.parametrize("case", CASES)
def test_u_root_expectations(case: str) -> None:
    passed, total = _count(case)
    print(f"{case}: {passed}/{total} u-root expectations match")
    assert passed == total


def test_u_root_total() -> None:
    passed, total = CORPUS.tally(_count)
    print(f"u-root grub: {passed}/{total} expected entries match")
    assert passed == total


def test_u_root_defaults_and_missing_files() -> None:
    entries, warnings = parse_grub(
        DirFS(CORPUS.tree("CentOS_7_x86_64_DVD_1810")), "/EFI/BOOT/grub.cfg"
    )
    # set default="1": the second entry
    assert [e.name for e in entries if e.is_default] == ["Test this media & install CentOS 7"]
    # the corpus keeps configurations only
    assert all(not e.files_present for e in entries)
    assert any("missing" in w.message for w in warnings)
    assert [e.rank for e in entries] == list(range(len(entries)))
    bls, _ = parse_grub(
        DirFS(CORPUS.tree("CentOS_8_Stream_x86_64_blscfg_sda1")), "/EFI/centos/grub.cfg"
    )
    # grubenv's saved_entry names the 5.18.0 entry: the grubenv test is read
    # from the file system, and the boot-counter branch (default=1 on OSTree)
    # is not taken, as grubenv sets no boot_counter
    assert [e.name for e in bls if e.is_default] == ["CentOS Linux (5.18.0) 8"]
    assert all(e.files_present for e in bls)


# --- lexer --------------------------------------------------------------------


def _words(text: str) -> list[list[str]]:
    cmds, _ = tokenize(text)
    return [[w.raw() for w in c.words] for c in cmds]


def test_lexer_quotes_escapes_comments() -> None:
    assert _words("a 'b c' \"d $x e\" f\\ g # comment\nh;i") == [
        ["a", "b c", "d ${x} e", "f g"],
        ["h"],
        ["i"],
    ]
    assert _words("linux /vmlinuz \\\n  ro quiet") == [["linux", "/vmlinuz", "ro", "quiet"]]
    assert _words('echo "a\\"b\\$c\\d"') == [["echo", 'a"b$c\\d']]
    assert _words("echo a#b ${y}z $") == [["echo", "a#b", "${y}z", "$"]]
    cmds, _ = tokenize("x\n\n  y \\\n z\n")
    assert [c.line for c in cmds] == [1, 3]


def test_lexer_unterminated_quote_warns() -> None:
    cmds, warnings = tokenize("menuentry 'broken {\n linux /v\n}\n", "f.cfg")
    assert cmds and warnings and "unterminated" in warnings[0].message


# --- parser -------------------------------------------------------------------


GRUB_CFG = "/boot/grub/grub.cfg"
#: the files the hand-written configurations boot
PLACEHOLDERS = [f"/boot/{name}" for name in ("vmlinuz", "initrd.img", "ucode.img", "xen.gz")]


def _parse(cfg: str, **extra: str) -> tuple[list[BootEntry], list[str]]:
    return parsed(parse_grub, config_tree(GRUB_CFG, cfg, PLACEHOLDERS, extra), GRUB_CFG)


def test_menuentry_vars_and_initrds() -> None:
    entries, warnings = _parse(
        "set opts='ro quiet'\nset k=/boot/vmlinuz\n"
        "menuentry 'One' --class os {\n  linux (hd0,1)$k root=/dev/sda1 $opts\n"
        "  initrd /boot/ucode.img (hd0,1)/boot/initrd.img\n}\n"
    )
    assert warnings == []
    (one,) = entries
    assert one == BootEntry(
        name="One",
        kind=EntryKind.LINUX,
        kernel="/boot/vmlinuz",
        initrds=("/boot/ucode.img", "/boot/initrd.img"),
        cmdline="root=/dev/sda1 ro quiet",
        source="/boot/grub/grub.cfg",
        line=3,
        is_default=True,
    )


def test_submenu_default_by_title_id_and_number() -> None:
    cfg = (
        "set default={d}\n"
        "menuentry A {{ linux /boot/vmlinuz }}\n"
        "submenu Sub {{\n menuentry B --id b-id {{ linux16 /boot/vmlinuz }}\n"
        " menuentry C {{ linuxefi /boot/vmlinuz }}\n}}\n"
    )
    for d, want in (
        ("0", "A"),
        ("b-id", "B"),
        ("'Sub>C'", "C"),
        ("C", "C"),
        ("1>1", "C"),
        ("1>0", "B"),
        ("Sub>b-id", "B"),
        ("1", None),
    ):
        entries, _ = _parse(cfg.format(d=d))
        assert [e.name for e in entries] == ["A", "B", "C"]
        # "1" is the submenu itself, which boots nothing: the first entry
        assert [e.name for e in entries if e.is_default] == [want or "A"], d


def test_multiboot_modules_and_missing_files() -> None:
    entries, warnings = _parse(
        "menuentry Xen {\n multiboot2 /boot/xen.gz dom0_mem=1G\n"
        " module2 /boot/vmlinuz root=x ro\n module2 --nounzip /boot/gone.img\n}\n"
    )
    (xen,) = entries
    assert xen.kind is EntryKind.MULTIBOOT
    assert xen.cmdline == "dom0_mem=1G"
    assert xen.modules == (Module("/boot/vmlinuz", "root=x ro"), Module("/boot/gone.img"))
    assert not xen.files_present
    assert any("/boot/gone.img" in w and ":1:" in w for w in warnings)


def test_if_static_and_dynamic() -> None:
    entries, warnings = _parse(
        "if [ a = b ]; then set x=1; else set x=2; fi\n"
        "if [ -s $prefix/grubenv ]; then set y=3\nfi\n"
        "if [ $grub_platform = efi ]; then set z=4\nfi\n"
        "menuentry E { linux /boot/vmlinuz x=$x y=$y z=$z }\n"
    )
    # no grubenv on this file system: known false; the platform: unknown
    assert entries[0].cmdline == "x=2 y= z=4"
    assert sum("both branches" in w for w in warnings) == 1


def test_load_env_source_configfile_and_loops() -> None:
    entries, warnings = _parse(
        "load_env\nsource /boot/grub/extra.cfg\nconfigfile /boot/grub/grub.cfg\n"
        'menuentry "$title" { linux /boot/vmlinuz $kernelopts }\n',
        boot__grub__grubenv="# GRUB Environment Block\nkernelopts=root=/dev/x ro\n",
        boot__grub__extra_DOT_cfg="set title=Sourced\nset default=Sourced\n",
    )
    assert entries[0].name == "Sourced"
    assert entries[0].cmdline == "root=/dev/x ro"
    assert entries[0].is_default
    assert any("too deep" in w for w in warnings)


def test_broken_entries_skipped_with_warnings() -> None:
    entries, warnings = _parse(
        "menuentry { linux /boot/vmlinuz }\nmenuentry NoKernel { echo hi }\n"
        "menuentry Good { linux /boot/vmlinuz }\n}\nfi\nsource ../../etc/passwd\n"
    )
    assert [e.name for e in entries] == ["Good"]
    assert any("no kernel" in w for w in warnings)
    assert any("outside the root" in w for w in warnings)


# --- robustness ---------------------------------------------------------------

TOKENS = [
    "menuentry",
    "submenu",
    "{",
    "}",
    "if",
    "then",
    "else",
    "elif",
    "fi",
    "function",
    "'",
    '"',
    "\\",
    "$",
    "${",
    "${x}",
    "set",
    "set x=",
    "linux",
    "initrd",
    "multiboot",
    "module",
    "source /boot/grub/grub.cfg",
    "configfile",
    "load_env",
    "blscfg",
    "search --set=root",
    ";",
    "#",
    "\n",
    "\0",
    "(hd0,1)",
    "../..",
    "default=",
    "while",
    "done",
    "[",
    "]",
]


def test_mutated_corpus_only_raises_config_syntax_error() -> None:
    rng = random.Random(0x6B0B)
    mains = {case: _config(case) for case in CASES}
    tried = 0
    trees = CORPUS.mutated_trees(rng, 300, TOKENS, files_per_tree=3, suffixes=(".cfg", ".conf", ""))
    for case, files in trees:
        try:
            entries, warnings = parse_grub(MemoryFS(files), mains[case])
        except ConfigSyntaxError:
            pass
        else:
            assert all(isinstance(e, BootEntry) for e in entries)
            assert all(str(w) for w in warnings)
        tried += 1
    print(f"grub mutation run: {tried} inputs tried")
    assert tried == 300


def test_hostile_shapes_are_bounded() -> None:
    # deep nesting is refused, not a RecursionError
    with pytest.raises(ConfigSyntaxError):
        _parse("if true; then\n" * 5000 + "fi\n" * 5000)
    with pytest.raises(ConfigSyntaxError):
        _parse("submenu a {\n" * 5000)
    # doubling a variable is cut, not an exhausted memory
    entries, warnings = _parse(
        "set a=x\n" + "set a=$a$a\n" * 40 + "menuentry A { linux /boot/vmlinuz $a }\n"
    )
    assert len(entries[0].cmdline) <= 64 * 1024
    assert any("cut" in w for w in warnings)
    # a file sourcing itself twice fans out; the read budget stops it
    entries, warnings = _parse(
        "source /boot/grub/grub.cfg\nsource /boot/grub/grub.cfg\n"
        "menuentry A { linux /boot/vmlinuz }\n"
    )
    assert entries and any("too many files" in w for w in warnings)


# --- GRUB's script tests, as u-root records their echo output -----------------

SCRIPTS = CORPUS.root.parent / "testdata"
SCRIPT_CASES = sorted(p.stem for p in SCRIPTS.glob("*.in"))
assert SCRIPT_CASES, f"test data missing: no GRUB script cases in {SCRIPTS}"


def _echo_words(stem: str) -> tuple[list[list[str]], list[list[str]]]:
    cmds, _ = tokenize((SCRIPTS / f"{stem}.in").read_text())
    got = [[w.raw() for w in c.words[1:]] for c in cmds if c.words[0].raw() == "echo"]
    want: list[list[str]] = []
    for line in (SCRIPTS / f"{stem}.out").read_text().splitlines():
        if line.startswith("echo:[]string{"):
            # Go's quoted strings are JSON strings here
            want.append(json.loads("[" + line[len("echo:[]string{") : -1] + "]"))
    return got, want


@pytest.mark.parametrize("stem", SCRIPT_CASES)
def test_grub_script_echo_words(stem: str) -> None:
    got, want = _echo_words(stem)
    assert got == want


def test_argument_with_blanks_stays_one_parameter() -> None:
    entries, _ = _parse(
        'set v=\'a b\'\nmenuentry Q {\n linux /boot/vmlinuz x="A longer one" y=$v "$v"\n}\n'
    )
    # an unquoted expansion splits; a quoted word with blanks is re-quoted whole
    assert entries[0].cmdline == '"x=A longer one" y=a b "a b"'


def test_token_soup_only_raises_config_syntax_error() -> None:
    rng = random.Random(0x9B0B)
    words = [*TOKENS, "A", "/boot/vmlinuz", "x", "=", "-a", "-n", "--id", "'t'", '"q"', "\\\n"]
    tried = 0
    for _ in range(3000):
        text = " ".join(rng.choice(words) for _ in range(rng.randrange(60)))
        env = "# GRUB Environment Block\n" + " ".join(rng.choice(words) for _ in range(10))
        try:
            entries, warnings = _parse(text, boot__grub__grubenv=env)
        except ConfigSyntaxError:
            pass
        else:
            assert all(w for w in warnings)
            assert sum(e.is_default for e in entries) == (1 if entries else 0)
        tried += 1
    print(f"grub token soup: {tried} inputs tried")
    assert tried == 3000


def test_conditions_on_known_variables() -> None:
    entries, warnings = _parse(
        "set t=5\nset e=\n"
        'if [ "$t" -gt 3 -a -z "$e" ]; then set a=yes; else set a=no; fi\n'
        "if [ x$feature_x = xy ]; then set u=1\nfi\n"
        # u is now uncertain: a test on it is not evaluated either
        'if [ "$u" = 1 ]; then set b=1; elif true; then set b=2; else set b=3; fi\n'
        "if test ! a = a; then set c=1; fi\n"
        "menuentry E { linux /boot/vmlinuz a=$a b=$b c=$c }\n"
    )
    assert entries[0].cmdline == "a=yes b=3 c="
    assert sum("both branches" in w for w in warnings) == 2


def test_unset_names_are_empty_unless_something_may_set_them() -> None:
    entries, warnings = _parse(
        # never set anywhere: empty, so the test is decided
        'if [ -n "$never" ]; then set a=1; else set a=2; fi\n'
        # a function body is not run here, but may set $f when GRUB calls it
        "function setf { set f=1 }\n"
        'if [ -z "$f" ]; then set b=1; else set b=2; fi\n'
        'regexp --set=1:r "(.)" x\nif [ -z "$r" ]; then set c=1; else set c=2; fi\n'
        "for i in 1 2; do set l=1; done\n"
        'if [ -z "$l" ]; then set d=1; else set d=2; fi\n'
        # file tests on this file system
        "if [ -f /boot/vmlinuz -a -d /boot -a ! -e /nope -a -s /boot/grub/grub.cfg ]; then\n"
        " set e=yes\nfi\n"
        "if [ -f (hd0,1)/x ]; then set g=1; fi\n"
        "menuentry E { linux /boot/vmlinuz a=$a b=$b c=$c d=$d e=$e g=$g }\n"
    )
    assert entries[0].cmdline == "a=2 b=2 c=2 d=2 e=yes g=1"
    assert sum("both branches" in w for w in warnings) == 4
    entries, _ = _parse(
        'eval "set q=1"\nif [ -z "$q" ]; then set h=1; else set h=2; fi\n'
        "menuentry E { linux /boot/vmlinuz h=$h }\n"
    )
    assert entries[0].cmdline == "h=2"  # after an eval nothing unset is known empty


def test_blscfg_takes_kernelopts_from_grub_then_default_kernelopts() -> None:
    conf = "title Fedora\nversion 6.1\nlinux /vmlinuz\noptions $kernelopts quiet\n"
    base = {
        "/boot/grub2/grub.cfg": 'set default_kernelopts="root=/dev/a ro"\nblscfg\n',
        "/boot/loader/entries/f.conf": conf,
        "/boot/vmlinuz": "k",
    }
    entries, _ = parse_grub(MemoryFS(base), "/boot/grub2/grub.cfg")
    assert entries[0].cmdline == "root=/dev/a ro quiet"
    with_env = {**base, "/boot/grub2/grubenv": "# GRUB Environment Block\nkernelopts=root=/dev/b\n"}
    with_env["/boot/grub2/grub.cfg"] = "load_env\n" + base["/boot/grub2/grub.cfg"]
    entries, _ = parse_grub(MemoryFS(with_env), "/boot/grub2/grub.cfg")
    assert entries[0].cmdline == "root=/dev/b quiet"
