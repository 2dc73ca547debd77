"""The try-on sample's files as the user gives them, read and checked without torch: binary masks, LIP
human parsing, OpenPose / Dress Code keypoints (``data`` turns them into tensors).

Kept apart from ``data`` so that a command checks a bad file (an unreadable mask, malformed keypoint
JSON) in a fraction of a second, before torch is imported (``prechecks``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from clipsuite.core.errors import InputError
from clipsuite.core.images import load_image
from clipsuite.generative.names import check_category as check_category  # one check of a category, re-exported

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


def check_sample_files(person: Path, garment: Path, mask: Path | None = None, parse: Path | None = None,
                       keypoints: Path | None = None, garment_mask: Path | None = None) -> None:
    """Read each file of one try-on sample as ``data.load_sample`` will, so an unreadable picture, a grey
    mask, an unknown parsing label or malformed keypoint JSON is one ``InputError`` before torch is loaded."""
    load_image(person)
    load_image(garment)
    if parse is not None:
        load_parse(parse)
    for binary in (mask, garment_mask):
        if binary is not None:
            load_binary_mask(binary)
    if keypoints is not None:
        read_keypoints(keypoints)
