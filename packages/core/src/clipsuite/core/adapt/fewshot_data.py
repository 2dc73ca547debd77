"""Few-shot data: Dassl split JSON, class folders, seeded K-shot sampling, base-to-novel splits.

A Dassl split (the CoOp family's format, also BiomedCoOp's) is
``{"train": [[rel_path, label, "class name"], ...], "val": [...], "test": [...]}``; paths are relative
to an image root (by default the JSON's folder). Everything is checked when the split is read, so a
bad entry is reported once, by name, before any model runs.
"""

from __future__ import annotations

import math
import os
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from clipsuite.core.errors import InputError
from clipsuite.core.json_files import read_json  # torch-free: a split is read before any model

PARTS = ("train", "val", "test")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif"}


@dataclass(frozen=True)
class Item:
    path: Path
    label: int
    class_name: str


@dataclass
class Split:
    """Items per part plus the class names in label order."""

    class_names: list[str]
    train: list[Item] = field(default_factory=list)
    val: list[Item] = field(default_factory=list)
    test: list[Item] = field(default_factory=list)
    source: str = ""

    def part(self, name: str) -> list[Item]:
        if name not in PARTS:
            raise InputError(f"unknown split part '{name}' (choose from {', '.join(PARTS)})")
        return getattr(self, name)


def _parse_entry(entry: object, where: str, root: Path) -> Item:
    if not isinstance(entry, (list, tuple)) or len(entry) != 3:
        raise InputError(f"{where}: expected [path, label, class name], got {str(entry)[:80]}")
    rel, label, name = entry
    if not isinstance(rel, str) or not rel:
        raise InputError(f"{where}: the path must be a non-empty string")
    if isinstance(label, bool) or not isinstance(label, int):
        raise InputError(f"{where}: label {label!r} is not an integer")
    if not isinstance(name, str) or not name.strip():
        raise InputError(f"{where}: the class name must be a non-empty string")
    path = Path(rel) if os.path.isabs(rel) else root / rel
    if not path.is_file():
        raise InputError(f"{where}: image '{rel}' not found (looked in {root})")
    return Item(path, label, name.strip())


def _class_names(items: dict[str, list[Item]], source: str) -> list[str]:
    """Labels must be 0..C-1 with one name each; C is the number of distinct class names."""
    n = len({item.class_name for part_items in items.values() for item in part_items})
    by_label: dict[int, str] = {}
    for part, part_items in items.items():
        for index, item in enumerate(part_items):
            if not 0 <= item.label < n:
                raise InputError(f"{source}: {part}[{index}] ('{item.path.name}') has label {item.label}, out of "
                                 f"range for the {n} classes named in the split (labels must be 0..{n - 1})")
            known = by_label.setdefault(item.label, item.class_name)
            if known != item.class_name:
                raise InputError(f"{source}: {part}[{index}] gives label {item.label} the name '{item.class_name}' "
                                 f"but another entry calls it '{known}'")
    # n distinct names, each label in 0..n-1 with one name: labels and names are in one-to-one correspondence
    return [by_label[i] for i in range(n)]


def load_split(path: str | os.PathLike[str], image_root: str | os.PathLike[str] | None = None) -> Split:
    """Read and check a Dassl split JSON. ``image_root`` defaults to the JSON's folder."""
    path = Path(path)
    data = read_json(path)
    if not isinstance(data, dict) or "train" not in data:
        raise InputError(f"{path}: expected a JSON object with 'train' (and 'val', 'test') lists")
    root = Path(image_root) if image_root is not None else path.parent
    items: dict[str, list[Item]] = {}
    for part in PARTS:
        entries = data.get(part, [])
        if not isinstance(entries, list):
            raise InputError(f"{path}: '{part}' must be a list of [path, label, class name]")
        items[part] = [_parse_entry(e, f"{path}: {part}[{i}]", root) for i, e in enumerate(entries)]
    if not items["train"]:
        raise InputError(f"{path}: the 'train' list is empty")
    names = _class_names(items, str(path))
    return Split(names, items["train"], items["val"], items["test"], source=str(path))


def load_class_folders(root: str | os.PathLike[str], val_fraction: float = 0.0, test_fraction: float = 0.5,
                       seed: int = 0) -> Split:
    """``root/<class name>/*.png`` -> a Split; classes sorted by folder name, images split per class."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: folder not found")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise InputError(f"{root}: no class folders inside")
    split = Split([f.name.replace("_", " ") for f in folders], source=str(root))
    rng = random.Random(seed)
    for label, folder in enumerate(folders):
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise InputError(f"{folder}: class folder holds no images")
        rng.shuffle(files)
        n_test, n_val = int(len(files) * test_fraction), int(len(files) * val_fraction)
        parts = {"test": files[:n_test], "val": files[n_test:n_test + n_val], "train": files[n_test + n_val:]}
        for part, part_files in parts.items():
            split.part(part).extend(Item(p, label, split.class_names[label]) for p in part_files)
    return split


def _by_class(items: Sequence[Item]) -> dict[int, list[Item]]:
    groups: dict[int, list[Item]] = defaultdict(list)
    for item in items:
        groups[item.label].append(item)
    return groups


def sample_k_shot(items: Sequence[Item], k: int, seed: int, class_names: Sequence[str], part: str = "train",
                  strict: bool = True) -> list[Item]:
    """``k`` items per class, drawn with ``random.Random(seed)``; the same seed gives the same subset.

    ``strict``: a class with fewer than ``k`` items is an error; otherwise it keeps what it has.
    """
    if k < 1:
        raise InputError(f"shots must be at least 1 (got {k})")
    groups = _by_class(items)
    rng = random.Random(seed)
    chosen: list[Item] = []
    for label, name in enumerate(class_names):
        pool = groups.get(label, [])
        if strict and len(pool) < k:
            raise InputError(f"class '{name}' has {len(pool)} {part} images, fewer than the {k} shots asked for")
        chosen.extend(rng.sample(pool, min(k, len(pool))))
    return chosen


def few_shot(split: Split, shots: int, seed: int) -> Split:
    """K shots per class for training, min(K, 4) for validation (the CoOp protocol), full test.

    Without a validation part, validation shots come from the training images not drawn for training.
    """
    train = sample_k_shot(split.train, shots, seed, split.class_names)
    val_k = min(shots, 4)
    if split.val:
        val = sample_k_shot(split.val, val_k, seed, split.class_names, "val", strict=False)
    else:
        taken = set(train)
        val = sample_k_shot([i for i in split.train if i not in taken], val_k, seed, split.class_names, "val",
                            strict=False)
    return replace(split, train=train, val=val)


def base_novel(split: Split, subset: str) -> Split:
    """Base-to-novel protocol: sorted labels, the first ceil(C/2) are base, the rest novel.

    The chosen subset is relabelled 0..n-1 (class order kept); ``all`` returns the split unchanged.
    """
    if subset == "all":
        return split
    n = len(split.class_names)
    cut = math.ceil(n / 2)
    if subset == "base":
        keep = list(range(cut))
    elif subset == "novel":
        keep = list(range(cut, n))
    else:
        raise InputError(f"unknown class subset '{subset}' (choose base, novel or all)")
    if not keep:
        raise InputError(f"{split.source}: too few classes ({n}) for a '{subset}' subset")
    relabel = {old: new for new, old in enumerate(keep)}

    def select(items: list[Item]) -> list[Item]:
        return [Item(i.path, relabel[i.label], i.class_name) for i in items if i.label in relabel]

    return Split([split.class_names[i] for i in keep], select(split.train), select(split.val), select(split.test),
                 source=split.source)


def read_split(path: str | os.PathLike[str], image_root: str | os.PathLike[str] | None = None,
               subset: str = "all") -> Split:
    """A Dassl split JSON or a folder of class folders, reduced to ``subset`` (all, base or novel)."""
    loaded = load_class_folders(path) if Path(path).is_dir() else load_split(path, image_root)
    return base_novel(loaded, subset)
