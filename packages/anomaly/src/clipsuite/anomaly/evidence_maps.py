"""Pictures for "Evidence that it learns": anomaly maps of held-out images, one method per column.

One PNG per held-out category: a row per chosen test image (the first good one and the first of each
defect type), columns image | ground truth | one heat overlay per method (e.g. WinCLIP zero-shot,
AnomalyCLIP with untrained prompts, AnomalyCLIP trained). Each method column has one colour scale
over its rows, from the median of that method's values on the shown images (a typical, normal pixel:
most pixels are) to their maximum, so a good image reads as cold next to a defective one, one stray
low pixel cannot wash a column out, and the columns compare where the heat is, not absolute values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw

from clipsuite.anomaly.data import Category, Sample, load_mask
from clipsuite.anomaly.pipeline import Detector
from clipsuite.anomaly.report import overlay
from clipsuite.core.images import load_image
from clipsuite.core.models import ClipModel

TILE = 96      # pixels per cell: the 64 px synthetic images upscaled, small PNGs for the docs
HEADER = 16


@dataclass
class CategoryMaps:
    """Chosen samples of one category and, per method, their maps scaled to 0..1 (``[N, S, S]``)."""

    category: str
    samples: list[Sample]
    maps: dict[str, np.ndarray]


def pick_samples(category: Category) -> list[int]:
    """Indices into ``category.test``: the first good image, then the first image of each defect type."""
    chosen, seen = [], set()
    for i, sample in enumerate(category.test):
        if sample.defect not in seen:
            seen.add(sample.defect)
            chosen.append(i)
    return sorted(chosen, key=lambda i: (category.test[i].label, category.test[i].defect))


def category_maps(clip: ClipModel, methods: Mapping[str, Any], category: Category) -> CategoryMaps:
    """Run every method on the whole category (as the evaluation does) and keep the chosen images'
    maps, each method scaled from its median to its maximum over those images (clipped to 0..1)."""
    indices = pick_samples(category)
    maps = {}
    for name, method in methods.items():
        result, _ = Detector(clip, method).run_category(category)
        chosen = result.maps[torch.tensor(indices)].float().numpy()
        low, high = float(np.median(chosen)), float(chosen.max())
        maps[name] = np.clip((chosen - low) / (high - low), 0, 1) if high > low else np.zeros_like(chosen)
    return CategoryMaps(category.name, [category.test[i] for i in indices], maps)


def _cell(image: Image.Image) -> Image.Image:
    return image.convert("RGB").resize((TILE, TILE), Image.Resampling.NEAREST)


def render(maps: CategoryMaps, out_path: str | Path) -> Path:
    """The grid as PNG: image | ground truth | one overlay per method, a row per sample."""
    titles = ["image", "ground truth", *maps.maps]
    sheet = Image.new("RGB", (len(titles) * TILE, HEADER + len(maps.samples) * TILE), "white")
    draw = ImageDraw.Draw(sheet)
    for column, title in enumerate(titles):
        draw.text((column * TILE + 2, 2), title[: TILE // 6], fill="black")
    for row, sample in enumerate(maps.samples):
        image = load_image(sample.image).convert("RGB")
        truth = (load_mask(sample.mask, (image.height, image.width)) if sample.mask is not None
                 else np.zeros((image.height, image.width), bool))
        cells = [image, Image.fromarray((truth * 255).astype(np.uint8))]
        for heat in maps.maps.values():
            small = image.resize(heat[row].shape[::-1])
            cells.append(overlay(small, heat[row]))
        y = HEADER + row * TILE
        for column, cell in enumerate(cells):
            sheet.paste(_cell(cell), (column * TILE, y))
        draw.text((2, y + TILE - 12), f"{maps.category}/{sample.defect}"[: TILE // 6], fill="white")
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    # a 256-colour palette keeps the docs' PNGs small (a third of RGB) at no visible cost
    sheet.convert("P", palette=Image.Palette.ADAPTIVE, colors=256).save(out, optimize=True)
    return out


def write_pictures(clip: ClipModel, methods: Mapping[str, Any], categories: Sequence[Category],
                   out_dir: str | Path) -> list[Path]:
    """``{out_dir}/maps_{category}.png`` for each category."""
    return [render(category_maps(clip, methods, category), Path(out_dir) / f"maps_{category.name}.png")
            for category in categories]
