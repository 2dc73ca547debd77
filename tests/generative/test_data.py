from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from clipsuite.core.errors import InputError
from clipsuite.generative.data import (
    BODY25_TO_COCO18,
    TryOnFiles,
    VitonHD,
    load_binary_mask,
    load_parse,
    load_sample,
    pose_heatmaps,
    read_keypoints,
    read_pairs,
    repaint_mask,
)


def test_vitonhd_layout_and_sample(vitonhd: Path) -> None:
    for sub in ("image", "cloth", "cloth-mask", "image-parse-v3", "openpose_json"):
        assert len(list((vitonhd / "train" / sub).iterdir())) == 6
    ds = VitonHD(vitonhd, "train")
    sample = ds[1]
    parse = load_parse(vitonhd / "train" / "image-parse-v3" / "00001_00.png")
    # every upper-clothes and arm pixel is repainted, the face and pants are not
    mask = sample["mask"][0].numpy() > 0
    assert mask[np.isin(parse, (5, 14, 15))].all()
    assert np.array_equal(mask, repaint_mask(parse, "upper_body", dilate=1))
    assert not mask[parse == 13].any() and mask[parse == 9].mean() < 0.2  # only the 1-px dilation touches pants
    # the masked person is the person outside the mask, zero (grey in [-1, 1]) inside
    assert torch.equal(sample["masked_image"], sample["image"] * (1 - sample["mask"]))
    assert set(sample["mask"].unique().tolist()) == {0.0, 1.0}


def test_unpaired_dresses_each_person_in_the_next_garment(vitonhd: Path) -> None:
    ds = VitonHD(vitonhd, "test", paired=False)
    assert [f.garment.stem for f in ds.files] == ["00007_00", "00008_00", "00006_00"]


def test_pose_heatmap_peaks_at_keypoints_and_skips_undetected() -> None:
    points = np.zeros((18, 3), dtype=np.float32)
    points[0] = (10, 20, 0.9)
    points[3] = (47, 63, 0.5)
    maps = pose_heatmaps(points, (64, 48), sigma=2.0)
    assert divmod(int(maps[0].argmax()), 48) == (20, 10)
    assert maps[0, 20, 10] == pytest.approx(1.0)
    assert maps[0, 20, 12] == pytest.approx(np.exp(-4 / 8), rel=1e-5)
    assert maps[1].abs().sum() == 0  # confidence 0: not detected
    # half resolution: the point lands on the matching cell centre
    half = pose_heatmaps(points, (32, 24), source_size=(64, 48), sigma=1.0)
    assert divmod(int(half[0].argmax()), 24) == (10, 5)


def test_body25_keypoints_are_reordered(tmp_path: Path) -> None:
    flat = []
    for k in range(25):
        flat += [float(k), float(k), 1.0]
    path = tmp_path / "p_keypoints.json"
    path.write_text(json.dumps({"people": [{"pose_keypoints_2d": flat}]}))
    points = read_keypoints(path)
    assert points[:, 0].tolist() == [float(k) for k in BODY25_TO_COCO18]
    assert points[8, 0] == 9.0  # COCO right hip is BODY_25 point 9 (8 is the mid hip)


@pytest.mark.parametrize("content, message", [
    ('{"people": []}', "no person"),
    ('{"people": [{"pose_keypoints_2d": [1, 2, 1, 3, 4, 1]}]}', "2 keypoints"),
    ('{"people": [{"pose_keypoints_2d": [1, 2]}]}', "triples"),
    ("{not json", "malformed keypoint JSON"),
])
def test_bad_keypoint_files_are_refused_with_their_name(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "x_keypoints.json"
    path.write_text(content)
    with pytest.raises(InputError, match=message) as info:
        read_keypoints(path)
    assert str(path) in str(info.value)


def test_grey_mask_is_refused_and_jpeg_mask_accepted(tmp_path: Path, vitonhd: Path) -> None:
    ramp = np.tile(np.linspace(0, 255, 48, dtype=np.uint8), (64, 1))
    Image.fromarray(ramp).save(tmp_path / "soft.png")
    with pytest.raises(InputError, match="soft.png: mask is not binary"):
        load_binary_mask(tmp_path / "soft.png")
    jpeg = load_binary_mask(vitonhd / "train" / "cloth-mask" / "00000_00.jpg")
    assert jpeg.dtype == bool and 0.2 < jpeg.mean() < 0.9


def test_unknown_category_and_empty_mask(vitonhd: Path, tmp_path: Path) -> None:
    folder = vitonhd / "train"
    files = TryOnFiles(folder / "image/00000_00.jpg", folder / "cloth/00000_00.jpg", category="hats",
                       parse=folder / "image-parse-v3/00000_00.png")
    with pytest.raises(InputError, match="unknown category 'hats'"):
        load_sample(files)
    Image.new("L", (48, 64), 0).save(tmp_path / "empty.png")
    files = TryOnFiles(folder / "image/00000_00.jpg", folder / "cloth/00000_00.jpg", mask=tmp_path / "empty.png")
    with pytest.raises(InputError, match="empty.png: the repaint mask .* is empty"):
        load_sample(files)


def test_garment_of_another_size_is_resized_with_a_note(vitonhd: Path, tmp_path: Path) -> None:
    folder = vitonhd / "train"
    Image.open(folder / "cloth/00000_00.jpg").resize((96, 128)).save(tmp_path / "big.jpg")
    loaded = load_sample(TryOnFiles(folder / "image/00000_00.jpg", tmp_path / "big.jpg",
                                    parse=folder / "image-parse-v3/00000_00.png",
                                    keypoints=folder / "openpose_json/00000_00_keypoints.json"))
    assert loaded.sample["cloth"].shape == (3, 64, 48)
    assert any("garment resized" in note for note in loaded.notes)


def test_repaint_mask_categories() -> None:
    parse = np.zeros((8, 8), dtype=np.uint8)
    parse[1:3] = 5
    parse[5:7] = 9
    assert repaint_mask(parse, "upper_body", dilate=0).sum() == 16
    assert repaint_mask(parse, "lower_body", dilate=0).sum() == 16
    assert repaint_mask(parse, "dresses", dilate=0).sum() == 32


def test_pairs_file_errors(tmp_path: Path) -> None:
    (tmp_path / "p.txt").write_text("a.jpg b.jpg\nc.jpg\n")
    with pytest.raises(InputError, match="line 2"):
        read_pairs(tmp_path / "p.txt")


def test_cli_names_match_the_library() -> None:
    from clipsuite.generative import components, data, names, train

    assert names.CATEGORIES == data.CATEGORIES and names.STAGES == train.STAGES
    assert tuple(components.SIZES) == names.PART_SIZES
