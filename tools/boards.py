"""Board files (etc/boards/<board>/board.toml) as the host tools read them:
the build, the launcher, the provisioning tool, the benchmark, the tests."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BOARDS = REPO / "etc" / "boards"


class UnknownBoard(Exception):
    """No such board; the message lists the known ones."""


def board_file(board: str) -> Path:
    path = BOARDS / board / "board.toml"
    if not path.exists():
        known = sorted(p.name for p in BOARDS.iterdir() if (p / "board.toml").exists())
        raise UnknownBoard(f"no board {board!r}; known boards: {', '.join(known)}")
    return path


def load_board_table(board: str) -> dict[str, Any]:
    """The board file as written (the runtime's own parser checks it in the image)."""
    return tomllib.loads(board_file(board).read_text())
