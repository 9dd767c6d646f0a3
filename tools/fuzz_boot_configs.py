"""Coverage-guided fuzzing of the boot-configuration parsers with atheris.

    .venv/bin/python tools/fuzz_boot_configs.py TARGET [libFuzzer args] [corpus dirs]
    .venv/bin/python tools/fuzz_boot_configs.py grub -runs=5000 \\
        -dict=tests/data/u-root/pkg/boot/grub/testdata/fuzz/grub.dict seeds/

TARGET is one of: grub, grub_lexer, syslinux, bls, grubenv, heads_line, vercmp.
Everything after it goes to libFuzzer (-runs=N, -dict=FILE, -max_len=N,
-artifact_prefix=DIR/, seed corpus directories ...).

The parsers' contract (runtime/boot_configs/entry.py): bad input may raise
ConfigSyntaxError and nothing else, so that is swallowed here and anything
else escapes and crashes the run (libFuzzer saves the input as crash-<sha1>).

Input layout, so that a plain configuration file is a useful seed: the first
byte selects options (where the file lives, which kernels exist), the rest is
UTF-8 text (undecodable bytes replaced, as the file readers do) holding one or
more files separated by FILE_SEP. `seed_bytes()` builds such inputs.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

FILE_SEP = "\f\f"
TARGET_NAMES = ("grub", "grub_lexer", "syslinux", "bls", "grubenv", "heads_line", "vercmp")

Target = Callable[[bytes], None]


def seed_bytes(files: Sequence[str], flags: int = 0) -> bytes:
    """An input whose first byte is `flags` and whose files are `files`."""
    return bytes([flags & 0xFF]) + FILE_SEP.join(files).encode("utf-8", errors="replace")


def _targets() -> dict[str, Target]:
    """Import the parsers (instrumented for coverage) and wrap one per target."""
    import atheris

    repo = str(Path(__file__).resolve().parents[1])
    if repo not in sys.path:
        sys.path.insert(0, repo)
    with atheris.instrument_imports(include=["runtime.boot_configs"]):
        from runtime.boot_configs.bls import parse_bls, vercmp
        from runtime.boot_configs.entry import ConfigSyntaxError
        from runtime.boot_configs.fs import MemoryFS
        from runtime.boot_configs.grub import parse_grub
        from runtime.boot_configs.grub_lexer import tokenize
        from runtime.boot_configs.grubenv import parse_grubenv
        from runtime.boot_configs.heads_line import format_heads_line, parse_heads_line
        from runtime.boot_configs.syslinux import parse_syslinux

    def split(data: bytes) -> tuple[int, list[str]]:
        fdp = atheris.FuzzedDataProvider(data)
        head = fdp.ConsumeBytes(1)
        flags = head[0] if head else 0
        text = fdp.ConsumeBytes(fdp.remaining_bytes()).decode("utf-8", errors="replace")
        return flags, text.split(FILE_SEP)

    kernels = {"/vmlinuz": "", "/initrd.img": "", "/boot/vmlinuz": "", "/boot/initrd.img": ""}

    def config_files(
        data: bytes, mains: tuple[str, ...], extra: tuple[str, ...]
    ) -> tuple[str, dict[str, str]]:
        """The main configuration (one of ``mains``, by the flags) and its
        files: the first text the main one, the next ones ``extra``'s, and the
        kernels when a flag says so."""
        flags, texts = split(data)
        main = mains[flags % len(mains)]
        files = dict(kernels) if flags & 4 else {}
        files.update(zip(extra, texts[1:], strict=False))
        files[main] = texts[0]
        return main, files

    def grub(data: bytes) -> None:
        main, files = config_files(
            data,
            ("/boot/grub/grub.cfg", "/grub2/grub.cfg", "/EFI/BOOT/grub.cfg"),
            ("/boot/grub/loopback.cfg", "/loader/entries/a.conf", "/grub2/grubenv"),
        )
        with contextlib.suppress(ConfigSyntaxError):
            parse_grub(MemoryFS(files), main)

    def grub_lexer(data: bytes) -> None:
        _, texts = split(data)
        tokenize(FILE_SEP.join(texts))

    def syslinux(data: bytes) -> None:
        main, files = config_files(
            data,
            ("/isolinux/isolinux.cfg", "/syslinux.cfg", "/boot/extlinux/extlinux.conf"),
            ("/isolinux/menu.cfg", "/isolinux/txt.cfg", "/isolinux/stdmenu.cfg"),
        )
        with contextlib.suppress(ConfigSyntaxError):
            parse_syslinux(MemoryFS(files), main)

    def bls(data: bytes) -> None:
        flags, texts = split(data)
        files = dict(kernels) if flags & 4 else {}
        # the last part is grubenv, the one before loader.conf, the rest entries
        if len(texts) > 1:
            files["/grub2/grubenv"] = texts.pop()
        if len(texts) > 1:
            files["/loader/loader.conf"] = texts.pop()
        for i, text in enumerate(texts):
            files[f"/loader/entries/e{i}-{flags % 7}.{i}+{flags % 3}.conf"] = text
        with contextlib.suppress(ConfigSyntaxError):
            parse_bls(MemoryFS(files))

    def grubenv(data: bytes) -> None:
        _, texts = split(data)
        with contextlib.suppress(ConfigSyntaxError):
            parse_grubenv(FILE_SEP.join(texts))

    def heads_line(data: bytes) -> None:
        _, texts = split(data)
        for text in texts:
            try:
                parsed = parse_heads_line(text)
            except ConfigSyntaxError:
                continue
            printed = format_heads_line(parsed)
            if printed != text:
                raise AssertionError(f"{text!r} prints back as {printed!r}")

    def vercmp_target(data: bytes) -> None:
        _, texts = split(data)
        a, b = [*texts, "", ""][:2]
        ab, ba = vercmp(a, b), vercmp(b, a)
        if ab not in (-1, 0, 1) or ab != -ba or vercmp(a, a) != 0:
            raise AssertionError(f"vercmp({a!r}, {b!r}) = {ab} but reversed {ba}")

    return {
        "grub": grub,
        "grub_lexer": grub_lexer,
        "syslinux": syslinux,
        "bls": bls,
        "grubenv": grubenv,
        "heads_line": heads_line,
        "vercmp": vercmp_target,
    }


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[1] not in TARGET_NAMES:
        print(f"usage: {argv[0]} {{{','.join(TARGET_NAMES)}}} [libFuzzer args]", file=sys.stderr)
        return 2
    import atheris

    target = _targets()[argv[1]]
    atheris.Setup([argv[0], *argv[2:]], target)
    atheris.Fuzz()  # runs until -runs is used up (then exits 0) or a crash
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
