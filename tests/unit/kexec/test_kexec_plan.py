"""kexec plans for Linux, memtest and Xen entries, and the paths they refuse."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runtime.boot_configs.entry import BootEntry, EntryKind, Module
from runtime.kexec.errors import KexecError
from runtime.kexec.load import write_initrd
from runtime.kexec.plan import UNSAFE_ADD, XEN_EXTRA_ARGS, plan_for


@pytest.fixture
def boot(tmp_path: Path) -> Path:
    root = tmp_path / "boot"
    (root / "grub").mkdir(parents=True)
    files = {
        "vmlinuz": b"kernel",
        "initrd.img": b"main-initrd",
        "ucode.img": b"ucode",
        "memtest86+.elf": b"memtest",
        "xen-4.17.gz": b"xen",
        "vmlinuz-dom0": b"dom0",
        "initramfs-dom0.img": b"dom0-initrd",
        "my file": b"spaced",
    }
    for name, data in files.items():
        (root / name).write_bytes(data)
    return root


def _out(tmp_path: Path) -> str:
    return str(tmp_path / "combined.cpio")


def linux(*initrds: str, cmdline: str = "root=/dev/sda1 ro quiet") -> BootEntry:
    return BootEntry("Debian", EntryKind.LINUX, "/vmlinuz", initrds=initrds, cmdline=cmdline)


def test_linux_without_initrd(boot: Path, tmp_path: Path) -> None:
    plan = plan_for(linux(), str(boot), initrd_out=_out(tmp_path))
    assert plan.args == ("-l", f"{boot}/vmlinuz", "--append=root=/dev/sda1 ro quiet")
    assert plan.reads == (f"{boot}/vmlinuz",)
    assert plan.initrd_parts == () and plan.initrd_out is None
    assert write_initrd(plan) == 0 and not os.path.exists(_out(tmp_path))


def test_linux_with_one_initrd_passes_it_directly(boot: Path, tmp_path: Path) -> None:
    plan = plan_for(
        linux("/initrd.img"),
        str(boot),
        add="debug",
        remove="quiet",
        board_add="iommu=pt",
        initrd_out=_out(tmp_path),
    )
    assert plan.args == (
        "-l",
        f"{boot}/vmlinuz",
        f"--initrd={boot}/initrd.img",
        "--append=debug root=/dev/sda1 ro iommu=pt",
    )
    assert plan.cmdline == "debug root=/dev/sda1 ro iommu=pt"
    assert plan.initrd_parts == ()


def test_linux_with_two_initrds_concatenates_them(boot: Path, tmp_path: Path) -> None:
    out = _out(tmp_path)
    plan = plan_for(linux("/ucode.img", "/initrd.img"), str(boot), initrd_out=out)
    assert plan.args == (
        "-l",
        f"{boot}/vmlinuz",
        f"--initrd={out}",
        "--append=root=/dev/sda1 ro quiet",
    )
    assert plan.initrd_parts == (f"{boot}/ucode.img", f"{boot}/initrd.img")
    assert plan.reads == (f"{boot}/vmlinuz", *plan.initrd_parts)
    # each part padded with zeros to 4 bytes, as GRUB does
    assert write_initrd(plan) == 20
    assert Path(out).read_bytes() == b"ucode\0\0\0" + b"main-initrd\0"
    assert os.stat(out).st_mode & 0o777 == 0o600


def test_combined_initrd_replaces_an_old_file_or_link(boot: Path, tmp_path: Path) -> None:
    out = Path(_out(tmp_path))
    target = tmp_path / "victim"
    target.write_bytes(b"keep")
    out.symlink_to(target)
    plan = plan_for(linux("/ucode.img", "/initrd.img"), str(boot), initrd_out=str(out))
    write_initrd(plan)
    assert target.read_bytes() == b"keep" and not out.is_symlink()


def test_combined_initrd_may_not_be_one_of_its_parts(boot: Path) -> None:
    with pytest.raises(KexecError, match="overwrite"):
        plan_for(linux("/ucode.img", "/initrd.img"), str(boot), initrd_out=f"{boot}/initrd.img")


def test_memtest_gets_no_append(boot: Path, tmp_path: Path) -> None:
    entry = BootEntry("Memtest86+", EntryKind.ELF, "/memtest86+.elf")
    plan = plan_for(entry, str(boot), board_add="iommu=pt", initrd_out=_out(tmp_path))
    assert plan.args == ("-l", f"{boot}/memtest86+.elf")
    assert plan.cmdline is None and plan.warnings == ()


def test_memtest_with_add_gets_append(boot: Path, tmp_path: Path) -> None:
    entry = BootEntry("Memtest86+", EntryKind.ELF, "/memtest86+.elf")
    plan = plan_for(entry, str(boot), add="console=ttyS0", initrd_out=_out(tmp_path))
    assert plan.args == ("-l", f"{boot}/memtest86+.elf", "--append=console=ttyS0")


def xen_entry(kernel: str = "/xen-4.17.gz") -> BootEntry:
    return BootEntry(
        "Qubes",
        EntryKind.MULTIBOOT,
        kernel,
        cmdline="console=none dom0_mem=min:1024M",
        modules=(
            Module("/vmlinuz-dom0", "root=/dev/vg/root rhgb quiet ---"),
            Module("/initramfs-dom0.img"),
        ),
    )


def test_xen_argument_list(boot: Path, tmp_path: Path) -> None:
    plan = plan_for(
        xen_entry(),
        str(boot),
        add="rd.luks.key=/secret.key",
        remove="rhgb",
        board_add="iommu=pt",
        initrd_out=_out(tmp_path),
    )
    assert plan.args == (
        "-l",
        f"{boot}/xen-4.17.gz",
        f"--command-line=console=none dom0_mem=min:1024M {XEN_EXTRA_ARGS}",
        f"--module={boot}/vmlinuz-dom0 rd.luks.key=/secret.key root=/dev/vg/root quiet iommu=pt",
        f"--module={boot}/initramfs-dom0.img",
    )
    assert XEN_EXTRA_ARGS == "no-real-mode reboot=no vga=current"
    assert plan.reads == (
        f"{boot}/xen-4.17.gz",
        f"{boot}/vmlinuz-dom0",
        f"{boot}/initramfs-dom0.img",
    )
    assert plan.initrd_parts == ()


def test_plain_multiboot_gets_no_xen_arguments(boot: Path, tmp_path: Path) -> None:
    (boot / "kernel.mb").write_bytes(b"mb")
    plan = plan_for(xen_entry("/kernel.mb"), str(boot), initrd_out=_out(tmp_path))
    assert plan.args[2] == "--command-line=console=none dom0_mem=min:1024M"
    forced = plan_for(xen_entry("/kernel.mb"), str(boot), xen=True, initrd_out=_out(tmp_path))
    assert forced.args[2].endswith(XEN_EXTRA_ARGS)
    off = plan_for(xen_entry(), str(boot), xen=False, initrd_out=_out(tmp_path))
    assert not off.args[2].endswith(XEN_EXTRA_ARGS)


def test_multiboot_module_path_with_a_blank_is_refused(boot: Path, tmp_path: Path) -> None:
    entry = BootEntry("x", EntryKind.MULTIBOOT, "/xen-4.17.gz", modules=(Module("/my file"),))
    with pytest.raises(KexecError, match="blank"):
        plan_for(entry, str(boot), initrd_out=_out(tmp_path))


@pytest.mark.parametrize(
    ("kernel", "message"),
    [
        ("/../etc/passwd", "outside"),
        ("/grub/../../outside", "outside"),
        ("vmlinuz", "must start with '/'"),
        ("", "empty"),
        ("/vmlinuz\0", "NUL"),
        ("/missing", "does not exist"),
        ("/grub", "does not exist"),
        ("/", "does not exist"),
    ],
)
def test_bad_kernel_paths_are_refused(
    boot: Path, tmp_path: Path, kernel: str, message: str
) -> None:
    (tmp_path / "outside").write_bytes(b"x")
    entry = BootEntry("bad", EntryKind.LINUX, kernel)
    with pytest.raises(KexecError, match=message):
        plan_for(entry, str(boot), initrd_out=_out(tmp_path))


def test_dotted_path_inside_boot_is_accepted(boot: Path, tmp_path: Path) -> None:
    entry = BootEntry("ok", EntryKind.LINUX, "/grub/../vmlinuz")
    plan = plan_for(entry, str(boot) + "/", initrd_out=_out(tmp_path))
    assert plan.args == ("-l", f"{boot}/vmlinuz")


def test_link_leaving_boot_is_refused(boot: Path, tmp_path: Path) -> None:
    (tmp_path / "outside").write_bytes(b"x")
    (boot / "link").symlink_to(tmp_path / "outside")
    with pytest.raises(KexecError, match="link"):
        plan_for(linux("/link"), str(boot), initrd_out=_out(tmp_path))


def test_missing_initrd_and_module_are_refused(boot: Path, tmp_path: Path) -> None:
    with pytest.raises(KexecError, match=r"initrd /gone\.img does not exist"):
        plan_for(linux("/gone.img"), str(boot), initrd_out=_out(tmp_path))
    entry = BootEntry("x", EntryKind.MULTIBOOT, "/xen-4.17.gz", modules=(Module("/gone"),))
    with pytest.raises(KexecError, match="module /gone does not exist"):
        plan_for(entry, str(boot), initrd_out=_out(tmp_path))
    escaping = BootEntry("x", EntryKind.MULTIBOOT, "/xen-4.17.gz", modules=(Module("/../outside"),))
    with pytest.raises(KexecError, match="outside"):
        plan_for(escaping, str(boot), initrd_out=_out(tmp_path))


def test_relative_boot_dir_or_output_is_refused(boot: Path, tmp_path: Path) -> None:
    with pytest.raises(KexecError, match="absolute"):
        plan_for(linux(), "boot", initrd_out=_out(tmp_path))
    with pytest.raises(KexecError, match="absolute"):
        plan_for(linux(), str(boot), initrd_out="combined.cpio")


def test_kexec_error_is_a_value_error() -> None:
    assert issubclass(KexecError, ValueError)


def test_unsafe_adds_red_console_and_drops_splash(boot: Path, tmp_path: Path) -> None:
    plan = plan_for(
        linux(cmdline="root=x quiet splash ro"),
        str(boot),
        add="debug",
        unsafe=True,
        initrd_out=_out(tmp_path),
    )
    assert UNSAFE_ADD.split(",") == ["vt.default_red=0xff"] + ["0xff"] * 13
    assert plan.cmdline == f"debug {UNSAFE_ADD} root=x ro"
    xen = plan_for(xen_entry(), str(boot), unsafe=True, initrd_out=_out(tmp_path))
    assert xen.args[3] == f"--module={boot}/vmlinuz-dom0 {UNSAFE_ADD} root=/dev/vg/root rhgb"


def test_long_cmdline_is_warned_about(boot: Path, tmp_path: Path) -> None:
    plan = plan_for(linux(cmdline="x" * 3000), str(boot), initrd_out=_out(tmp_path))
    assert len(plan.warnings) == 1 and "3000 bytes" in plan.warnings[0]


def test_the_settings_add_and_remove_words(boot: Path, tmp_path: Path) -> None:
    """CONFIG_BOOT_KERNEL_ADD / CONFIG_BOOT_KERNEL_REMOVE reach the command line."""
    from runtime.config import Settings
    from runtime.kexec.handover import settings_cmdline_words

    settings = Settings(
        {"CONFIG_BOOT_KERNEL_ADD": "console=ttyS0  iommu=pt", "CONFIG_BOOT_KERNEL_REMOVE": "quiet"}
    )
    board_add, remove = settings_cmdline_words(settings)
    plan = plan_for(
        linux(), str(boot), board_add=board_add, remove=remove, initrd_out=_out(tmp_path)
    )
    assert plan.cmdline is not None
    words = plan.cmdline.split()
    assert "quiet" not in words and {"console=ttyS0", "iommu=pt"} <= set(words)
    assert settings_cmdline_words(None) == ("", "")
