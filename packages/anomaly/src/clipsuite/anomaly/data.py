"""Anomaly datasets: MVTec AD, VisA (raw + ``split_csv/1cls.csv``), ``meta.json`` and a plain folder.

Every loader returns ``list[Category]``: per category the normal training images (the pool few-shot
references are drawn from) and the labelled test samples with optional mask paths. Images are read
later (``load_pixels`` / ``load_mask``), so listing a large dataset is cheap; every structural problem
(an empty defect folder, a missing mask, a malformed CSV/JSON) is one ``InputError`` naming the file.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from clipsuite.core.checkpoints import read_json
from clipsuite.core.errors import InputError
from clipsuite.core.images import is_image_file, load_image
from clipsuite.core.tabular import read_table

FORMATS = ("auto", "mvtec", "visa", "meta", "folder")
MASK_DIRS = ("ground_truth", "masks")


@dataclass(frozen=True)
class Sample:
    image: Path
    label: int                    # 0 normal, 1 anomalous
    mask: Path | None = None      # None: no mask (normal image, or a dataset without masks)
    category: str = "object"
    defect: str = "good"


@dataclass
class Category:
    name: str
    train: list[Sample] = field(default_factory=list)   # normal images only
    test: list[Sample] = field(default_factory=list)

    @property
    def has_masks(self) -> bool:
        return any(s.label == 1 for s in self.test) and all(s.mask is not None for s in self.test if s.label == 1)


def _images_in(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.is_file() and is_image_file(p))
    if not files:
        raise InputError(f"{folder}: defect folder holds no images")
    return files


def _find_mask(mask_root: Path | None, defect: str, image: Path) -> Path | None:
    if mask_root is None:
        return None
    for name in (f"{image.stem}_mask.png", f"{image.stem}.png", f"{image.stem}_mask{image.suffix}", image.name):
        candidate = mask_root / defect / name
        if candidate.is_file():
            return candidate
    raise InputError(f"{image}: no mask found in {mask_root / defect} (expected {image.stem}_mask.png)")


def _labelled_folders(test_dir: Path, mask_root: Path | None, category: str) -> list[Sample]:
    samples: list[Sample] = []
    for defect_dir in sorted(p for p in test_dir.iterdir() if p.is_dir()):
        defect = defect_dir.name
        if defect in MASK_DIRS:
            continue
        for image in _images_in(defect_dir):
            if defect == "good":
                samples.append(Sample(image, 0, None, category, defect))
            else:
                samples.append(Sample(image, 1, _find_mask(mask_root, defect, image), category, defect))
    if not samples:
        raise InputError(f"{test_dir}: no test images (expected good/ and defect folders)")
    return samples


def load_mvtec_category(folder: Path) -> Category:
    """``{cat}/train/good``, ``{cat}/test/{good|defect}``, masks in ``{cat}/ground_truth/{defect}`` (optional)."""
    test_dir = folder / "test"
    if not test_dir.is_dir():
        raise InputError(f"{folder}: not an MVTec category (no test/ folder)")
    mask_root = folder / "ground_truth" if (folder / "ground_truth").is_dir() else None
    train_dir = folder / "train" / "good"
    train = ([Sample(p, 0, None, folder.name) for p in _images_in(train_dir)] if train_dir.is_dir() else [])
    return Category(folder.name, train, _labelled_folders(test_dir, mask_root, folder.name))


def load_mvtec(root: Path, categories: Sequence[str] | None = None) -> list[Category]:
    if (root / "test").is_dir():
        return _pick([load_mvtec_category(root)], categories, root)
    folders = sorted(p for p in root.iterdir() if (p / "test").is_dir())
    return [load_mvtec_category(p) for p in _select(folders, categories, root)]


def _select(folders: list[Path], categories: Sequence[str] | None, root: Path) -> list[Path]:
    if not folders:
        raise InputError(f"{root}: no categories found")
    if categories:
        known = {p.name: p for p in folders}
        missing = [c for c in categories if c not in known]
        if missing:
            raise InputError(f"{root}: unknown categories {', '.join(missing)} (known: {', '.join(known)})")
        return [known[c] for c in categories]
    return folders


def _pick(found: list[Category], categories: Sequence[str] | None, root: Path) -> list[Category]:
    """The asked-for categories in the asked order; an unknown name is refused (never silently dropped)."""
    if not categories:
        return found
    known = {c.name: c for c in found}
    missing = [c for c in categories if c not in known]
    if missing:
        raise InputError(f"{root}: unknown categories {', '.join(missing)} (known: {', '.join(known) or 'none'})")
    return [known[c] for c in categories]


def load_visa(root: Path, categories: Sequence[str] | None = None,
              split_file: str = "split_csv/1cls.csv") -> list[Category]:
    """Raw VisA: ``{obj}/Data/Images/{Normal,Anomaly}``, split CSV columns ``object,split,label,image,mask``."""
    csv_path = root / split_file
    if not csv_path.is_file():
        raise InputError(f"{csv_path}: VisA split file not found")
    by_name: dict[str, Category] = {}
    for record in read_table(csv_path, required=("object", "split", "label", "image", "mask")):
        name, split, label = record.text("object"), record.text("split").lower(), record.text("label").lower()
        if split not in ("train", "test") or label not in ("normal", "anomaly"):
            raise record.error(f"bad split '{split}' or label '{label}'")
        image = root / record.text("image")
        if not image.is_file():
            raise record.error(f"image not found: {image}")
        mask_rel = record.optional_text("mask")
        mask = root / mask_rel if mask_rel else None
        if label == "anomaly" and mask is not None and not mask.is_file():
            raise record.error(f"mask not found: {mask}")
        category = by_name.setdefault(name, Category(name))
        sample = Sample(image, int(label == "anomaly"), mask if label == "anomaly" else None, name,
                        "good" if label == "normal" else "anomaly")
        if split == "train":
            if sample.label == 0:
                category.train.append(sample)
        else:
            category.test.append(sample)
    return _pick([by_name[k] for k in sorted(by_name)], categories, csv_path)


def load_meta(root: Path, categories: Sequence[str] | None = None, split: str = "test") -> list[Category]:
    """AnomalyCLIP/AdaptCLIP ``meta.json``: ``{train|test: {cls: [{img_path, mask_path, cls_name,
    specie_name, anomaly}]}}``, paths relative to the folder holding meta.json."""
    meta_path = root / "meta.json" if root.is_dir() else root
    base = meta_path.parent
    meta = read_json(meta_path)
    if not isinstance(meta, dict) or not isinstance(meta.get(split), dict):
        raise InputError(f"{meta_path}: expected a '{split}' section (category -> list of entries)")
    train_section = meta.get("train", {}) if split == "test" else {}
    if not isinstance(train_section, dict):
        raise InputError(f"{meta_path}: the 'train' section must map categories to lists of entries")
    out = []
    for name in sorted(meta[split]):
        category = Category(name)
        for entry in _meta_entries(meta[split][name], name, split, meta_path):
            image, label, mask_rel = _meta_entry(entry, name, base, meta_path)
            mask = base / mask_rel if (label and mask_rel) else None
            if mask is not None and not mask.is_file():
                raise InputError(f"{mask}: mask listed in {meta_path} not found")
            category.test.append(Sample(image, label, mask, name, entry.get("specie_name", "good")))
        for entry in _meta_entries(train_section.get(name, []), name, "train", meta_path):
            image, label, _ = _meta_entry(entry, name, base, meta_path, default_label=0)
            if not label:
                category.train.append(Sample(image, 0, None, name))
        out.append(category)
    return _pick(out, categories, meta_path)


def _meta_entries(entries: object, name: str, section: str, meta_path: Path) -> list[dict[str, Any]]:
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise InputError(f"{meta_path}: '{section}' -> '{name}' must be a list of entry objects")
    return entries


def _meta_entry(entry: dict[str, Any], name: str, base: Path, meta_path: Path,
                default_label: int | None = None) -> tuple[Path, int, str]:
    """(image, label, mask path or "") of one meta.json entry; a malformed entry or a missing image is refused."""
    try:
        image = base / entry["img_path"]
        label = int(entry["anomaly"] if default_label is None else entry.get("anomaly", default_label))
        mask_rel = entry.get("mask_path") or ""
    except (KeyError, TypeError, ValueError):
        raise InputError(f"{meta_path}: entry in '{name}' lacks img_path/anomaly: {entry!r:.80}") from None
    if not image.is_file():
        raise InputError(f"{image}: image listed in {meta_path} not found")
    return image, label, mask_rel


def load_folder(root: Path, name: str | None = None, categories: Sequence[str] | None = None) -> list[Category]:
    """``good/`` plus one folder per defect; masks optional in ``masks/{defect}/`` or ``ground_truth/{defect}/``."""
    if not (root / "good").is_dir():
        raise InputError(f"{root}: a plain anomaly folder needs a good/ subfolder")
    mask_root = next((root / d for d in MASK_DIRS if (root / d).is_dir()), None)
    test = _labelled_folders(root, mask_root, name or root.name)
    return _pick([Category(name or root.name, [], test)], categories, root)


def detect_format(root: Path) -> str:
    if (root / "split_csv" / "1cls.csv").is_file():
        return "visa"
    if (root / "meta.json").is_file() or root.name == "meta.json":
        return "meta"
    if (root / "test").is_dir() or any((p / "test").is_dir() for p in root.iterdir() if p.is_dir()):
        return "mvtec"
    if (root / "good").is_dir():
        return "folder"
    raise InputError(f"{root}: not a known anomaly dataset layout (MVTec, VisA split_csv, meta.json, good/ folder)")


def load_dataset(root: str | os.PathLike[str], format: str = "auto",
                 categories: Sequence[str] | None = None) -> list[Category]:
    root = Path(root)
    if not root.exists():
        raise InputError(f"{root}: dataset folder not found")
    if format not in FORMATS:
        raise InputError(f"unknown dataset format '{format}' (choose from {', '.join(FORMATS)})")
    kind = detect_format(root) if format == "auto" else format
    loaders = {"mvtec": load_mvtec, "visa": load_visa, "meta": load_meta}
    if kind == "folder":
        return load_folder(root, categories=categories)
    return loaders[kind](root, categories)


# ---- pixels ------------------------------------------------------------------------------------------
def preprocess(image: Image.Image, size: int, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Squash-resize to ``size x size`` (the whole image, so the map covers it all) and normalise."""
    resized = image.resize((size, size), Image.Resampling.BICUBIC)
    array = torch.from_numpy(np.asarray(resized, dtype=np.float32) / 255.0).permute(2, 0, 1)
    return (array - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)


def load_pixels(paths: Sequence[Path], size: int, mean: Sequence[float], std: Sequence[float],
                ) -> tuple[torch.Tensor, list[tuple[int, int]]]:
    """``[N, 3, size, size]`` and each image's original (height, width)."""
    images = [load_image(p) for p in paths]
    return (torch.stack([preprocess(img, size, mean, std) for img in images]),
            [(img.height, img.width) for img in images])


def load_mask(path: Path, image_size: tuple[int, int]) -> np.ndarray:
    """Binary mask ``[H, W]`` (any non-zero pixel is anomalous); its size must equal the image's."""
    try:
        with Image.open(path) as handle:
            mask = np.asarray(handle.convert("L")) > 0
    except (OSError, ValueError, SyntaxError):
        raise InputError(f"{path}: not a readable mask image") from None
    if mask.shape != tuple(image_size):
        raise InputError(f"{path}: mask is {mask.shape[1]}x{mask.shape[0]} but its image is "
                         f"{image_size[1]}x{image_size[0]}")
    return mask
