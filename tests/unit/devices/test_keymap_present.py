"""The main menu says when the layout the settings name is not in the image."""

from __future__ import annotations

from pathlib import Path

from runtime.devices.keymap import keymap_problem


def test_no_layout_asked_is_no_problem(tmp_path: Path) -> None:
    assert keymap_problem(None, str(tmp_path / "none")) == ""
    assert keymap_problem("", str(tmp_path / "none")) == ""


def test_a_compiled_layout_is_no_problem(tmp_path: Path) -> None:
    compiled = tmp_path / "keymap.bmap"
    compiled.write_bytes(b"bkeymap")
    assert keymap_problem("de-latin1", str(compiled)) == ""


def test_a_missing_layout_is_said(tmp_path: Path) -> None:
    said = keymap_problem("de-latin1", str(tmp_path / "none"))
    assert "US layout is in use" in said and "de-latin1" in said
