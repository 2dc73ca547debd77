"""Result files people look at: PNGs and one HTML grid (a row per sample, a column per picture)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from PIL import Image

from clipsuite.core.html_report import escape, page, table
from clipsuite.core.notices import run_notes
from clipsuite.core.staging import staged_path


def save_png(image: Image.Image, path: Path) -> Path:
    """Write a PNG atomically (no half-written picture after a kill)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with staged_path(path) as temp:
        image.save(temp, format="PNG")
    return path


def grid_html(title: str, rows: Sequence[tuple[str, Mapping[str, str]]], notes: Sequence[str] = ()) -> str:
    """An HTML page: ``rows`` of (label, {column: relative picture path}); the columns of the first row."""
    columns = list(rows[0][1]) if rows else []
    body = [[escape(label), *(f"<img src='{escape(pictures[c])}' alt='{escape(c)}'>" if c in pictures else ""
                              for c in columns)] for label, pictures in rows]
    # the run's notes (random weights ...) first, then this page's own
    return page(title, [table(["sample", *columns], body, cells_are_html=True)], notes=[*run_notes(), *notes],
                style="img{height:256px;image-rendering:pixelated}td,th{text-align:center}")
