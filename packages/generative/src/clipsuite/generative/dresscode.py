"""Dress Code layout reader (three categories, one folder each).

::

    root/{category}/images/013563_0.jpg          person            (category: upper_body, lower_body, dresses)
    root/{category}/images/013563_1.jpg          garment, flat
    root/{category}/keypoints/013563_2.json      {"keypoints": [[x, y, score, id] x 18]} in 384 x 512 pixels
    root/{category}/label_maps/013563_4.png      grey labels, Dress Code's 18-label set (``DRESSCODE_LABELS``)
    root/{category}/cloth_mask/013563_1.png      garment mask 0/255 (optional folder; the official release
                                                 ships none, derived copies do)
    root/{category}/train_pairs.txt, test_pairs_paired.txt, test_pairs_unpaired.txt   "person.jpg garment.jpg"

Samples are ``data.load_sample`` dicts: the label maps are mapped onto LIP labels so the repaint
mask and the worn garment follow the same rules as VITON-HD, and the keypoints are scaled from
Dress Code's fixed 384 x 512 space (LaDI-VTON's reader does the same).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from clipsuite.core.errors import InputError
from clipsuite.generative.data import LIP_LABELS, TryOnFiles, VitonHD, check_category, find_image, read_pairs

DRESSCODE_LABELS = ("background", "hat", "hair", "sunglasses", "upper_clothes", "skirt", "pants", "dress", "belt",
                    "left_shoe", "right_shoe", "head", "left_leg", "right_leg", "left_arm", "right_arm", "bag",
                    "scarf")
# Dress Code label -> LIP label. LIP has no belt or bag: a belt counts as pants (it is repainted with a
# lower-body garment, kept with an upper one), a bag as background (never repainted).
_LIP_NAME = {"sunglasses": "sunglasses", "head": "face", "dress": "dress", "belt": "pants", "bag": "background"}
DRESSCODE_TO_LIP = tuple(LIP_LABELS.index(_LIP_NAME.get(name, name)) for name in DRESSCODE_LABELS)
KEYPOINT_SPACE = (512, 384)   # (H, W) of Dress Code's keypoint coordinates, whatever the image size


def pairs_file(root: Path, category: str, split: str, paired: bool) -> Path:
    name = "train_pairs.txt" if split == "train" else f"{split}_pairs_{'paired' if paired else 'unpaired'}.txt"
    return root / category / name


class DressCode(VitonHD):
    """Dress Code ``root/{category}/...`` for the chosen categories, in the order given. Items are
    sample dicts plus ``index``; ``files[i].category`` says which category a sample is."""

    def __init__(self, root: str | Path, split: str = "train", size: tuple[int, int] | None = None,
                 paired: bool = True, transforms: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]
                 | None = None, categories: Sequence[str] = ("upper_body", "lower_body", "dresses")) -> None:
        # VitonHD's __getitem__/__len__ are reused; its folder checks are not (other layout)
        self.root, self.split, self.size, self.transforms = Path(root), split, size, transforms
        if not categories:
            raise InputError(f"{self.root}: no category chosen")
        self.files: list[TryOnFiles] = []
        for category in categories:
            check_category(category)
            folder = self.root / category
            for sub in ("images", "label_maps", "keypoints"):
                if not (folder / sub).is_dir():
                    raise InputError(f"{folder / sub}: folder not found (not a Dress Code layout)")
            listed = pairs_file(self.root, category, split, paired)
            pairs = read_pairs(listed)
            if split == "train" and not paired:  # no unpaired list for training: the next garment
                cloths = [c for _, c in pairs]
                pairs = [(p, cloths[(i + 1) % len(cloths)]) for i, (p, _) in enumerate(pairs)]
            self.files += [self._pair(category, person, cloth, listed) for person, cloth in pairs]

    def _pair(self, category: str, person: str, cloth: str, listed: Path) -> TryOnFiles:
        folder = self.root / category
        p, c = Path(person).stem, Path(cloth).stem
        if not (p.endswith("_0") and c.endswith("_1")):
            raise InputError(f"{listed}: '{person} {cloth}' is not a Dress Code pair (ID_0.jpg ID_1.jpg)")
        ident = p[:-2]
        mask_dir = folder / "cloth_mask"
        return TryOnFiles(person=find_image(folder / "images", p), garment=find_image(folder / "images", c),
                          category=category, garment_mask=find_image(mask_dir, c) if mask_dir.is_dir() else None,
                          parse=find_image(folder / "label_maps", f"{ident}_4"),
                          keypoints=folder / "keypoints" / f"{ident}_2.json", name=f"{p}__{c}",
                          parse_to_lip=DRESSCODE_TO_LIP, keypoint_space=KEYPOINT_SPACE)


def training_split(root: str | Path, layout: str, size: tuple[int, int], category: str) -> VitonHD:
    """The training split of a VITON-HD (``layout`` ``vitonhd``) or Dress Code root, one category, at ``size``
    (``prechecks.dataset_layout`` says which layout a root has)."""
    if layout == "vitonhd":
        return VitonHD(root, "train", size=size, category=category)
    return DressCode(root, "train", size=size, categories=[category])
