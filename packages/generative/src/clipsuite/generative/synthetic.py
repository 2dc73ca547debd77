"""Small VITON-HD-like datasets: simple drawn figures wearing garments, in the real on-disk layout.

``make_vitonhd`` writes::

    {root}/{split}/image/00000_00.jpg            person (H x W, 4:3 portrait like 1024 x 768)
    {root}/{split}/cloth/00000_00.jpg            the garment alone, flat, on white
    {root}/{split}/cloth-mask/00000_00.jpg       its mask, 0 / 255 (JPEG, as VITON-HD ships it)
    {root}/{split}/image-parse-v3/00000_00.png   palette PNG of LIP labels (see ``data.LIP_LABELS``)
    {root}/{split}/openpose_json/00000_00_keypoints.json   OpenPose COCO-18 ``pose_keypoints_2d``
    {root}/{split}_pairs.txt                     "person.jpg cloth.jpg" per line (paired: same id)

Each person wears the garment of the same id, so paired reconstruction has a ground truth; the
garment in ``cloth/`` is the same shape and pattern drawn flat (what the warping stage must map onto
the body). Some ears are left undetected (confidence 0), as OpenPose does.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from clipsuite.generative.data import LIP_PALETTE

SKIN = (224, 172, 140)
HAIR = (60, 40, 30)
PANTS = (40, 50, 90)
BACKGROUND = (236, 236, 232)
COLOURS = ((200, 40, 40), (40, 140, 60), (40, 80, 200), (220, 180, 30), (150, 60, 170), (240, 120, 30))


def _pattern(size: tuple[int, int], top: float, bottom: float, colour: tuple[int, int, int],
             stripes: int) -> Image.Image:
    """The garment's fabric, laid out relative to the garment (top..bottom): a shade that darkens
    downwards and darker horizontal stripes, so a garment shows where each part of it went."""
    w, h = size
    y = (np.arange(h, dtype=np.float32)[:, None] - top) / max(bottom - top, 1.0)
    shade = np.clip(1.0 - 0.5 * y, 0.45, 1.0)
    stripe = (np.floor(np.clip(y, 0, 0.999) * stripes * 2) % 2 == 1) & (y >= 0) & (y <= 1)
    shade = np.where(stripe, shade * 0.55, shade)
    rgb = np.asarray(colour, dtype=np.float32)[None, None] * shade[..., None] * np.ones((1, w, 1), np.float32)
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))


def _garment_polygons(cx: float, top: float, bottom: float, half: float, sleeve: float, drop: float,
                      ) -> list[list[tuple[float, float]]]:
    """A T-shirt: torso quad plus two short sleeves."""
    torso = [(cx - half, top), (cx + half, top), (cx + half * 0.9, bottom), (cx - half * 0.9, bottom)]
    left = [(cx - half, top), (cx - half - sleeve, top + drop), (cx - half - sleeve * 0.6, top + drop * 1.5),
            (cx - half, top + drop * 0.9)]
    right = [(2 * cx - x, y) for x, y in left]  # mirror image
    return [torso, left, right]


def _draw_garment(size: tuple[int, int], polys: list[list[tuple[float, float]]], colour: tuple[int, int, int],
                  stripes: int, background: tuple[int, int, int]) -> tuple[Image.Image, Image.Image]:
    mask = Image.new("L", size, 0)
    md = ImageDraw.Draw(mask)
    for poly in polys:
        md.polygon(poly, fill=255)
    top, bottom = polys[0][0][1], polys[0][2][1]
    cloth = _pattern(size, top, bottom, colour, stripes)
    out = Image.new("RGB", size, background)
    out.paste(cloth, (0, 0), mask)
    return out, mask


def _person(rng: np.random.Generator, w: int, h: int, colour: tuple[int, int, int], stripes: int,
            ) -> tuple[Image.Image, Image.Image, list[float]]:
    cx = w / 2 + rng.uniform(-0.05, 0.05) * w
    sh_y = 0.25 * h + rng.uniform(-0.02, 0.02) * h
    half = (0.16 + rng.uniform(-0.02, 0.02)) * w
    hip_y = 0.58 * h + rng.uniform(-0.02, 0.02) * h
    arm_dx = (0.25 + rng.uniform(-0.03, 0.03)) * w
    kp = {  # COCO-18 keypoints (x, y)
        0: (cx, 0.12 * h), 1: (cx, 0.22 * h), 2: (cx - half, sh_y), 5: (cx + half, sh_y),
        3: (cx - arm_dx, 0.42 * h), 6: (cx + arm_dx, 0.42 * h), 4: (cx - arm_dx - 0.02 * w, 0.56 * h),
        7: (cx + arm_dx + 0.02 * w, 0.56 * h), 8: (cx - 0.1 * w, hip_y), 11: (cx + 0.1 * w, hip_y),
        9: (cx - 0.1 * w, 0.77 * h), 12: (cx + 0.1 * w, 0.77 * h), 10: (cx - 0.1 * w, 0.95 * h),
        13: (cx + 0.1 * w, 0.95 * h), 14: (cx - 0.03 * w, 0.1 * h), 15: (cx + 0.03 * w, 0.1 * h),
        16: (cx - 0.07 * w, 0.12 * h), 17: (cx + 0.07 * w, 0.12 * h),
    }
    person = Image.new("RGB", (w, h), BACKGROUND)
    parse = Image.new("L", (w, h), 0)
    pd, ld = ImageDraw.Draw(person), ImageDraw.Draw(parse)
    limb = max(2, int(0.07 * w))
    for a, b in ((8, 9), (9, 10), (11, 12), (12, 13)):   # legs in pants
        pd.line((kp[a], kp[b]), fill=PANTS, width=limb + 2)
        ld.line((kp[a], kp[b]), fill=9, width=limb + 2)
    for a, b, c, label in ((2, 3, 4, 14), (5, 6, 7, 15)):                     # bare arms
        pd.line((kp[a], kp[b], kp[c]), fill=SKIN, width=limb)
        ld.line((kp[a], kp[b], kp[c]), fill=label, width=limb)
    r = 0.07 * h
    hx, hy = kp[0]
    pd.ellipse((hx - r, hy - r * 1.2, hx + r, hy + r), fill=HAIR)
    ld.ellipse((hx - r, hy - r * 1.2, hx + r, hy + r), fill=2)
    pd.ellipse((hx - r * 0.8, hy - r * 0.8, hx + r * 0.8, hy + r), fill=SKIN)
    ld.ellipse((hx - r * 0.8, hy - r * 0.8, hx + r * 0.8, hy + r), fill=13)
    polys = _garment_polygons(cx, sh_y, hip_y, half, 0.09 * w, 0.12 * h)
    garment, gmask = _draw_garment((w, h), polys, colour, stripes, BACKGROUND)
    person.paste(garment, (0, 0), gmask)
    parse.paste(5, (0, 0), gmask)
    keypoints: list[float] = []
    for index in range(18):
        x, y = kp[index]
        undetected = index in (16, 17) and rng.random() < 0.3
        keypoints += [0.0, 0.0, 0.0] if undetected else [round(float(x), 2), round(float(y), 2),
                                                         round(float(rng.uniform(0.6, 0.95)), 3)]
    return person, parse, keypoints


def _flat_cloth(w: int, h: int, colour: tuple[int, int, int], stripes: int) -> tuple[Image.Image, Image.Image]:
    polys = _garment_polygons(w / 2, 0.12 * h, 0.9 * h, 0.3 * w, 0.17 * w, 0.2 * h)
    return _draw_garment((w, h), polys, colour, stripes, (255, 255, 255))


def make_vitonhd(root: str | Path, n_train: int = 8, n_test: int = 4, size: tuple[int, int] = (64, 48),
                 seed: int = 0) -> Path:
    """Write a VITON-HD-layout dataset of ``n_train`` + ``n_test`` people at ``size`` = (H, W)."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    h, w = size
    index = 0
    for split, count in (("train", n_train), ("test", n_test)):
        folder = root / split
        for sub in ("image", "cloth", "cloth-mask", "image-parse-v3", "openpose_json"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        pairs = []
        for _ in range(count):
            name = f"{index:05d}_00"
            colour = COLOURS[int(rng.integers(len(COLOURS)))]
            stripes = int(rng.integers(2, 6))
            person, parse, keypoints = _person(rng, w, h, colour, stripes)
            cloth, cloth_mask = _flat_cloth(w, h, colour, stripes)
            person.save(folder / "image" / f"{name}.jpg", quality=95)
            cloth.save(folder / "cloth" / f"{name}.jpg", quality=95)
            cloth_mask.save(folder / "cloth-mask" / f"{name}.jpg", quality=95)
            palette = parse.convert("P")
            palette.putpalette(LIP_PALETTE)
            palette.save(folder / "image-parse-v3" / f"{name}.png")
            pose = {"version": 1.3, "people": [{"person_id": [-1], "pose_keypoints_2d": keypoints}]}
            (folder / "openpose_json" / f"{name}_keypoints.json").write_text(json.dumps(pose))
            pairs.append(f"{name}.jpg {name}.jpg")
            index += 1
        (root / f"{split}_pairs.txt").write_text("\n".join(pairs) + "\n")
    return root
