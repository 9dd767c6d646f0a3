"""kexec's recipe (tools/initrd/kexec_build.py) without compiling anything:
Xen's dom0 support is left out and Debian's choices are kept, a Xen library
in DT_NEEDED is refused, and the image takes sbin/kexec from the build and
still reports it as component "kexec"."""

from __future__ import annotations

from pathlib import Path

import pytest

import build_initrd
from tools.initrd import elf, kexec_build
from tools.initrd.lock import DebSourceFile, DebSourcePin, Lock
from tools.initrd.source_build import SourceBuildError


def test_the_recipe_leaves_out_xen_and_keeps_debians_choices() -> None:
    flags = set(kexec_build.CONFIGURE_FLAGS)
    assert "--without-xen" in flags
    # gzip for xen.gz; lzma said explicitly, never taken from the host
    assert {"--with-zlib", "--without-lzma"} <= flags
    assert "--sbindir=/sbin" in flags  # Debian's layout: the image's /sbin/kexec
    pin = DebSourcePin(
        "kexec-tools",
        "1:2.0.25-3+deb12u3",
        (DebSourceFile("kexec-tools_2.0.25-3+deb12u3.dsc", "d" * 64, 10),),
    )
    recipe = kexec_build.recipe(Lock(debs={}, sources={}, deb_sources={"kexec-tools": pin}))
    assert recipe.programs == ("sbin/kexec",)
    assert recipe.autoreconf  # as Debian's dh_autoreconf
    # zlib's headers: the lock's zlib1g is checked against them
    assert recipe.host_packages == ("zlib1g-dev",)


def test_a_xen_library_in_dt_needed_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    needs = {"ok": ["libc.so.6"], "xen": ["libxenctrl.so.4.17", "libc.so.6"]}
    monkeypatch.setattr(elf, "needed", lambda path: (needs[Path(path).name], None))
    assert kexec_build.check_needed({"sbin/kexec": tmp_path / "ok"}) == {
        "sbin/kexec": ["libc.so.6"]
    }
    with pytest.raises(SourceBuildError, match=r"sbin/kexec needs libxenctrl\.so\.4\.17"):
        kexec_build.check_needed({"sbin/kexec": tmp_path / "xen"})


def test_the_image_takes_kexec_from_the_build_and_reports_it_as_kexec() -> None:
    assert set(kexec_build.PROGRAMS) <= set(build_initrd.PROGRAMS)
    origin = "kexec-tools 1:2.0.25-3+deb12u3 (built from source)"
    assert build_initrd.component_of(origin) == "kexec"
