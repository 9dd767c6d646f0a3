"""The freeze's pure parts (tools/initrd/python_freeze.py): image paths to
module names, the closure split into frozen modules and extension files, the
check that every C module the closure needs is built in, and the table."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools.initrd.python_freeze import (
    FreezeError,
    check_built_in,
    extension_name,
    module_name,
    split_closure,
    table_c,
)
from tools.initrd.python_tree import Closure, PyFile


def _file(image: str) -> PyFile:
    return PyFile(image, Path("/host") / image, "test")


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("usr/lib/python3.11/os.py", ("os", False)),
        ("usr/lib/python3.11/json/__init__.py", ("json", True)),
        ("usr/lib/python3.11/json/decoder.py", ("json.decoder", False)),
        (
            "usr/lib/python3/dist-packages/runtime/state/machine.py",
            ("runtime.state.machine", False),
        ),
        ("usr/lib/python3/dist-packages/tpm2_pytss/__init__.py", ("tpm2_pytss", True)),
        # not modules: another directory, not .py, not identifiers
        ("usr/share/doc/x.py", None),
        ("usr/lib/python3.11/lib-dynload/_ctypes.cpython-311-x86_64-linux-gnu.so", None),
        ("usr/lib/python3/dist-packages/some-thing/x.py", None),
        ("usr/lib/python3/dist-packages/__init__.py", None),
    ],
)
def test_module_name(image: str, expected: tuple[str, bool] | None) -> None:
    assert module_name(image) == expected


def test_extension_name() -> None:
    assert (
        extension_name("usr/lib/python3.11/lib-dynload/_json.cpython-311-x86_64-linux-gnu.so")
        == "_json"
    )
    assert (
        extension_name(
            "usr/lib/python3/dist-packages/urwid/str_util.cpython-311-x86_64-linux-gnu.so"
        )
        == "urwid.str_util"
    )
    assert (
        extension_name("usr/lib/python3/dist-packages/tpm2_pytss/_libtpm2_pytss.abi3.so")
        == "tpm2_pytss._libtpm2_pytss"
    )
    assert extension_name("usr/lib/x86_64-linux-gnu/libc.so") is None
    assert extension_name("usr/lib/python3.11/os.py") is None  # fmt: skip


def test_the_closure_splits_into_modules_and_third_party_extension_files() -> None:
    cffi = "usr/lib/python3/dist-packages/_cffi_backend.cpython-311-x86_64-linux-gnu.so"
    files = [
        _file("usr/lib/python3.11/os.py"),
        _file("usr/lib/python3.11/lib-dynload/_json.cpython-311-x86_64-linux-gnu.so"),
        _file(cffi),
        _file("usr/lib/python3/dist-packages/urwid/__init__.py"),
        _file("usr/lib/python3/dist-packages/tpm2_pytss/py.typed"),
    ]
    modules, extensions = split_closure(files)
    assert [(m.name, m.package) for m in modules] == [("os", False), ("urwid", True)]
    # CPython's own C modules are built in, never files
    assert extensions == {"_cffi_backend": "/" + cffi}


def test_a_module_found_twice_is_refused_not_picked() -> None:
    files = [
        _file("usr/lib/python3.11/typing_extensions.py"),
        _file("usr/lib/python3/dist-packages/typing_extensions.py"),
    ]
    with pytest.raises(FreezeError, match="two files are module typing_extensions"):
        split_closure(files)


def test_every_c_module_the_closure_needs_must_be_built_in() -> None:
    closure = Closure(
        files=[
            _file("usr/lib/python3.11/lib-dynload/_json.cpython-311-x86_64-linux-gnu.so"),
            _file("usr/lib/python3.11/lib-dynload/readline.cpython-311-x86_64-linux-gnu.so"),
        ],
        missing=[],
        built_in=["_sha256", "syslog"],  # built into Debian's interpreter
    )
    check_built_in(closure, ["_json", "_sha256", "syslog"])  # readline: never needed
    with pytest.raises(FreezeError, match="needs the C modules syslog, which"):
        check_built_in(closure, ["_json", "_sha256"])
    with pytest.raises(FreezeError, match="needs the C modules _json, which"):
        check_built_in(closure, ["_sha256", "syslog"])


def test_the_table_includes_each_module_s_bytes_by_index() -> None:
    text = table_c([("a", 10, False), ("b.c", 20, True)])
    assert '.incbin \\"modules/0.bin\\"' in text and '.incbin \\"modules/1.bin\\"' in text
    assert '{"a", heads_frozen_0, 10, 0, NULL},' in text
    assert '{"b.c", heads_frozen_1, 20, 1, NULL},' in text
    assert text.rstrip().endswith("{NULL, NULL, 0, 0, NULL},\n};".rstrip())
