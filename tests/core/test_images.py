"""Robust decoding: odd modes are converted, corrupt files and empty folders are named."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from clipsuite.core import InputError
from clipsuite.core.images import list_images, load_image


def test_grayscale_rgba_palette_and_16bit_become_rgb(tmp_path):
    Image.new("L", (8, 8), 100).save(tmp_path / "gray.png")
    Image.new("RGBA", (8, 8), (255, 0, 0, 0)).save(tmp_path / "clear.png")
    Image.new("P", (8, 8), 3).save(tmp_path / "pal.gif")
    ramp = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000)
    Image.fromarray(ramp).save(tmp_path / "deep.png")
    for name in ("gray.png", "clear.png", "pal.gif", "deep.png"):
        image = load_image(tmp_path / name)
        assert image.mode == "RGB" and image.size == (8, 8)
    # fully transparent pixels composite on white, 16-bit spans the full 8-bit range
    assert load_image(tmp_path / "clear.png").getpixel((0, 0)) == (255, 255, 255)
    deep = np.asarray(load_image(tmp_path / "deep.png"))
    assert deep.min() == 0 and deep.max() == 255


def test_corrupt_and_truncated_files_name_the_file(tmp_path):
    (tmp_path / "junk.jpg").write_bytes(b"not an image at all")
    with pytest.raises(InputError, match="junk.jpg"):
        load_image(tmp_path / "junk.jpg")
    Image.new("RGB", (64, 64), (1, 2, 3)).save(tmp_path / "whole.jpg")
    data = (tmp_path / "whole.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="cut.jpg"):
        load_image(tmp_path / "cut.jpg")


def test_empty_and_missing_folders(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no images found"):
        list_images(tmp_path / "empty")
    with pytest.raises(InputError, match="folder not found"):
        list_images(tmp_path / "missing")
