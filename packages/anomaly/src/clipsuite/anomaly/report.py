"""Per-image scores (CSV + JSON), heatmap overlays (PNG) and a small HTML page showing them.

Everything is staged in a hidden temporary folder next to the output (``clipsuite.core.staging``) and
moved into place only when complete, so an error part-way leaves no partial report; other files in the
output folder (a dataset written beside the report) are left alone. Maps share one colour scale across
the run (min..max over all maps, or a fixed range) so heat is comparable between images. Images left
out as unreadable are listed in all three files (CSV rows with an empty score and the reason).
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TypedDict

import numpy as np
from PIL import Image

from clipsuite.anomaly.methods.base import AnomalyResult, resize_map
from clipsuite.core.html_report import figure, page
from clipsuite.core.images import load_image
from clipsuite.core.skipping import Skipped
from clipsuite.core.staging import staged_folder
from clipsuite.core.tabular import format_table

# A compact "jet"-like ramp: blue -> cyan -> yellow -> red.
_STOPS = np.array([[0, 0, 128], [0, 0, 255], [0, 255, 255], [255, 255, 0], [255, 0, 0], [128, 0, 0]], np.float32)


def colorize(values: np.ndarray) -> np.ndarray:
    """``[H, W]`` in 0..1 -> ``[H, W, 3]`` uint8."""
    position = np.clip(values, 0, 1) * (len(_STOPS) - 1)
    low = np.floor(position).astype(int).clip(0, len(_STOPS) - 2)
    frac = (position - low)[..., None]
    return (_STOPS[low] * (1 - frac) + _STOPS[low + 1] * frac).astype(np.uint8)


def overlay(image: Image.Image, heat: np.ndarray, alpha: float = 0.5) -> Image.Image:
    base = np.asarray(image.convert("RGB"), dtype=np.float32)
    mixed = base * (1 - alpha) + colorize(heat).astype(np.float32) * alpha
    return Image.fromarray(mixed.clip(0, 255).astype(np.uint8))


class ReportRow(TypedDict):
    """One scored image of the report (``scores.csv`` / ``scores.json``)."""

    image: str
    name: str
    score: float
    anomalous: bool | None
    heatmap: str


def _page(title: str, rows: list[ReportRow], threshold: float | None,
          skipped: Sequence[Skipped] = (), sizes: Sequence[tuple[int, int]] = ()) -> str:
    """The report page; ``sizes``: each heatmap's (width, height), so small ones are shown enlarged."""
    cells = []
    for i, row in enumerate(rows):
        flag = ""
        if row.get("anomalous") is not None:
            flag = " <b style='color:#c00'>anomalous</b>" if row["anomalous"] else " normal"
        cells.append(figure(str(row["heatmap"]), str(row["name"]), sizes[i] if i < len(sizes) else None,
                            caption_html=f"<br>score {float(row['score']):.4f}{flag}"))
    note = f"<p>threshold {threshold:.4f} (anomalous if score &ge; threshold)</p>" if threshold is not None else ""
    if skipped:
        note += (f"<p>skipped {len(skipped)} unreadable image(s):</p><ul>"
                 + "".join(f"<li>{html.escape(s.reason)}</li>" for s in skipped) + "</ul>")
    return page(title, [note, *cells])


def write_report(out_dir: str | os.PathLike[str], paths: Sequence[Path], result: AnomalyResult,
                 threshold: float | None = None, title: str = "clipsuite anomaly",
                 value_range: tuple[float, float] | None = None, extra: dict[str, object] | None = None,
                 skipped: Sequence[Skipped] = ()) -> Path:
    """Write ``scores.csv``, ``scores.json``, ``heatmaps/*.png`` and ``index.html``; returns the page.
    ``paths`` are the scored images (``result`` in order); ``skipped`` the unreadable ones left out."""
    out = Path(out_dir)
    maps = result.maps.float()
    low, high = value_range or (float(maps.min()), float(maps.max()))
    with staged_folder(out, merge=True, command="anomaly detect") as stage:
        (stage / "heatmaps").mkdir()
        rows: list[ReportRow] = []
        sizes: list[tuple[int, int]] = []
        for i, path in enumerate(paths):
            image = load_image(path)
            sizes.append((image.width, image.height))
            heat = resize_map(maps[i], (image.height, image.width)).numpy()
            heat = (heat - low) / (high - low) if high > low else np.zeros_like(heat)
            name = f"{i:04d}_{Path(path).stem}.png"
            overlay(image, heat).save(stage / "heatmaps" / name)
            score = float(result.scores[i])
            rows.append({"image": str(path), "name": Path(path).name, "score": score,
                         "anomalous": None if threshold is None else bool(score >= threshold),
                         "heatmap": f"heatmaps/{name}"})
        failed: list[Mapping[str, str]] = [{"image": s.path, "error": s.reason} for s in skipped]  # rows' columns
        (stage / "scores.csv").write_text(format_table(rows + failed, ["image", "score", "anomalous", "heatmap",
                                                                       "error"]), encoding="utf-8")
        summary = {"threshold": threshold, "map_range": [low, high], **(extra or {}), "images": rows,
                   "skipped": [s.as_dict() for s in skipped]}
        (stage / "scores.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        (stage / "index.html").write_text(_page(title, rows, threshold, skipped, sizes), encoding="utf-8")
    return out / "index.html"
