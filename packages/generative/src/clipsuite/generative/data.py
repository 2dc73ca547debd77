"""Try-on data: VITON-HD layout, binary masks, OpenPose keypoints and pose heatmaps.

Samples are ``dict[str, Tensor]`` (torchgeo habit): images in [-1, 1] ``[3, H, W]``, masks in {0, 1}
``[1, H, W]`` (1 = region to repaint), pose heatmaps ``[18, H, W]``. Every reader checks its file and
raises ``InputError`` naming it: a mask must be binary (JPEG ringing tolerated, a soft or grey mask
refused), a keypoint file must hold 18 (COCO) or 25 (BODY_25) points, a category must be known.
Keypoints with confidence 0 are OpenPose's "not detected": their heatmap channel stays zero.
"""

from __future__ import annotations

import json
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

logger = logging.getLogger("clipsuite.generative")

# LIP / image-parse-v3 labels (VITON-HD's parsing uses the LIP label set)
LIP_LABELS = ("background", "hat", "hair", "glove", "sunglasses", "upper_clothes", "dress", "coat", "socks",
              "pants", "jumpsuits", "scarf", "skirt", "face", "left_arm", "right_arm", "left_leg", "right_leg",
              "left_shoe", "right_shoe")
LIP_PALETTE = [0, 0, 0, 128, 0, 0, 254, 0, 0, 0, 85, 0, 169, 0, 51, 254, 85, 0, 0, 0, 85, 0, 119, 220, 85, 85, 0,
               0, 85, 85, 85, 51, 0, 52, 86, 128, 0, 128, 0, 0, 0, 254, 51, 169, 220, 0, 254, 254, 85, 254, 169,
               169, 254, 85, 254, 254, 0, 254, 169, 0]
# What is repainted for each Dress Code category (garment labels plus the skin it may cover)
CATEGORY_LABELS = {
    "upper_body": (5, 6, 7, 10, 11, 14, 15),
    "lower_body": (9, 12, 16, 17),
    "dresses": (5, 6, 7, 9, 10, 11, 12, 14, 15, 16, 17),
}
CATEGORIES = tuple(CATEGORY_LABELS)
# The worn garment itself (what the warping stage learns to match)
GARMENT_LABELS = {"upper_body": (5, 6, 7), "lower_body": (9, 12), "dresses": (6,)}
N_KEYPOINTS = 18
BODY25_TO_COCO18 = (0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18)
MASK_TOLERANCE = 48       # grey levels from 0 / 255 still counted as that value (JPEG ringing)
MASK_MAX_GREY = 0.05      # a mask with more pixels than this in between is not binary


def check_category(category: str) -> str:
    if category not in CATEGORY_LABELS:
        raise InputError(f"unknown category '{category}' (choose from {', '.join(CATEGORIES)})")
    return category


def load_binary_mask(path: str | Path, size: tuple[int, int] | None = None) -> np.ndarray:
    """A 0/255 mask file -> bool ``[H, W]`` (optionally resized to ``size`` = (H, W), nearest).
    Refuses grey or soft masks: a repaint region must be decided, not guessed."""
    path = Path(path)
    values = np.asarray(load_image(path).convert("L"), dtype=np.int16)
    grey = (values > MASK_TOLERANCE) & (values < 255 - MASK_TOLERANCE)
    if grey.mean() > MASK_MAX_GREY:
        raise InputError(f"{path}: mask is not binary ({100 * grey.mean():.1f}% of pixels are neither black nor "
                         "white); threshold it to 0/255 first")
    mask = values >= 128
    if size is not None and mask.shape != tuple(size):
        mask = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize((size[1], size[0]),
                                                                       Image.Resampling.NEAREST)) > 0
    return mask


def load_parse(path: str | Path, size: tuple[int, int] | None = None,
               to_lip: tuple[int, ...] | None = None) -> np.ndarray:
    """A label PNG (palette or grey) -> uint8 LIP labels ``[H, W]``. ``to_lip`` maps another label set
    (Dress Code's) onto LIP's; labels outside the file's set are refused."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: parsing file not found")
    try:
        with Image.open(path) as handle:
            if handle.mode not in ("P", "L"):
                raise InputError(f"{path}: parsing must be a palette or grey label image, not mode {handle.mode}")
            image = handle.copy()
    except OSError as error:
        raise InputError(f"{path}: corrupt parsing image ({error})") from None
    if size is not None and image.size != (size[1], size[0]):
        image = image.resize((size[1], size[0]), Image.Resampling.NEAREST)
    labels = np.asarray(image, dtype=np.uint8)
    known, name = (len(to_lip), "Dress Code") if to_lip is not None else (len(LIP_LABELS), "LIP")
    if labels.max() >= known:
        raise InputError(f"{path}: label {int(labels.max())} is not a {name} label (0..{known - 1})")
    return np.asarray(to_lip, dtype=np.uint8)[labels] if to_lip is not None else labels


def _dresscode_keypoints(path: Path, rows: object) -> np.ndarray:
    """Dress Code's ``{"keypoints": [[x, y, score, id] x 18]}``; undetected points have a negative
    position or score 0 (kept at confidence 0)."""
    try:
        points = np.asarray(rows, dtype=np.float32)
    except (TypeError, ValueError):
        raise InputError(f"{path}: 'keypoints' must be a list of [x, y, score, id] rows") from None
    if points.ndim != 2 or points.shape[1] != 4:
        raise InputError(f"{path}: 'keypoints' must be a list of [x, y, score, id] rows")
    if len(points) != N_KEYPOINTS:
        raise InputError(f"{path}: {len(points)} keypoints; Dress Code files hold 18 (an undetected point is "
                         "written as -1, -1, 0, not left out)")
    if not np.isfinite(points).all():
        raise InputError(f"{path}: keypoints hold NaN or infinite values")
    out = points[:, :3].copy()
    out[(out[:, 0] < 0) | (out[:, 1] < 0), 2] = 0.0
    return out


def read_keypoints(path: str | Path) -> np.ndarray:
    """Keypoint JSON -> ``[18, 3]`` (x, y, confidence) in COCO-18 order. OpenPose files
    (``people[].pose_keypoints_2d``; BODY_25 reordered; the most confident person) or Dress Code's
    ``{"keypoints": [[x, y, score, id], ...]}``."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: keypoint file not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: malformed keypoint JSON ({error})") from None
    if isinstance(data, dict) and "keypoints" in data and "people" not in data:
        return _dresscode_keypoints(path, data["keypoints"])
    people = data.get("people") if isinstance(data, dict) else None
    if not people:
        raise InputError(f"{path}: no person in the keypoint file ('people' is missing or empty)")
    best: np.ndarray | None = None
    for person in people:
        flat = person.get("pose_keypoints_2d") if isinstance(person, dict) else None
        try:
            points = np.asarray(flat, dtype=np.float32).reshape(-1, 3)
        except (TypeError, ValueError):
            raise InputError(f"{path}: pose_keypoints_2d must be a flat list of x, y, confidence triples") from None
        if len(points) == 25:
            points = points[list(BODY25_TO_COCO18)]
        if len(points) != N_KEYPOINTS:
            raise InputError(f"{path}: {len(points)} keypoints; expected 18 (COCO) or 25 (BODY_25) "
                             "(an undetected point is written as 0, 0, 0, not left out)")
        if not np.isfinite(points).all():
            raise InputError(f"{path}: keypoints hold NaN or infinite values")
        if best is None or points[:, 2].sum() > best[:, 2].sum():
            best = points
    assert best is not None
    return best


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
