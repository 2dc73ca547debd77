"""Try-on data: VITON-HD layout, binary masks, OpenPose keypoints and pose heatmaps.

Samples are ``dict[str, Tensor]`` (torchgeo habit): images in [-1, 1] ``[3, H, W]``, masks in {0, 1}
``[1, H, W]`` (1 = region to repaint), pose heatmaps ``[18, H, W]``. Every reader checks its file and
raises ``InputError`` naming it: a mask must be binary (JPEG ringing tolerated, a soft or grey mask
refused), a keypoint file must hold 18 (COCO) or 25 (BODY_25) points, a category must be known.
Keypoints with confidence 0 are OpenPose's "not detected": their heatmap channel stays zero.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import numpy as np
import torch
from PIL import Image

from clipsuite.core.errors import InputError
from clipsuite.core.images import load_image

# the file readers live in the torch-free sample_files; names imported from here elsewhere are re-exported
from clipsuite.generative.sample_files import BODY25_TO_COCO18 as BODY25_TO_COCO18
from clipsuite.generative.sample_files import CATEGORIES as CATEGORIES
from clipsuite.generative.sample_files import (
    CATEGORY_LABELS,
    GARMENT_LABELS,
    N_KEYPOINTS,
    check_category,
    load_binary_mask,
    load_parse,
    read_keypoints,
)
from clipsuite.generative.sample_files import LIP_LABELS as LIP_LABELS
from clipsuite.generative.sample_files import LIP_PALETTE as LIP_PALETTE

logger = logging.getLogger("clipsuite.generative")


def pose_heatmaps(keypoints: np.ndarray, size: tuple[int, int], source_size: tuple[int, int] | None = None,
                  sigma: float | None = None) -> torch.Tensor:
    """Gaussian heatmaps ``[18, H, W]`` (peak 1) at ``size``; keypoints are in ``source_size`` pixels
    (default: ``size``). Undetected points (confidence 0) and points outside the image give zeros."""
    h, w = size
    sh, sw = source_size or size
    sigma = sigma if sigma is not None else max(1.0, h / 64)
    ys = torch.arange(h, dtype=torch.float32)[:, None]
    xs = torch.arange(w, dtype=torch.float32)[None, :]
    maps = torch.zeros(N_KEYPOINTS, h, w)
    for k, (x, y, c) in enumerate(keypoints):
        if c <= 0 or not (0 <= x < sw and 0 <= y < sh):
            continue
        # pixel centres: a point at source pixel x lands at (x + 0.5) * w / sw - 0.5
        px, py = (x + 0.5) * w / sw - 0.5, (y + 0.5) * h / sh - 0.5
        maps[k] = torch.exp(-((xs - px) ** 2 + (ys - py) ** 2) / (2 * sigma**2))
    return maps


def repaint_mask(parse: np.ndarray, category: str, dilate: int = 1) -> np.ndarray:
    """Bool ``[H, W]``: the garment region of ``category`` (plus covered skin), dilated by ``dilate`` px."""
    mask = np.isin(parse, CATEGORY_LABELS[check_category(category)])
    if dilate > 0 and mask.any():
        t = torch.from_numpy(mask.astype(np.float32))[None, None]
        mask = (torch.nn.functional.max_pool2d(t, 2 * dilate + 1, 1, dilate)[0, 0] > 0).numpy()
    return mask


def to_tensor(image: Image.Image) -> torch.Tensor:
    """RGB PIL -> ``[3, H, W]`` float in [-1, 1] (the VAE's range)."""
    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def to_image(tensor: torch.Tensor) -> Image.Image:
    """``[3, H, W]`` in [-1, 1] -> RGB PIL."""
    array = ((tensor.detach().float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(array)


@dataclass
class TryOnFiles:
    """The files of one try-on sample. ``mask`` overrides the mask made from ``parse``."""

    person: Path
    garment: Path
    category: str = "upper_body"
    garment_mask: Path | None = None
    parse: Path | None = None
    keypoints: Path | None = None
    mask: Path | None = None
    name: str = ""
    parse_to_lip: tuple[int, ...] | None = None      # the parsing's label set onto LIP (None: already LIP)
    keypoint_space: tuple[int, int] | None = None    # (H, W) the keypoints are given in (None: the person's)


@dataclass
class Loaded:
    sample: dict[str, torch.Tensor]
    notes: list[str] = field(default_factory=list)


def load_sample(files: TryOnFiles, size: tuple[int, int] | None = None) -> Loaded:
    """Read and check one sample; everything is brought to ``size`` (default: the person's size).
    A garment of another size is resized, with a note."""
    check_category(files.category)
    notes: list[str] = []
    person = load_image(files.person)
    native = (person.height, person.width)
    size = cast("tuple[int, int]", tuple(size)) if size is not None else native
    garment = load_image(files.garment)
    if (garment.height, garment.width) != native:
        notes.append(f"{files.garment}: garment is {garment.width}x{garment.height}, person is "
                     f"{person.width}x{person.height}; garment resized")
    if native != size:
        person = person.resize((size[1], size[0]), Image.Resampling.BICUBIC)
    if (garment.height, garment.width) != size:
        garment = garment.resize((size[1], size[0]), Image.Resampling.BICUBIC)
    parse = load_parse(files.parse, size, files.parse_to_lip) if files.parse is not None else None
    if files.mask is not None:
        mask = load_binary_mask(files.mask, size)
    elif parse is not None:
        mask = repaint_mask(parse, files.category, dilate=max(1, size[0] // 64))
    else:
        raise InputError(f"{files.person}: no repaint region: give a mask or a human-parsing file")
    if not mask.any():
        raise InputError(f"{files.mask or files.parse}: the repaint mask for '{files.category}' is empty")
    cloth_mask = (load_binary_mask(files.garment_mask, size) if files.garment_mask is not None
                  else np.ones(size, dtype=bool))
    if files.keypoints is not None:
        pose = pose_heatmaps(read_keypoints(files.keypoints), size, files.keypoint_space or native)
    else:
        pose = torch.zeros(N_KEYPOINTS, *size)
        notes.append(f"{files.person}: no keypoints given; pose heatmaps left empty")
    image = to_tensor(person)
    mask_t = torch.from_numpy(mask.astype(np.float32))[None]
    cloth_mask_t = torch.from_numpy(cloth_mask.astype(np.float32))[None]
    sample = {"image": image, "mask": mask_t, "masked_image": image * (1 - mask_t), "pose": pose,
              "cloth": to_tensor(garment) * cloth_mask_t + (1 - cloth_mask_t), "cloth_mask": cloth_mask_t}
    if parse is not None:  # the garment as worn: the warping stage's target
        worn = np.isin(parse, GARMENT_LABELS[files.category]).astype(np.float32)
        sample["garment_region"] = torch.from_numpy(worn)[None]
    return Loaded(sample, notes)


def read_pairs(path: str | Path) -> list[tuple[str, str]]:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: pairs file not found")
    pairs = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2:
            raise InputError(f"{path}: line {number} should be 'person.jpg cloth.jpg', got {line.strip()!r}")
        pairs.append((parts[0], parts[1]))
    if not pairs:
        raise InputError(f"{path}: no pairs listed")
    return pairs


def find_image(folder: Path, stem: str) -> Path:
    for suffix in (".jpg", ".png", ".jpeg"):
        if (folder / f"{stem}{suffix}").is_file():
            return folder / f"{stem}{suffix}"
    raise InputError(f"{folder / stem}.jpg (or .png): file not found")


class VitonHD(torch.utils.data.Dataset):
    """VITON-HD ``root/{split}/...`` with ``{split}_pairs.txt``. ``paired=False`` dresses each person in
    the next listed garment (the unpaired protocol). Items are sample dicts plus ``index``."""

    def __init__(self, root: str | Path, split: str = "train", size: tuple[int, int] | None = None,
                 paired: bool = True, transforms: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]
                 | None = None, category: str = "upper_body") -> None:
        self.root, self.split, self.size = Path(root), split, size
        self.transforms, self.category = transforms, check_category(category)
        folder = self.root / split
        for sub in ("image", "cloth", "image-parse-v3"):
            if not (folder / sub).is_dir():
                raise InputError(f"{folder / sub}: folder not found (not a VITON-HD layout)")
        pairs = read_pairs(self.root / f"{split}_pairs.txt")
        if not paired:
            cloths = [c for _, c in pairs]
            pairs = [(p, cloths[(i + 1) % len(cloths)]) for i, (p, _) in enumerate(pairs)]
        self.files = [self._files(person, cloth) for person, cloth in pairs]

    def _files(self, person: str, cloth: str) -> TryOnFiles:
        folder = self.root / self.split
        p, c = Path(person).stem, Path(cloth).stem
        mask_dir = folder / "cloth-mask"
        return TryOnFiles(person=find_image(folder / "image", p), garment=find_image(folder / "cloth", c),
                          category=self.category,
                          garment_mask=find_image(mask_dir, c) if mask_dir.is_dir() else None,
                          parse=find_image(folder / "image-parse-v3", p),
                          keypoints=folder / "openpose_json" / f"{p}_keypoints.json", name=f"{p}__{c}")

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        loaded = load_sample(self.files[index], self.size)
        for note in loaded.notes:
            logger.warning(note)
        sample = loaded.sample
        sample["index"] = torch.tensor(index)
        return self.transforms(sample) if self.transforms is not None else sample
