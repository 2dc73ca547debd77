"""A caption corpus rich enough to pretrain a small CLIP for the domain methods, offline.

Four kinds of image, each captioned with what a domain method needs the backbone to know:

- shapes: coloured shapes at positions (``clipsuite.core.synthetic``), "a red circle on the left";
- materials: textures with and without defects, "a photo of a scratched woven fabric";
- parts: manufactured objects with and without defects (scratch, hole, stain, missing part),
  "a flawless metal washer", "a button with a missing part";
- slices: organ-like CT slices with and without a bright lesion on one side,
  "a ct slice of the chest with a lesion on the right".

The material and part categories are deliberately not those of ``clipsuite.anomaly.synthetic``
(carpet, grid, tile, wood, bottle, screw ...): those are the held-out categories the anomaly tests
evaluate on, so a transfer result cannot come from having seen them here. ``HELD_OUT`` names them
and ``corpus_categories`` is checked against it in the tests.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from clipsuite.core.synthetic import ShapeSample, draw_shape, sample_shapes

# The anomaly generator's category names (clipsuite.anomaly.synthetic): never drawn or named here.
HELD_OUT = ("bottle", "cable", "capsule", "carpet", "grid", "hazelnut", "leather", "metal nut", "pill",
            "screw", "tile", "toothbrush", "transistor", "wood", "zipper")
MATERIALS = ("woven fabric", "marble slab", "dotted sheet", "brushed steel")
PARTS = ("metal washer", "button", "hex nut", "ceramic plate")
DEFECTS = ("scratch", "hole", "stain", "missing part")
ORGANS = ("chest", "head", "abdomen")
SIDES = ("left", "right")
KINDS = ("shapes", "materials", "parts", "slices")

_DEFECT_WORDS: dict[str, tuple[str, ...]] = {  # "a {adj} {thing}" or "a {thing} with a {noun}"
    "scratch": ("scratched", "scratch"), "hole": ("punctured", "hole"), "stain": ("stained", "stain"),
    "missing part": ("broken", "missing part"),
}
_NORMAL_WORDS = ("flawless", "perfect", "intact", "unblemished")


def corpus_categories() -> list[str]:
    """Every object/texture name that appears in the corpus."""
    return [*MATERIALS, *PARTS]


@dataclass(frozen=True)
class CorpusItem:
    kind: str
    thing: str             # shape class, material, part or organ
    defect: str | None     # anomaly defect, or "lesion" for slices; None when normal
    where: str = ""        # shape position or lesion side


def _caption(item: CorpusItem, rng: random.Random) -> str:
    if item.kind == "shapes":
        return f"a {item.thing} {item.where}"
    if item.kind == "slices":
        organ = f"a ct slice of the {item.thing}"
        return f"{organ} with a lesion on the {item.where}" if item.defect else f"{organ} without lesion"
    if item.defect is None:
        word = rng.choice(_NORMAL_WORDS)
        return rng.choice([f"a photo of a {word} {item.thing}", f"a {item.thing} without defect",
                           f"a photo of a normal {item.thing}"])
    adjective, noun = _DEFECT_WORDS[item.defect]
    return rng.choice([f"a photo of a {adjective} {item.thing}", f"a {item.thing} with a {noun}",
                       f"a photo of a damaged {item.thing} with a {noun}"])


# ---- drawing -------------------------------------------------------------------------------------
def _material(name: str, size: int, rng: np.random.Generator) -> Image.Image:
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    phase = rng.uniform(0, 2 * np.pi)
    if name == "woven fabric":  # cross-hatched threads
        base = 0.5 + 0.2 * np.sin(2 * np.pi * 10 * (x + y) + phase) * np.sin(2 * np.pi * 10 * (x - y) + phase)
        tint = (0.45, 0.55, 0.8)
    elif name == "marble slab":  # smooth veins
        base = 0.7 + 0.15 * np.sin(2 * np.pi * (3 * x + 2 * np.sin(4 * y + phase)))
        tint = (0.95, 0.93, 0.9)
    elif name == "dotted sheet":
        cell = (np.mod(x * 7 + phase, 1.0) - 0.5) ** 2 + (np.mod(y * 7 + phase, 1.0) - 0.5) ** 2
        base = np.where(cell < 0.06, 0.4, 0.75)
        tint = (0.7, 0.85, 0.6)
    else:  # brushed steel: fine horizontal streaks
        base = 0.6 + 0.08 * np.sin(2 * np.pi * 30 * y + rng.normal(0, 0.5, (size, 1)))
        tint = (0.8, 0.82, 0.85)
    base = base + rng.normal(0, 0.03, base.shape)
    rgb = np.clip(base[..., None] * np.array(tint)[None, None] * 1.2, 0, 1)
    return Image.fromarray((rgb * 255).astype(np.uint8))


def _part(name: str, size: int, rng: np.random.Generator) -> tuple[Image.Image, tuple[float, float, float]]:
    """The part on a plain background; returns (image, (cx, cy, radius)) for placing defects."""
    background = tuple(int(v) for v in rng.integers(20, 60, 3))  # dark, unlike the anomaly objects
    image = Image.new("RGB", (size, size), background)
    draw = ImageDraw.Draw(image)
    cx, cy = size / 2 + rng.uniform(-size * 0.05, size * 0.05, 2)
    r = size * rng.uniform(0.3, 0.36)
    if name == "metal washer":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=(170, 170, 180))
        draw.ellipse((cx - r * 0.35, cy - r * 0.35, cx + r * 0.35, cy + r * 0.35), fill=background)
    elif name == "button":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=(200, 160, 60))
        for dx in (-0.25, 0.25):
            draw.ellipse((cx + dx * r - r * 0.1, cy - r * 0.1, cx + dx * r + r * 0.1, cy + r * 0.1), fill=background)
    elif name == "hex nut":
        points = [(cx + r * math.cos(k * math.pi / 3), cy + r * math.sin(k * math.pi / 3)) for k in range(6)]
        draw.polygon(points, fill=(150, 150, 120))
        draw.ellipse((cx - r * 0.4, cy - r * 0.4, cx + r * 0.4, cy + r * 0.4), fill=background)
    else:  # ceramic plate: white disc with a rim
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=(235, 235, 230), outline=(120, 150, 200), width=3)
    array = np.asarray(image).astype(np.float32) + rng.normal(0, 3, (size, size, 3))
    return Image.fromarray(np.clip(array, 0, 255).astype(np.uint8)), (cx, cy, r)


def _add_defect(image: Image.Image, defect: str, centre: tuple[float, float], extent: float,
                rng: np.random.Generator, background: tuple[int, int, int] | None = None) -> None:
    """Draw ``defect`` in place, somewhere within ``extent`` of ``centre``."""
    size = image.size[0]
    draw = ImageDraw.Draw(image)
    px, py = centre[0] + rng.uniform(-0.6, 0.6) * extent, centre[1] + rng.uniform(-0.6, 0.6) * extent
    if defect == "scratch":
        angle, length = rng.uniform(0, np.pi), size * rng.uniform(0.18, 0.3)
        end = (px + length * math.cos(angle), py + length * math.sin(angle))
        draw.line([(px, py), end], fill=(15, 15, 15), width=max(2, size // 24))
    elif defect == "hole":
        rad = size * rng.uniform(0.05, 0.08)
        draw.ellipse((px - rad, py - rad, px + rad, py + rad), fill=(5, 5, 5))
    elif defect == "stain":
        rad = size * rng.uniform(0.07, 0.11)
        colour = tuple(int(v) for v in rng.choice([(190, 60, 30), (90, 60, 20), (60, 140, 40)]))
        draw.ellipse((px - rad, py - rad * 0.8, px + rad, py + rad * 0.8), fill=colour)
    else:  # missing part: a wedge of the object replaced by background (or a dark gap)
        start = rng.uniform(0, 360)
        reach = extent * 1.05
        box = (centre[0] - reach, centre[1] - reach, centre[0] + reach, centre[1] + reach)
        draw.pieslice(box, start, start + rng.uniform(50, 80), fill=background or (10, 10, 10))


def _slice(organ: str, lesion_side: str | None, size: int, rng: np.random.Generator) -> Image.Image:
    """A windowed axial CT-like slice: body, organ structure, and an optional bright lesion."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    x, y = (x - size / 2) / (size / 2), (y - size / 2) / (size / 2)
    img: np.ndarray = np.zeros((size, size), np.float32)  # float64 once the noise is added
    if organ == "head":
        r = np.sqrt((x / 0.75) ** 2 + (y / 0.88) ** 2)
        img[r < 1.0] = 1.0
        img[r < 0.88] = 0.45
        hosts = [(-0.35, 0.0, 0.3), (0.35, 0.0, 0.3)]
    else:
        img[(x / 0.9) ** 2 + (y / 0.62) ** 2 < 1] = 0.5
        img[x ** 2 + (y - 0.42) ** 2 < 0.12 ** 2] = 1.0  # spine at the back (bottom of the image)
        if organ == "chest":
            for cx in (-0.42, 0.42):
                img[((x - cx) / 0.3) ** 2 + (y / 0.4) ** 2 < 1] = 0.08  # dark lungs
            hosts = [(-0.42, 0.0, 0.25), (0.42, 0.0, 0.25)]
        else:
            img[((x + 0.35) / 0.38) ** 2 + ((y + 0.05) / 0.3) ** 2 < 1] = 0.6  # liver on the image left
            hosts = [(-0.35, -0.05, 0.22), (0.4, 0.0, 0.2)]
    if lesion_side is not None:
        hx, hy, spread = hosts[0] if lesion_side == "left" else hosts[1]
        lx, ly = hx + rng.uniform(-spread, spread) * 0.5, hy + rng.uniform(-spread, spread) * 0.5
        rad = rng.uniform(0.09, 0.14)
        img[(x - lx) ** 2 + (y - ly) ** 2 < rad ** 2] = 0.9
    img = img + rng.normal(0, 0.03, img.shape)
    grey = (np.clip(img, 0, 1) * 255).astype(np.uint8)
    return Image.fromarray(np.stack([grey] * 3, -1)).filter(ImageFilter.GaussianBlur(rng.uniform(0.0, 0.5)))


# ---- sampling ------------------------------------------------------------------------------------
def _sample_item(kind: str, rng: random.Random, defect_rate: float) -> CorpusItem:
    if kind == "shapes":
        shape: ShapeSample = sample_shapes(1, rng.randrange(2**31))[0]
        return CorpusItem("shapes", shape.class_name, None, shape.position)
    if kind == "slices":
        lesion = rng.random() < 0.5
        return CorpusItem("slices", rng.choice(ORGANS), "lesion" if lesion else None,
                          rng.choice(SIDES) if lesion else "")
    things = MATERIALS if kind == "materials" else PARTS
    return CorpusItem(kind, rng.choice(things), rng.choice(DEFECTS) if rng.random() < defect_rate else None)


def render(item: CorpusItem, size: int, seed: int) -> Image.Image:
    """The image of ``item``, drawn with jitter seeded by ``seed``."""
    rng = np.random.default_rng(seed)
    if item.kind == "shapes":
        colour, shape = item.thing.split(" ")
        return draw_shape(ShapeSample(colour, shape, item.where), size, random.Random(seed))
    if item.kind == "slices":
        return _slice(item.thing, item.where if item.defect else None, size, rng)
    if item.kind == "materials":
        image = _material(item.thing, size, rng)
        if item.defect:
            _add_defect(image, item.defect, (size / 2, size / 2), size * 0.35, rng, background=(10, 10, 10))
        return image
    image, (cx, cy, r) = _part(item.thing, size, rng)
    if item.defect:
        background = image.getpixel((1, 1))
        _add_defect(image, item.defect, (cx, cy), r * 0.8, rng, background=background)  # type: ignore[arg-type]
    return image


def corpus_pairs(n: int, seed: int = 0, size: int = 64, kinds: tuple[str, ...] = KINDS,
                 defect_rate: float = 0.5) -> list[tuple[Image.Image, str]]:
    """``n`` (image, caption) pairs, kinds in equal shares, all drawn in memory (for train_contrastive)."""
    rng = random.Random(seed)
    pairs = []
    for i in range(n):
        item = _sample_item(kinds[i % len(kinds)], rng, defect_rate)
        pairs.append((render(item, size, rng.randrange(2**31)), _caption(item, rng)))
    return pairs

