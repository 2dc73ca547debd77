"""Coloured shapes with captions: a small, learnable image-text world in real on-disk formats.

Each image holds one shape of one colour at one position on a noisy, softly lit background;
its caption says all three ("a red circle on the left"). Zero-shot classes are colour x shape, so a
model must learn both words and bind them. Files: PNG images plus an image-caption CSV
(``filepath``, ``title``, and the attribute columns) or a Dassl split JSON.
"""

from __future__ import annotations

import csv
import json
import math
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 80, 220), "yellow": (230, 210, 40),
}
SHAPES = ("circle", "square", "triangle")
POSITIONS: dict[str, tuple[float, float]] = {
    "on the left": (0.3, 0.5), "on the right": (0.7, 0.5), "at the top": (0.5, 0.3),
    "at the bottom": (0.5, 0.7), "in the center": (0.5, 0.5),
}


@dataclass(frozen=True)
class ShapeSample:
    colour: str
    shape: str
    position: str

    @property
    def class_name(self) -> str:
        return f"{self.colour} {self.shape}"

    @property
    def caption(self) -> str:
        return f"a {self.colour} {self.shape} {self.position}"


def class_names() -> list[str]:
    """The colour x shape classes, in label order."""
    return [f"{c} {s}" for c in COLOURS for s in SHAPES]


def draw_shape(sample: ShapeSample, size: int, rng: random.Random) -> Image.Image:
    """Render one sample with jittered size, position, shade, background and noise."""
    np_rng = np.random.default_rng(rng.randrange(2**32))
    base = np.array([rng.randint(90, 200)] * 3, dtype=np.float32)
    ramp = np.linspace(-25, 25, size, dtype=np.float32)
    background = base[None, None, :] + ramp[None, :, None] * rng.choice([-1, 1])
    background = background + np_rng.normal(0, 6, (size, size, 3)).astype(np.float32)
    image = Image.fromarray(np.clip(background, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    cx, cy = POSITIONS[sample.position]
    cx, cy = (cx + rng.uniform(-0.06, 0.06)) * size, (cy + rng.uniform(-0.06, 0.06)) * size
    radius = rng.uniform(0.14, 0.22) * size
    colour = tuple(int(np.clip(v + rng.randint(-25, 25), 0, 255)) for v in COLOURS[sample.colour])
    if sample.shape == "circle":
        draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=colour)
    elif sample.shape == "square":
        draw.rectangle([cx - radius * 0.9, cy - radius * 0.9, cx + radius * 0.9, cy + radius * 0.9], fill=colour)
    else:
        angle = rng.uniform(-0.3, 0.3)
        corners = [angle + k * 2 * math.pi / 3 for k in range(3)]
        points = [(cx + radius * math.sin(a), cy - radius * math.cos(a)) for a in corners]
        draw.polygon(points, fill=colour)
    return image.filter(ImageFilter.GaussianBlur(radius=rng.uniform(0.0, 0.6)))


def sample_shapes(n: int, seed: int) -> list[ShapeSample]:
    rng = random.Random(seed)
    return [ShapeSample(rng.choice(list(COLOURS)), rng.choice(SHAPES), rng.choice(list(POSITIONS))) for _ in range(n)]


def _write_images(root: Path, samples: list[ShapeSample], size: int, seed: int, prefix: str) -> list[str]:
    (root / "images").mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed + 1)
    paths = []
    for i, sample in enumerate(samples):
        rel = f"images/{prefix}{i:05d}.png"
        draw_shape(sample, size, rng).save(root / rel)
        paths.append(rel)
    return paths


def write_shapes_dataset(root: str | Path, n: int = 1000, seed: int = 0, image_size: int = 64,
                         name: str = "captions.csv") -> Path:
    """Write ``n`` images and an image-caption CSV (open_clip's ``filepath``/``title`` columns plus
    ``colour``, ``shape``, ``position``, ``label``, ``class_name``). Paths are relative to the CSV."""
    root = Path(root)
    samples = sample_shapes(n, seed)
    prefix = Path(name).stem + "-"
    paths = _write_images(root, samples, image_size, seed, prefix)
    names = class_names()
    csv_path = root / name
    with open(csv_path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["filepath", "title", "colour", "shape", "position", "label", "class_name"])
        for rel, s in zip(paths, samples):
            writer.writerow([rel, s.caption, s.colour, s.shape, s.position, names.index(s.class_name), s.class_name])
    return csv_path


def write_shapes_split(root: str | Path, per_class: dict[str, int] | None = None, seed: int = 0,
                       image_size: int = 64) -> Path:
    """Write a Dassl split JSON (``{"train"|"val"|"test": [[rel_path, label, class_name], ...]}``)
    over the colour x shape classes, ``per_class`` images per class and split."""
    root = Path(root)
    per_class = per_class or {"train": 20, "val": 4, "test": 10}
    names = class_names()
    rng = random.Random(seed)
    split: dict[str, list[list[object]]] = {}
    for offset, (part, count) in enumerate(per_class.items()):
        samples = [ShapeSample(colour, shape, rng.choice(list(POSITIONS)))
                   for colour, shape in (name.split(" ") for name in names) for _ in range(count)]
        paths = _write_images(root, samples, image_size, seed * 100 + offset, f"{part}-")
        split[part] = [[p, names.index(s.class_name), s.class_name] for p, s in zip(paths, samples)]
    out = root / "split.json"
    out.write_text(json.dumps(split, indent=1))
    return out
