"""One way to write the HTML pages a run leaves behind (anomaly reports, search hits, try-on grids, the demo).

Every page carries the run's notes (``clipsuite.core.notices``: random weights ...) at the top, so a
picture made by an untrained model never looks like a result. Text is escaped here; callers pass
plain strings, and HTML fragments only where a function says so. Pictures small enough to be hard
to see (a 64 px heatmap) are shown enlarged with nearest-neighbour scaling, their real size said.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from pathlib import Path

from clipsuite.core.notices import run_notes

__all__ = ["escape", "figure", "page", "table"]

BASE_STYLE = ("body{font-family:sans-serif;margin:1.5em}td,th{padding:4px 10px;text-align:left}"
              "figure{display:inline-block;margin:6px;vertical-align:top}"
              ".note{background:#fff3cd;border:1px solid #e0c060;padding:6px 10px}")
MIN_SHOWN = 256  # pixels: a smaller picture is drawn at this width, pixelated


def escape(text: object) -> str:
    return html.escape(str(text), quote=True)


def page(title: str, body: Iterable[str], notes: Sequence[str] | None = None, style: str = "") -> str:
    """A whole document: ``title`` as its heading, the run's notes (default: ``run_notes()``), then ``body``
    (HTML fragments, e.g. from ``table`` and ``figure``)."""
    said = run_notes() if notes is None else list(notes)
    banner = "".join(f"<p class='note'>{escape(note)}</p>" for note in said)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title>"
            f"<style>{BASE_STYLE}{style}</style></head><body><h1>{escape(title)}</h1>{banner}"
            + "".join(body) + "</body></html>\n")


def table(header: Sequence[str], rows: Iterable[Sequence[object]], cells_are_html: bool = False) -> str:
    """A table of plain values (escaped), or of HTML fragments with ``cells_are_html``."""
    def cell(value: object) -> str:
        return str(value) if cells_are_html else escape(value)

    head = "".join(f"<th>{escape(name)}</th>" for name in header)
    body = "".join("<tr>" + "".join(f"<td>{cell(value)}</td>" for value in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def figure(src: str, caption: str = "", size: tuple[int, int] | None = None, caption_html: str = "") -> str:
    """A picture with its caption. ``size`` (width, height in pixels, when known): a picture narrower than
    ``MIN_SHOWN`` is shown enlarged without smoothing, and the caption gives its real size."""
    style = ""
    if size is not None and size[0] < MIN_SHOWN:
        style = f" style='width:{MIN_SHOWN}px;image-rendering:pixelated'"
        caption = f"{caption} ({size[0]}x{size[1]} px, shown enlarged)" if caption else f"{size[0]}x{size[1]} px"
    text = escape(caption) + caption_html
    image = f"<img src='{escape(src)}' alt='{escape(Path(src).stem)}'{style}>"
    return f"<figure>{image}<figcaption>{text}</figcaption></figure>"
