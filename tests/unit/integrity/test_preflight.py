"""The rollback preflight on /boot trees: first installation, a missing or
damaged counter file, a missing or broken TPM counter."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.integrity.preflight import CounterMissing, CounterView, counter_id, preflight

LINE = "5d41402abc4b2a76b9719d911017c592" * 2 + "  /tmp/counter-1a2b3c\n"


def fine(index: int) -> CounterView:
    assert index == 0x011A2B3C
    return CounterView(None)


def missing(index: int) -> CounterView:
    raise CounterMissing()


def test_first_installation_has_nothing_to_check(tmp_path: Path) -> None:
    assert preflight(str(tmp_path), missing) == ""


@pytest.mark.parametrize("name", ["kexec.sig", "kexec_default_hashes.txt"])
def test_signed_state_without_the_counter_file(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_text("x")
    assert "kexec_rollback.txt" in preflight(str(tmp_path), missing)


def test_counter_present_and_proper(tmp_path: Path) -> None:
    (tmp_path / "kexec_rollback.txt").write_text(LINE)
    assert preflight(str(tmp_path), fine) == ""


def test_counter_gone_from_the_tpm(tmp_path: Path) -> None:
    (tmp_path / "kexec_rollback.txt").write_text(LINE)
    problem = preflight(str(tmp_path), missing)
    assert "reset or replaced" in problem
    assert "0x" not in problem  # the NV index goes to the log, not the screen


def test_counter_with_a_bad_policy(tmp_path: Path) -> None:
    (tmp_path / "kexec_rollback.txt").write_text(LINE)
    problem = preflight(str(tmp_path), lambda _i: CounterView("it is not a monotonic counter"))
    assert "not a monotonic counter" in problem


def test_unreadable_counter(tmp_path: Path) -> None:
    (tmp_path / "kexec_rollback.txt").write_text(LINE)

    def broken(_index: int) -> CounterView:
        raise ValueError("TPM busy")

    assert "cannot be read. TPM busy." in preflight(str(tmp_path), broken)


def test_damaged_counter_file(tmp_path: Path) -> None:
    (tmp_path / "kexec_rollback.txt").write_bytes(b"\xff\xfe garbage")
    assert "damaged" in preflight(str(tmp_path), fine)


def test_counter_id_parsing() -> None:
    assert counter_id(LINE) == 0x1A2B3C
    assert counter_id("no counter here") is None
