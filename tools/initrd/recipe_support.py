"""What the recipe modules (cpython_build, gnupg_build, kexec_build,
busybox_build) share: the check that the image's libraries are not older
than the headers compiled against, the refusal of a library a recipe leaves
out, and their command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from tools.initrd import elf
from tools.initrd.cache import FetchError, default_cache_dir
from tools.initrd.lock import Lock, LockError, load_lock, version_holds
from tools.initrd.source_build import SourceBuildError, is_elf


def check_libraries_in_lock(
    lock: Lock, libraries: Mapping[str, str], host_versions: Mapping[str, str], what: str
) -> None:
    """``libraries``: host -dev package -> the Debian library package the image
    runs with. Each image library must be at least the version compiled
    against: an older one may lack a symbol the headers promised."""
    for dev, runtime_package in libraries.items():
        image_version = lock.deb(runtime_package).version
        if not version_holds(image_version, "ge", host_versions[dev]):
            raise SourceBuildError(
                f"{what} is compiled against the host's {dev} {host_versions[dev]}, newer "
                f"than the image's {runtime_package} {image_version}; refresh the lock "
                "(.venv/bin/python -m tools.initrd.lock refresh) or update the host"
            )


def refuse_libraries(
    programs: Mapping[str, Path], forbidden: Sequence[str]
) -> dict[str, list[str]]:
    """Each program's DT_NEEDED; none may name a library the recipe leaves out."""
    needed: dict[str, list[str]] = {}
    for image_path, built in programs.items():
        names, _ = elf.needed(str(built))
        bad = [n for n in names if n.startswith(tuple(forbidden))]
        if bad:
            raise SourceBuildError(
                f"the built {image_path} needs {', '.join(bad)}: a configure flag that "
                f"should leave it out did not (see {built.parent})"
            )
        needed[image_path] = names
    return needed


def command_line(
    argv: list[str] | None, name: str, build: Callable[[Lock, Path], Mapping[str, Path]]
) -> int:
    """`python -m tools.initrd.<name>_build`: build (or take from the cache) and
    list each program: image path, size, built file, DT_NEEDED."""
    parser = argparse.ArgumentParser(
        prog=f"python -m tools.initrd.{name}_build",
        description=f"Build {name} from the pinned Debian source (or take it from the cache).",
    )
    parser.add_argument("--cache", type=Path, default=default_cache_dir())
    args = parser.parse_args(argv)
    try:
        programs = build(load_lock(), args.cache)
    except (LockError, FetchError, SourceBuildError) as err:
        print(f"{name}-build: {err}", file=sys.stderr)
        return 1
    for image_path, built in programs.items():
        names = " ".join(elf.needed(str(built))[0]) if is_elf(built) else ""
        print(f"{image_path}\t{built.stat().st_size}\t{built}\t{names}")
    return 0
