"""Which package may import which, read from the source with `ast` (imports
inside functions count as much as those at the top):

- the domain code (runtime/ outside runtime/state/) never imports the state
  machine; only the UI, which talks to nothing else, and the entry point do;
- the state machine's pure parts (the table, the steps, the session and its
  verdict, what the Platform is asked) import no device code and no UI, so
  every decision is tested with a fake Platform;
- runtime/ never imports tools/ (host only).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUNTIME = ROOT / "runtime"

#: may import runtime.state: the UI renders its views, the entry point starts it
STATE_CLIENTS = ("runtime.ui", "runtime.__main__")
#: runtime.state's pure parts; the rest of runtime.state is the real Platform
#: and the start-up that wires it to the console
PURE_STATE = (
    "runtime.state.machine",
    "runtime.state.keys",
    "runtime.state.view",
    "runtime.state.verdict",
    "runtime.state.session",
    "runtime.state.platform",
    "runtime.state.driver",
    "runtime.state.steps",
)
#: what drives the machine or draws the screen
DEVICE_OR_UI = (
    "runtime.devices",
    "runtime.tpm",
    "runtime.kexec",
    "runtime.measure",
    "runtime.recovery",
    "runtime.ui",
    "tpm2_pytss",
    "urwid",
    "pyudev",
    "subprocess",
)
#: the runtime's own memory figures for the boot log: read from /proc, driving nothing
HARMLESS_DEVICE_MODULES = ("runtime.devices.memory_use",)


def _within(name: str, packages: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, anywhere in it; ``from a import b``
    counts as both a and a.b (b may be a module)."""
    package = _module_name(path)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def _runtime_modules() -> dict[str, set[str]]:
    return {
        _module_name(path): _imports(path)
        for path in sorted(RUNTIME.rglob("*.py"))
        if "__pycache__" not in path.parts
    }


MODULES = _runtime_modules()


def test_the_modules_were_found() -> None:
    assert "runtime.state.machine" in MODULES and "runtime.__main__" in MODULES
    assert all(any(_within(m, (p,)) for m in MODULES) for p in PURE_STATE)


def test_domain_code_never_imports_the_state_machine() -> None:
    offenders = {
        module: sorted(n for n in names if _within(n, ("runtime.state",)))
        for module, names in MODULES.items()
        if not _within(module, ("runtime.state", *STATE_CLIENTS))
    }
    assert {m: n for m, n in offenders.items() if n} == {}


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _within(m, PURE_STATE)))
def test_the_pure_state_parts_import_no_device_code_and_no_ui(module: str) -> None:
    # the rest of runtime.state: the real Platform and the start-up
    state_devices = tuple(
        m
        for m in MODULES
        if _within(m, ("runtime.state",)) and m != "runtime.state" and not _within(m, PURE_STATE)
    )
    bad = sorted(
        n
        for n in MODULES[module]
        if _within(n, (*DEVICE_OR_UI, *state_devices)) and not _within(n, HARMLESS_DEVICE_MODULES)
    )
    assert bad == []


def test_runtime_never_imports_tools() -> None:
    offenders = {
        module: sorted(n for n in names if _within(n, ("tools",)))
        for module, names in MODULES.items()
    }
    assert {m: n for m, n in offenders.items() if n} == {}


#: a module longer than this holds more than one concern: split it
MODULE_LINES_MAX = 500


def test_no_runtime_module_is_over_the_size_limit() -> None:
    sizes = {
        str(path.relative_to(ROOT)): len(path.read_text().splitlines())
        for path in RUNTIME.rglob("*.py")
    }
    assert {p: n for p, n in sizes.items() if n > MODULE_LINES_MAX} == {}
