"""Pictures people look at: contact sheets of retrieval hits and simple line plots, as PNG.

Plain PIL so the core needs no plotting library; domains with richer figures add their own.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw

from clipsuite.core.images import load_image


def contact_sheet(images: Sequence[str | os.PathLike[str] | Image.Image], captions: Sequence[str],
                  out_path: str | os.PathLike[str], tile: int = 128, columns: int = 5, title: str = "") -> Path:
    """A grid of thumbnails with a caption under each, written as PNG."""
    rows = max(1, -(-len(images) // columns))
    header = 22 if title else 0
    sheet = Image.new("RGB", (columns * tile, header + rows * (tile + 18)), "white")
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((4, 4), title, fill="black")
    for i, (item, caption) in enumerate(zip(images, captions)):
        image = item if isinstance(item, Image.Image) else load_image(item)
        thumb = image.convert("RGB").resize((tile - 4, tile - 4))
        x, y = (i % columns) * tile, header + (i // columns) * (tile + 18)
        sheet.paste(thumb, (x + 2, y + 2))
        draw.text((x + 2, y + tile), caption[: tile // 6], fill="black")
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    return out


def line_plot(values: Sequence[float], out_path: str | os.PathLike[str], title: str = "",
              size: tuple[int, int] = (480, 240)) -> Path:
    """A bare line plot (e.g. a training loss curve) with min/max labels, written as PNG."""
    width, height = size
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    margin = 30
    if values:
        low, high = min(values), max(values)
        span = (high - low) or 1.0
        points = [(margin + i * (width - 2 * margin) / max(1, len(values) - 1),
                   height - margin - (v - low) / span * (height - 2 * margin)) for i, v in enumerate(values)]
        if len(points) > 1:
            draw.line(points, fill=(30, 90, 200), width=2)
        draw.text((2, margin - 10), f"{high:.3g}", fill="black")
        draw.text((2, height - margin - 4), f"{low:.3g}", fill="black")
    draw.rectangle([margin, margin, width - margin, height - margin], outline=(160, 160, 160))
    draw.text((margin, 6), title, fill="black")
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    image.save(out)
    return out
