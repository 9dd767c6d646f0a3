"""The version the about screen shows is the package metadata's, in a checkout and an image."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import build_initrd
from runtime.version import UNKNOWN, runtime_version

REPO = Path(__file__).resolve().parents[2]


def pyproject_version() -> str:
    with (REPO / "pyproject.toml").open("rb") as f:
        return str(tomllib.load(f)["project"]["version"])


def test_the_build_records_the_pyproject_version() -> None:
    assert build_initrd.package_version() == pyproject_version()


def test_the_image_reads_the_version_the_build_recorded(tmp_path: Path) -> None:
    info = tmp_path / "build-info.json"
    info.write_text(json.dumps({"version": "9.8.7", "source_date_epoch": 1}))
    assert runtime_version(str(info)) == "9.8.7"


def test_a_checkout_reads_the_installed_metadata(tmp_path: Path) -> None:
    assert runtime_version(str(tmp_path / "absent.json")) == pyproject_version()


def test_a_damaged_build_info_never_shows_its_bytes(tmp_path: Path) -> None:
    info = tmp_path / "build-info.json"
    for content in ('{"version": "\\u001b[2J"}', '{"version": 7}', "not json", '{"version": ""}'):
        info.write_text(content)
        assert runtime_version(str(info)) in (pyproject_version(), UNKNOWN)
