"""A widget drawn to plain text, without a terminal: for tests and screen dumps."""

from __future__ import annotations

from typing import Any


def render_text(widget: Any, cols: int, rows: int) -> list[str]:
    """The ``rows`` lines of ``cols`` characters the box ``widget`` draws, focused,
    with attributes (colours, reverse video) dropped."""
    canvas = widget.render((cols, rows), focus=True)
    return [line.decode("utf-8", "replace") for line in canvas.text]
