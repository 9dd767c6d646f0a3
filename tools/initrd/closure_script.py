"""Run by the image's own interpreter (not the host's): finds the import
closure of the roots and compiles the chosen sources to sourceless .pyc.

Standalone on purpose: it imports nothing from this repository, since it runs
with the image's sys.path. Input and output are JSON files.
"""

import json
import modulefinder
import py_compile
import sys
from typing import Any


def find(job: dict[str, Any]) -> dict[str, Any]:
    finder = modulefinder.ModuleFinder(path=job["path"], excludes=job["excludes"])
    finder.run_script(job["script"])
    files = sorted({m.__file__ for m in finder.modules.values() if m.__file__})  # type: ignore[attr-defined]
    # C modules built into this interpreter have no file: named, so a build
    # with another interpreter can check it has them too.
    built_in = sorted(n for n in finder.modules if n in sys.builtin_module_names)
    missing, maybe = finder.any_missing_maybe()
    return {
        "files": files,
        "missing": sorted(missing),
        "maybe": sorted(maybe),
        "built_in": built_in,
    }


def compile_all(job: dict[str, Any]) -> dict[str, Any]:
    for source, target in job["compile"]:
        # Unchecked hashes: no source mtime in the header, and no source to check.
        py_compile.compile(
            source,
            cfile=target,
            dfile=job["dfile"][source],
            doraise=True,
            invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
            optimize=job["optimize"],
        )
    return {"compiled": len(job["compile"])}


def main() -> None:
    with open(sys.argv[2]) as f:
        job = json.load(f)
    result = find(job) if sys.argv[1] == "find" else compile_all(job)
    with open(sys.argv[3], "w") as f:
        json.dump(result, f)


main()
