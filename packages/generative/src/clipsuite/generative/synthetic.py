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

from clipsuite.generative.data import LIP_LABELS, LIP_PALETTE

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


def _lower_polygons(cx: float, top: float, bottom: float, half: float) -> list[list[tuple[float, float]]]:
    """Trousers: two leg quads from the hips down."""
    left = [(cx - half, top), (cx, top), (cx - half * 0.25, bottom), (cx - half * 0.9, bottom)]
    return [left, [(2 * cx - x, y) for x, y in left]]


def _dress_polygons(cx: float, top: float, bottom: float, half: float) -> list[list[tuple[float, float]]]:
    return [[(cx - half, top), (cx + half, top), (cx + half * 1.4, bottom), (cx - half * 1.4, bottom)]]


def _person(rng: np.random.Generator, w: int, h: int, colour: tuple[int, int, int], stripes: int,
            category: str = "upper_body") -> tuple[Image.Image, Image.Image, list[float]]:
    """A figure wearing the patterned garment of ``category`` (LIP parse labels)."""
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
    legs = (SKIN, 16, 17) if category == "dresses" else (PANTS, 9, 9)   # bare legs under a dress
    for a, b, label in ((8, 9, 1), (9, 10, 1), (11, 12, 2), (12, 13, 2)):
        pd.line((kp[a], kp[b]), fill=legs[0], width=limb + 2)
        ld.line((kp[a], kp[b]), fill=legs[label], width=limb + 2)
    for a, b, c, label in ((2, 3, 4, 14), (5, 6, 7, 15)):                     # bare arms
        pd.line((kp[a], kp[b], kp[c]), fill=SKIN, width=limb)
        ld.line((kp[a], kp[b], kp[c]), fill=label, width=limb)
    r = 0.07 * h
    hx, hy = kp[0]
    pd.ellipse((hx - r, hy - r * 1.2, hx + r, hy + r), fill=HAIR)
    ld.ellipse((hx - r, hy - r * 1.2, hx + r, hy + r), fill=2)
    pd.ellipse((hx - r * 0.8, hy - r * 0.8, hx + r * 0.8, hy + r), fill=SKIN)
    ld.ellipse((hx - r * 0.8, hy - r * 0.8, hx + r * 0.8, hy + r), fill=13)
    top = _garment_polygons(cx, sh_y, hip_y, half, 0.09 * w, 0.12 * h)
    if category == "upper_body":
        polys, label = top, 5
    else:  # the patterned garment is worn below (or instead of) a plain top
        plain, pmask = _draw_garment((w, h), top, (235, 235, 235), 0, BACKGROUND)
        person.paste(plain, (0, 0), pmask)
        parse.paste(5, (0, 0), pmask)
        polys, label = ((_lower_polygons(cx, hip_y, 0.93 * h, 0.14 * w), 9) if category == "lower_body"
                        else (_dress_polygons(cx, sh_y, 0.8 * h, half), 6))
    garment, gmask = _draw_garment((w, h), polys, colour, stripes, BACKGROUND)
    person.paste(garment, (0, 0), gmask)
    parse.paste(label, (0, 0), gmask)
    keypoints: list[float] = []
    for index in range(18):
        x, y = kp[index]
        undetected = index in (16, 17) and rng.random() < 0.3
        keypoints += [0.0, 0.0, 0.0] if undetected else [round(float(x), 2), round(float(y), 2),
                                                         round(float(rng.uniform(0.6, 0.95)), 3)]
    return person, parse, keypoints


def _flat_cloth(w: int, h: int, colour: tuple[int, int, int], stripes: int, category: str = "upper_body",
                ) -> tuple[Image.Image, Image.Image]:
    polys = {"upper_body": lambda: _garment_polygons(w / 2, 0.12 * h, 0.9 * h, 0.3 * w, 0.17 * w, 0.2 * h),
             "lower_body": lambda: _lower_polygons(w / 2, 0.08 * h, 0.92 * h, 0.3 * w),
             "dresses": lambda: _dress_polygons(w / 2, 0.08 * h, 0.92 * h, 0.25 * w)}[category]()
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


def make_dresscode(root: str | Path, n_train: int = 4, n_test: int = 2, size: tuple[int, int] = (64, 48),
                   seed: int = 0, categories: tuple[str, ...] = ("upper_body", "lower_body", "dresses")) -> Path:
    """Write a Dress Code-layout dataset (see ``dresscode``): per category ``n_train`` + ``n_test``
    people at ``size`` = (H, W), grey label maps in Dress Code's label set, keypoints in its 384 x 512
    space, garment masks in ``cloth_mask/``, the three pair files."""
    from clipsuite.generative.dresscode import DRESSCODE_LABELS, DRESSCODE_TO_LIP, KEYPOINT_SPACE

    root = Path(root)
    rng = np.random.default_rng(seed)
    h, w = size
    # LIP -> Dress Code for the labels the figures use (the inverse of DRESSCODE_TO_LIP on them)
    to_dc = np.zeros(len(LIP_LABELS), dtype=np.uint8)
    for dc, lip in reversed(list(enumerate(DRESSCODE_TO_LIP))):
        to_dc[lip] = dc
    to_dc[LIP_LABELS.index("pants")] = DRESSCODE_LABELS.index("pants")
    to_dc[LIP_LABELS.index("background")] = 0
    ident = 0
    for category in categories:
        folder = root / category
        for sub in ("images", "keypoints", "label_maps", "cloth_mask"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        for split, count in (("train", n_train), ("test", n_test)):
            lines = []
            for _ in range(count):
                name = f"{ident:06d}"
                colour = COLOURS[int(rng.integers(len(COLOURS)))]
                stripes = int(rng.integers(2, 6))
                person, parse, flat = _person(rng, w, h, colour, stripes, category)
                cloth, cloth_mask = _flat_cloth(w, h, colour, stripes, category)
                person.save(folder / "images" / f"{name}_0.jpg", quality=95)
                cloth.save(folder / "images" / f"{name}_1.jpg", quality=95)
                cloth_mask.save(folder / "cloth_mask" / f"{name}_1.png")
                Image.fromarray(to_dc[np.asarray(parse)]).save(folder / "label_maps" / f"{name}_4.png")
                sy, sx = KEYPOINT_SPACE[0] / h, KEYPOINT_SPACE[1] / w
                rows = [[round(x * sx, 2), round(y * sy, 2), c, k] if c > 0 else [-1.0, -1.0, 0.0, k]
                        for k, (x, y, c) in enumerate(zip(flat[0::3], flat[1::3], flat[2::3], strict=True))]
                (folder / "keypoints" / f"{name}_2.json").write_text(json.dumps({"keypoints": rows}))
                lines.append(f"{name}_0.jpg {name}_1.jpg")
                ident += 1
            names = ["train_pairs.txt"] if split == "train" else ["test_pairs_paired.txt"]
            for file in names:
                (folder / file).write_text("\n".join(lines) + "\n")
            if split == "test":  # unpaired: each person with the next listed garment
                garments = [line.split()[1] for line in lines]
                unpaired = [f"{line.split()[0]} {garments[(i + 1) % len(garments)]}" for i, line in enumerate(lines)]
                (folder / "test_pairs_unpaired.txt").write_text("\n".join(unpaired) + "\n")
    return root
