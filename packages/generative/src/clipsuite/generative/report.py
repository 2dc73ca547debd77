"""Result files people look at: PNGs and one HTML grid (a row per sample, a column per picture)."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from pathlib import Path

from PIL import Image

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
    head = "".join(f"<th>{html.escape(c)}</th>" for c in ["sample", *columns])
    body = []
    for label, pictures in rows:
        cells = "".join(f'<td><img src="{html.escape(pictures[c])}" alt="{html.escape(c)}"></td>'
                        if c in pictures else "<td></td>" for c in columns)
        body.append(f"<tr><td>{html.escape(label)}</td>{cells}</tr>")
    note = "".join(f"<p>{html.escape(n)}</p>" for n in notes)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            "<style>img{height:256px;image-rendering:pixelated}td,th{padding:4px;text-align:center}</style>"
            f"</head><body><h1>{html.escape(title)}</h1>{note}<table><tr>{head}</tr>{''.join(body)}</table>"
            "</body></html>\n")
