"""Small MVTec-AD-like datasets with drawn defects and exact masks, for tests and the demo.

``make_category`` writes the real MVTec layout::

    {root}/{category}/train/good/000.png
    {root}/{category}/test/good/000.png
    {root}/{category}/test/{defect}/000.png
    {root}/{category}/ground_truth/{defect}/000_mask.png    (0 / 255)

Textures are striped/checkered fabrics with jitter; objects are a coloured disc or square on a plain
background, shifted a little per image. Defects: ``scratch`` (a thick dark line), ``stain`` (a blob of
a foreign colour) and ``hole`` (a dark disc). ``write_visa`` and ``write_meta_json`` re-describe the
same files in the VisA ``split_csv/1cls.csv`` and AnomalyCLIP ``meta.json`` formats.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import cast

import numpy as np
from PIL import Image, ImageDraw

DEFECTS = ("scratch", "stain", "hole")
TEXTURES = ("carpet", "grid", "tile", "wood")


def _texture(rng: np.random.Generator, size: int, category: str) -> Image.Image:
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    phase = rng.uniform(0, 2 * np.pi)
    period = size / 8
    if category in ("grid", "tile"):
        base = (np.sin(2 * np.pi * x / period + phase) * np.sin(2 * np.pi * y / period + phase) > 0) * 0.35 + 0.45
    else:
        base = 0.5 + 0.25 * np.sin(2 * np.pi * (x + 0.3 * y) / period + phase)
    base = base + rng.normal(0, 0.03, base.shape)
    tint = np.array({"carpet": (0.9, 0.6, 0.5), "grid": (0.6, 0.6, 0.65), "tile": (0.8, 0.8, 0.7),
                     "wood": (0.75, 0.55, 0.35)}.get(category, (0.7, 0.7, 0.7)))
    rgb = np.clip(base[..., None] * tint[None, None] * 1.4, 0, 1)
    return Image.fromarray((rgb * 255).astype(np.uint8))


def _object(rng: np.random.Generator, size: int, category: str) -> Image.Image:
    background = tuple(int(v) for v in rng.integers(225, 240, 3))
    image = Image.new("RGB", (size, size), background)
    draw = ImageDraw.Draw(image)
    centre = size / 2 + rng.uniform(-size * 0.04, size * 0.04, 2)
    radius = size * rng.uniform(0.30, 0.33)
    box = (centre[0] - radius, centre[1] - radius, centre[0] + radius, centre[1] + radius)
    colour = (60, 110, 170) if category != "pill" else (200, 190, 170)
    if category in ("screw", "transistor", "cable"):
        draw.rectangle(box, fill=colour, outline=(30, 30, 30), width=2)
    else:
        draw.ellipse(box, fill=colour, outline=(30, 30, 30), width=2)
    inner = radius * 0.4
    draw.ellipse((centre[0] - inner, centre[1] - inner, centre[0] + inner, centre[1] + inner), fill=(90, 150, 200))
    array = np.asarray(image).astype(np.float32) + rng.normal(0, 3, (size, size, 3))
    return Image.fromarray(np.clip(array, 0, 255).astype(np.uint8))


Fill = int | tuple[int, int, int]  # a colour of the RGB image or a value of the L mask


def _defect(rng: np.random.Generator, image: Image.Image, kind: str) -> tuple[Image.Image, Image.Image]:
    size = image.size[0]
    mask = Image.new("L", image.size, 0)
    draws = (ImageDraw.Draw(image), ImageDraw.Draw(mask))
    lo, hi = size * 0.25, size * 0.75  # inside the object / away from the border
    if kind == "scratch":
        start = rng.uniform(lo, hi, 2)
        angle = rng.uniform(0, np.pi)
        length = size * rng.uniform(0.2, 0.3)
        end = start + length * np.array([np.cos(angle), np.sin(angle)])
        width = max(2, size // 24)
        for draw, fill in zip(draws, cast(tuple[Fill, Fill], ((20, 20, 20), 255))):  # image, mask
            draw.line([tuple(start), tuple(end)], fill=fill, width=width)
    else:
        centre = rng.uniform(lo, hi, 2)
        radius = size * (rng.uniform(0.07, 0.11) if kind == "stain" else rng.uniform(0.05, 0.08))
        box = (centre[0] - radius, centre[1] - radius * 0.8, centre[0] + radius, centre[1] + radius * 0.8)
        colour = (200, 60, 40) if kind == "stain" else (10, 10, 10)
        for draw, fill in zip(draws, cast(tuple[Fill, Fill], (colour, 255))):
            draw.ellipse(box, fill=fill)
    return image, mask


def _normal(rng: np.random.Generator, size: int, category: str) -> Image.Image:
    return _texture(rng, size, category) if category in TEXTURES else _object(rng, size, category)


def make_category(root: str | Path, category: str = "bottle", n_train: int = 8, n_test_good: int = 4,
                  n_test_defect: int = 3, defects: tuple[str, ...] = ("scratch", "stain"), size: int = 96,
                  seed: int = 0) -> Path:
    """Write one MVTec-layout category under ``root``; returns ``root/category``."""
    rng = np.random.default_rng(seed)
    folder = Path(root) / category
    for split, count in (("train", n_train), ("test", n_test_good)):
        out = folder / split / "good"
        out.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            _normal(rng, size, category).save(out / f"{i:03d}.png")
    for kind in defects:
        images, masks = folder / "test" / kind, folder / "ground_truth" / kind
        images.mkdir(parents=True, exist_ok=True)
        masks.mkdir(parents=True, exist_ok=True)
        for i in range(n_test_defect):
            image, mask = _defect(rng, _normal(rng, size, category), kind)
            image.save(images / f"{i:03d}.png")
            mask.save(masks / f"{i:03d}_mask.png")
    return folder


def make_mvtec(root: str | Path, categories: tuple[str, ...] = ("bottle", "carpet"), seed: int = 0,
               **kwargs: object) -> Path:
    """Several categories side by side (the MVTec AD root layout)."""
    for offset, category in enumerate(categories):
        make_category(root, category, seed=seed + offset, **kwargs)  # type: ignore[arg-type]  # its own keywords
    return Path(root)


def write_visa(mvtec_root: str | Path, visa_root: str | Path) -> Path:
    """Copy an MVTec-layout root into the raw VisA layout with ``split_csv/1cls.csv``."""
    mvtec_root, visa_root = Path(mvtec_root), Path(visa_root)
    rows = []
    for category in sorted(p for p in mvtec_root.iterdir() if (p / "test").is_dir()):
        data = visa_root / category.name / "Data"
        for split in ("train", "test"):
            for image_path in sorted((category / split).glob("*/*.png")):
                defect = image_path.parent.name
                label = "normal" if defect == "good" else "anomaly"
                folder = "Normal" if defect == "good" else "Anomaly"
                name = f"{split}_{defect}_{image_path.stem}"
                target = data / "Images" / folder / f"{name}.JPG"
                target.parent.mkdir(parents=True, exist_ok=True)
                Image.open(image_path).save(target, format="PNG")  # PNG bytes, VisA's name; PIL sniffs content
                mask_rel = ""
                if defect != "good":
                    mask_target = data / "Masks" / "Anomaly" / f"{name}.png"
                    mask_target.parent.mkdir(parents=True, exist_ok=True)
                    mask = category / "ground_truth" / defect / f"{image_path.stem}_mask.png"
                    Image.open(mask).save(mask_target)
                    mask_rel = mask_target.relative_to(visa_root).as_posix()
                rows.append([category.name, split, label, target.relative_to(visa_root).as_posix(), mask_rel])
    (visa_root / "split_csv").mkdir(parents=True, exist_ok=True)
    with open(visa_root / "split_csv" / "1cls.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["object", "split", "label", "image", "mask"])
        writer.writerows(rows)
    return visa_root


def write_meta_json(mvtec_root: str | Path) -> Path:
    """Describe an MVTec-layout root in AnomalyCLIP/AdaptCLIP ``meta.json`` (paths relative to the root)."""
    root = Path(mvtec_root)
    meta: dict[str, dict[str, list[dict[str, object]]]] = {"train": {}, "test": {}}
    for category in sorted(p for p in root.iterdir() if (p / "test").is_dir()):
        for split in ("train", "test"):
            entries = []
            for image_path in sorted((category / split).glob("*/*.png")):
                defect = image_path.parent.name
                mask = category / "ground_truth" / defect / f"{image_path.stem}_mask.png"
                entries.append({"img_path": image_path.relative_to(root).as_posix(),
                                "mask_path": mask.relative_to(root).as_posix() if defect != "good" else "",
                                "cls_name": category.name, "specie_name": defect,
                                "anomaly": int(defect != "good")})
            meta[split][category.name] = entries
    (root / "meta.json").write_text(json.dumps(meta, indent=1))
    return root / "meta.json"
