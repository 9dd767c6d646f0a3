"""The README's architecture map names every runtime package and module, and every host
tool: a module added without a line there fails here."""

from __future__ import annotations

import re

from tests.conftest import REPO_ROOT


def architecture_map() -> str:
    readme = (REPO_ROOT / "README.md").read_text()
    start = readme.index("## Architecture\n\n```\n")
    return readme[start : readme.index("```\n", start + len("## Architecture\n\n```\n"))]


def test_every_runtime_module_and_package_is_on_the_map() -> None:
    text = architecture_map()
    missing = []
    for path in sorted((REPO_ROOT / "runtime").rglob("*.py")):
        name = path.parent.name if path.name == "__init__.py" else path.stem
        if name != "__main__" and not re.search(rf"(?<![\w]){re.escape(name)}(\.py|/)?\b", text):
            missing.append(str(path.relative_to(REPO_ROOT)))
    assert missing == []


def test_every_host_tool_is_on_the_map() -> None:
    text = architecture_map()
    tools = sorted(p.stem for p in (REPO_ROOT / "tools").glob("*.py") if p.stem != "__init__")
    assert [t for t in tools if not re.search(rf"\b{re.escape(t)}\.py\b", text)] == []
