"""ISO images: u-root's iso expectations through an adapter, hand-written cases
for the loopback.cfg hooks (search --file, probe --fs-uuid) and the fallbacks,
and a seeded mutation run."""

from __future__ import annotations

import random
import re

import pytest

from runtime.boot_configs.entry import BootEntry, ConfigSyntaxError, EntryKind, Module
from runtime.boot_configs.fs import DirFS, MemoryFS
from runtime.boot_configs.grub import parse_grub
from runtime.boot_configs.iso import parse_iso
from tests.support.uroot_corpus import Expected, UrootCorpus

CORPUS = UrootCorpus("iso/testdata")
CASES = CORPUS.cases

#: u-root's test harness: the ISO sits at /<case>.iso on a file system with this UUID
UUID = "1234-abcd"

#: Entries we give that u-root leaves out. u-root drops an entry whose command
#: line does not name the ISO when its siblings do; we keep these on purpose.
EXTRA = {
    # memtest needs no ISO parameter: Heads reads it from the mounted ISO
    # (Arch's is offered only if its file exists, which the corpus lacks)
    "nixos-graphical-25.11.8801.36a601196c4e-x86_64-linux": ["Memtest86+"],
    # GRUB shows it; its grub.cfg forgot findiso=, which live-boot needs to
    # find the ISO file, so we add it as its siblings have it
    "debian-live-13.4.0-amd64-gnome": ["Live system (amd64 fail-safe mode)"],
}


# --- u-root expectations ------------------------------------------------------

_REF = re.compile(r"\$\{?[A-Za-z0-9_]+\}?")


def _cmdline_words(expected: str, ours: str, iso: str) -> tuple[list[str], list[str]]:
    """Both command lines as compared. Exactly as given, except where u-root
    left a `${name}` unexpanded (openSUSE's ${isoboot}, Pop!_OS's
    ${extra_kernel_parameters}): those are set under `if [ -n "$iso_path" ]`,
    which GRUB, and we, evaluate true, so the reference becomes the ISO
    parameter in place. u-root, seeing no ISO parameter, appends its own at the
    end instead. For such an expectation only: drop the reference words, and
    require u-root's appended parameter on our side wherever it sits."""
    exp, got = expected.split(" "), ours.split(" ")
    if not any(_REF.fullmatch(w) for w in exp):
        return exp, got
    exp = [w for w in exp if not _REF.fullmatch(w)]
    if exp and iso in exp[-1] and exp[-1] in got:
        got.remove(exp.pop())
    return exp, got


def _matches(case: str, exp: Expected, e: BootEntry) -> bool:
    want, got = _cmdline_words(exp.cmdline, e.cmdline, f"/{case}.iso")
    return (
        exp.name == e.name
        and exp.kind is e.kind
        and exp.kernel == e.kernel
        and exp.initrds == e.initrds
        and want == got
        and exp.modules == e.modules
    )


def _u_root_case(case: str) -> tuple[list[Expected], list[BootEntry]]:
    entries, _ = parse_iso(DirFS(CORPUS.tree(case)), f"/{case}.iso", UUID)
    return CORPUS.expectations(case), entries


def _compare(case: str) -> tuple[int, int, list[str]]:
    """(expected entries matched, expected entries, names of our extra entries);
    each of our entries answers one expectation at most."""
    expected, entries = _u_root_case(case)
    pool = list(entries)
    passed = 0
    for x in expected:
        hit = next((e for e in pool if _matches(case, x, e)), None)
        if hit is not None:
            pool.remove(hit)
            passed += 1
    prefix = f"[{case}.iso] "
    return passed, len(expected), [e.name.removeprefix(prefix) for e in pool]


@pytest.mark.parametrize("case", CASES)
def test_u_root_expectations(case: str) -> None:
    passed, total, extra = _compare(case)
    print(f"{case}: {passed}/{total} u-root expectations match; extra {extra}")
    assert passed == total
    assert extra == EXTRA.get(case, [])


def test_u_root_total() -> None:
    passed, total = CORPUS.tally(lambda case: _compare(case)[:2])
    print(f"u-root iso: {passed}/{total} expected entries match")
    assert passed == total


def test_u_root_config_choice() -> None:
    sources = {}
    for case in CASES:
        entries, _ = parse_iso(DirFS(CORPUS.tree(case)), f"/{case}.iso", UUID)
        sources[case] = {e.source for e in entries}
    # a loopback.cfg wins over grub.cfg; Fedora-built images keep it in grub2
    assert sources["ubuntu-25.10-desktop-amd64"] == {"/boot/grub/loopback.cfg"}
    assert sources["Fedora-Workstation-Live-43-1.6.x86_64"] == {"/boot/grub2/grub.cfg"}
    # no loopback.cfg: the ISO's own grub.cfg
    assert sources["ultramarine-gnome-43-live-anaconda-x86_64"] == {"/boot/grub/grub.cfg"}


# --- hand-written -------------------------------------------------------------

ISO = "/isos/distro-1.0.iso"
ARCH_LOOPBACK = (
    'search --no-floppy --set=dev --file "${iso_path}"\n'
    'probe --set uuid --fs-uuid "${dev}"\n'
    'menuentry "Live ($grub_platform)" --id live {\n'
    ' linux /arch/vmlinuz archisobasedir=arch img_dev=UUID=${uuid} img_loop="${iso_path}"\n'
    " initrd /arch/initramfs.img\n}\n"
    'if [ "$grub_platform" = efi ]; then\n'
    " menuentry 'UEFI only' { linux /efi-only }\nfi\n"
)


def test_name_prefix_seeded_vars_and_probe() -> None:
    fs = MemoryFS({"/boot/grub/loopback.cfg": ARCH_LOOPBACK})
    entries, warnings = parse_iso(fs, ISO, "AB12-CD34")
    (live,) = entries
    assert live.name == "[distro-1.0.iso] Live (pc)"
    assert live.cmdline == f"archisobasedir=arch img_dev=UUID=AB12-CD34 img_loop={ISO}"
    assert live.kernel == "/arch/vmlinuz" and live.initrds == ("/arch/initramfs.img",)
    assert live.is_default and live.rank == 0 and live.source == "/boot/grub/loopback.cfg"
    assert not any("probe" in w.message for w in warnings)
    # an ISO path with a blank stays one parameter, as GRUB quotes it
    entries, _ = parse_iso(fs, "/my isos/d.iso", "AB12-CD34")
    assert entries[0].name == "[d.iso] Live (pc)"
    assert entries[0].cmdline.endswith('"img_loop=/my isos/d.iso"')


def test_probe_forms_and_unanswerable_probe() -> None:
    cfg = (
        "search --file --set=dev /marker\n"  # the caller knows /marker's device
        "probe --set=a --fs-uuid $dev\nprobe -u ($dev) --set b\n"
        "probe --set c --fs-uuid (hd9,1)\nprobe --set d --label $dev\n"
        'if [ -z "$c" ]; then set e=unset; else set e=other; fi\n'
        "menuentry M { linux /v a=$a b=$b c=$c d=$d e=$e }\n"
    )
    fs = MemoryFS({"/g.cfg": cfg, "/v": "x"})
    entries, warnings = parse_grub(
        fs, "/g.cfg", devices={"/marker": "hd1,2"}, fs_uuids={"hd1,2": "U-1"}
    )
    # a probe the caller cannot answer leaves its variable unset and uncertain,
    # so a condition on it is not evaluated
    assert entries[0].cmdline == "a=U-1 b=U-1 c= d= e=other"
    text = [str(w) for w in warnings]
    assert any("/g.cfg:4" in w and "probe" in w for w in text)
    assert any("/g.cfg:5" in w and "probe" in w for w in text)
    assert any("/g.cfg:6" in w and "both branches" in w for w in text)
    # without hooks nothing changes: search is a guess, probe unanswerable
    entries, _ = parse_grub(fs, "/g.cfg")
    assert entries[0].cmdline == "a= b= c= d= e=other"


def test_probe_unanswerable_in_an_iso() -> None:
    fs = MemoryFS(
        {
            "/boot/grub/loopback.cfg": "probe -u (hd7) --set=uuid\n"
            "menuentry A { linux /arch/vmlinuz img_dev=UUID=$uuid img_loop=$iso_path }\n",
        }
    )
    entries, warnings = parse_iso(fs, ISO, UUID)
    # listed as GRUB would boot it, with a warning naming file and line
    assert entries[0].cmdline == f"img_dev=UUID= img_loop={ISO}"
    assert any("probe" in w.message and w.line == 1 for w in warnings)


def test_iso_with_only_isolinux() -> None:
    fs = MemoryFS(
        {
            "/isolinux/isolinux.cfg": "DEFAULT live\nLABEL live\n MENU LABEL Live system\n"
            " KERNEL /live/vmlinuz\n APPEND initrd=/live/initrd.img boot=live components\n"
            "LABEL hdt\n COM32 hdt.c32\n",
            "/live/vmlinuz": "k",
            "/live/initrd.img": "i",
        }
    )
    entries, _ = parse_iso(fs, ISO, UUID)
    assert entries == [
        BootEntry(
            name="[distro-1.0.iso] Live system",
            kind=EntryKind.LINUX,
            kernel="/live/vmlinuz",
            initrds=("/live/initrd.img",),
            cmdline=f"boot=live components findiso={ISO}",
            source="/isolinux/isolinux.cfg",
            line=2,
            is_default=True,
        )
    ]


def test_iso_parameter_families_and_placement() -> None:
    fs = MemoryFS(
        {
            "/boot/grub/grub.cfg": (
                "menuentry U { linux /casper/vmlinuz boot=casper quiet -- splash }\n"
                "menuentry F { linux /images/vmlinuz root=live:CDLABEL=F rd.live.image }\n"
                "menuentry Memtest { linux /boot/memtest.bin }\n"
                "menuentry Xen {\n multiboot2 /xen.gz dom0_mem=1G\n"
                " module2 /vmlinuz inst.stage2=hd:LABEL=Q quiet\n module2 /initrd.img\n}\n"
            ),
        }
    )
    entries, _ = parse_iso(fs, ISO, UUID)
    by = {e.name.split("] ")[1]: e for e in entries}
    # before "--": the kernel hands what follows to init
    assert by["U"].cmdline == f"boot=casper quiet iso-scan/filename={ISO} -- splash"
    assert by["F"].cmdline == f"root=live:CDLABEL=F rd.live.image iso-scan/filename={ISO}"
    assert by["Memtest"].cmdline == ""
    # Xen's first module is the Linux kernel that needs to find the ISO
    assert by["Xen"].cmdline == "dom0_mem=1G"
    assert by["Xen"].modules == (
        Module("/vmlinuz", f"inst.stage2=hd:LABEL=Q quiet iso-scan/filename={ISO}"),
        Module("/initrd.img"),
    )


def test_iso_with_no_config() -> None:
    entries, warnings = parse_iso(MemoryFS({"/README.txt": "hi"}), ISO, UUID)
    assert entries == []
    assert len(warnings) == 1 and "no GRUB" in str(warnings[0])


def test_fallbacks_after_an_empty_or_broken_loopback_cfg() -> None:
    grub = "menuentry G { linux /live/vmlinuz boot=live }\n"
    for loopback in ("menuentry Off { halt }\n", "if true; then\n" * 5000):
        fs = MemoryFS({"/boot/grub/loopback.cfg": loopback, "/boot/grub/grub.cfg": grub})
        entries, warnings = parse_iso(fs, ISO, UUID)
        assert [e.name for e in entries] == ["[distro-1.0.iso] G"]
        assert any(w.source == "/boot/grub/loopback.cfg" for w in warnings)


def test_hostile_paths_stay_inside_the_iso() -> None:
    fs = MemoryFS(
        {
            "/boot/grub/loopback.cfg": "source /../../etc/grub.cfg\n"
            "menuentry Out { linux /../../boot/vmlinuz boot=live }\n"
            "menuentry Initrd { linux /v boot=live\n initrd /live/../../../etc/shadow }\n"
            "menuentry In { linux /live/../live//vmlinuz boot=live }\n",
        }
    )
    entries, warnings = parse_iso(fs, ISO, UUID)
    assert [(e.name, e.kernel) for e in entries] == [("[distro-1.0.iso] In", "/live/vmlinuz")]
    text = [str(w) for w in warnings]
    assert any(":1:" in w and "outside the root" in w for w in text)
    assert sum("outside the boot partition" in w for w in text) == 2
    # syslinux's own resolution refuses it too
    sys_fs = MemoryFS({"/isolinux/isolinux.cfg": "LABEL x\n KERNEL ../../../vmlinuz\n"})
    entries, warnings = parse_iso(sys_fs, ISO, UUID)
    assert entries == [] and any("leaves the root" in str(w) for w in warnings)


# --- robustness ---------------------------------------------------------------

TOKENS = [
    "menuentry",
    "submenu",
    "{",
    "}",
    "if",
    "then",
    "fi",
    "'",
    '"',
    "\\",
    "$",
    "${iso_path}",
    "search --file --set=d",
    "probe --set u --fs-uuid",
    "probe -u",
    "--set=",
    "linux",
    "initrd",
    "multiboot2",
    "module2",
    "source /boot/grub/loopback.cfg",
    "../..",
    "LABEL",
    "KERNEL",
    "APPEND",
    "INCLUDE",
    ";",
    "#",
    "\n",
    "\0",
]


def test_mutated_corpus_only_raises_config_syntax_error() -> None:
    for case, files in CORPUS.mutated_trees(random.Random(0x150), 200, TOKENS, files_per_tree=2):
        try:
            entries, warnings = parse_iso(MemoryFS(files), f"/{case}.iso", UUID)
        except ConfigSyntaxError:
            continue
        assert all(e.name.startswith(f"[{case}.iso] ") for e in entries)
        assert sum(e.is_default for e in entries) == (1 if entries else 0)
        assert all(str(w) for w in warnings)
