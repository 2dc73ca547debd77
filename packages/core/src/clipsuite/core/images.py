"""Robust image decoding and folder listing.

Real folders hold grayscale, RGBA, palette, CMYK and 16-bit files next to ordinary JPEGs: they are
converted, not rejected. A file that cannot be decoded raises ``InputError`` naming it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import IO

import numpy as np
from PIL import Image, UnidentifiedImageError

from clipsuite.core.errors import InputError, first_line

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif"})


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB; 16-bit and float images are rescaled by their range."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float32)
        low, high = float(array.min()), float(array.max())
        scaled = (array - low) / (high - low) * 255.0 if high > low else np.zeros_like(array)
        return Image.fromarray(scaled.astype(np.uint8)).convert("RGB")
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        # Composite on white: transparent regions of product shots are background.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def decode_image_from(source: str | os.PathLike[str] | IO[bytes], name: object) -> Image.Image:
    """Decode a file path or binary stream fully into RGB, or raise ``InputError`` naming ``name``."""
    try:
        with Image.open(source) as handle:
            handle.load()
            return to_rgb(handle)
    except UnidentifiedImageError:
        raise InputError(f"{name}: not a readable image (unknown or corrupt format)") from None
    except (OSError, ValueError, SyntaxError) as error:
        reason = first_line(error, empty="truncated")
        raise InputError(f"{name}: corrupt image ({reason})") from None


def load_image(path: str | os.PathLike[str]) -> Image.Image:
    """Decode ``path`` fully into an RGB image, or raise ``InputError`` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: image file not found")
    return decode_image_from(path, path)


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def list_images(folder: str | os.PathLike[str], recursive: bool = True) -> list[Path]:
    """Sorted image files below ``folder``; an empty folder is an error, not an empty result."""
    folder = Path(folder)
    if not folder.exists():
        raise InputError(f"{folder}: folder not found")
    if folder.is_file():
        return [folder]
    pattern = "**/*" if recursive else "*"
    files = sorted(p for p in folder.glob(pattern) if p.is_file() and is_image_file(p))
    if not files:
        raise InputError(f"{folder}: no images found (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    return files


def expand_image_inputs(inputs: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Files stay as they are; folders expand to the images below them."""
    paths: list[Path] = []
    for item in inputs:
        path = Path(item)
        paths.extend(list_images(path) if path.is_dir() else [path])
    return paths
