"""u-root's boot-loader test corpus (tests/data/u-root/pkg/boot): where its
trees are, its JSON expectations in this project's terms, and mutated copies
of its configurations for robustness runs.

A testdata directory holds, per case, <case>.json (the entries u-root's
parser expects) beside <case>/, a fake device holding the configurations but
no kernels. u-root names a file by URL (file:///testdata_new/<device>/<path>,
file://testdata/<case>/<path>) or by a "name" relative to its Go package
(testdata/<case>/<path>); an Expected names it from the device's root, as a
BootEntry does. Each format's tests keep their own rules for comparing.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from runtime.boot_configs.entry import EntryKind, Module
from tests.config_mutation import mutate

UROOT_BOOT = Path(__file__).resolve().parents[1] / "data" / "u-root" / "pkg" / "boot"

_KINDS = {"linux": EntryKind.LINUX, "multiboot": EntryKind.MULTIBOOT}
#: files of a tree a mutation run may change (the rest stay as they are)
_MUTABLE = (".cfg", ".conf", "grubenv")
#: larger files are no configuration; they only slow a mutation run
_MAX_CONFIG_BYTES = 200_000


@dataclass(frozen=True)
class Expected:
    """One entry u-root's parser gives, as u-root writes it, but for file names."""

    name: str
    kind: EntryKind
    kernel: str
    initrds: tuple[str, ...]
    cmdline: str
    modules: tuple[Module, ...]  # a module's cmdline without u-root's leading file name


def _ref(obj: dict[str, Any]) -> str:
    return str(obj.get("url") or obj.get("name"))


@dataclass(frozen=True)
class UrootCorpus:
    """One testdata directory, e.g. UrootCorpus("grub/testdata_new")."""

    subdir: str

    @property
    def root(self) -> Path:
        return UROOT_BOOT / self.subdir

    @cached_property
    def cases(self) -> list[str]:
        """Case names (with a JSON expectation), sorted; a missing corpus fails loudly."""
        if not self.root.is_dir():
            raise FileNotFoundError(f"test data missing: {self.root} (git checkout -- tests/data)")
        return sorted(p.stem for p in self.root.glob("*.json"))

    def tree(self, case: str) -> Path:
        """The fake device of a case: the directory standing for its root."""
        return self.root / case

    def raw(self, case: str) -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = json.loads((self.root / f"{case}.json").read_text())
        return data

    def file(self, case: str, ref: str, *, any_device: bool = False) -> str:
        """A u-root file reference as a path from its device's root. Only a
        GRUB `search` may land on another device of the case (any_device)."""
        rel = ref.removeprefix("file://").lstrip("/").removeprefix(f"{self.root.name}/")
        device, _, path = rel.partition("/")
        assert any_device or device == case, ref
        return "/" + path

    def expected(self, case: str, raw: dict[str, Any], *, any_device: bool = False) -> Expected:
        def path(obj: dict[str, Any]) -> str:
            return self.file(case, _ref(obj), any_device=any_device)

        # an initrd URL may be a comma list of URLs
        initrds = _ref(raw["initrd"]).split(",") if "initrd" in raw else []
        return Expected(
            name=str(raw["name"]),
            kind=_KINDS[raw["image_type"]],
            kernel=path(raw["kernel"]),
            initrds=tuple(self.file(case, u, any_device=any_device) for u in initrds),
            cmdline=str(raw.get("cmdline", "")),
            modules=tuple(
                Module(path(m), " ".join(str(m.get("cmdline", "")).split()[1:]))
                for m in raw.get("modules", [])
            ),
        )

    def expectations(self, case: str, *, any_device: bool = False) -> list[Expected]:
        return [self.expected(case, r, any_device=any_device) for r in self.raw(case)]

    def tally(self, count: Callable[[str], tuple[int, int]]) -> tuple[int, int]:
        """(expectations matched, expectations) summed over every case, given
        count(case) for one."""
        matched = total = 0
        for case in self.cases:
            m, t = count(case)
            matched += m
            total += t
        return matched, total

    def config_texts(self, case: str, suffixes: Sequence[str] = (".cfg",)) -> dict[str, str]:
        """A case's configuration files (those with one of suffixes; "" for
        none, such as grubenv), path from the root -> text."""
        base = self.tree(case)
        return {
            "/" + str(p.relative_to(base)): p.read_text(errors="replace")
            for p in base.rglob("*")
            if p.is_file() and p.suffix in suffixes and p.stat().st_size < _MAX_CONFIG_BYTES
        }

    def mutated_trees(
        self,
        rng: random.Random,
        rounds: int,
        tokens: Sequence[str],
        *,
        files_per_tree: int,
        suffixes: Sequence[str] = (".cfg",),
    ) -> Iterator[tuple[str, dict[str, str]]]:
        """rounds times: a case picked by rng, and its files with up to
        files_per_tree configurations mutated with the format's tokens."""
        trees = {case: self.config_texts(case, suffixes) for case in self.cases}
        for _ in range(rounds):
            case = rng.choice(self.cases)
            files = dict(trees[case])
            mutable = sorted(p for p in files if p.endswith(_MUTABLE))
            for path in rng.sample(mutable, k=min(files_per_tree, len(mutable))):
                files[path] = mutate(rng, files[path], tokens)
            yield case, files
