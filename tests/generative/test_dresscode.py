"""Dress Code layout: the synthetic writer and the reader (three categories, pair files, keypoints in
384 x 512 space, label maps in Dress Code's label set, garment masks), and its one-line refusals."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clipsuite.core.errors import InputError
from clipsuite.generative import synthetic
from clipsuite.generative.data import LIP_LABELS, load_parse
from clipsuite.generative.dresscode import DRESSCODE_LABELS, DRESSCODE_TO_LIP, DressCode


@pytest.fixture(scope="module")
def dresscode(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic.make_dresscode(tmp_path_factory.mktemp("dresscode"), n_train=2, n_test=2, seed=1)


def _copy(root: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(root, tmp_path / "dc"))


def test_label_map_translation_names() -> None:
    for dc, lip in zip(DRESSCODE_LABELS, DRESSCODE_TO_LIP, strict=True):
        expected = {"head": "face", "belt": "pants", "bag": "background"}.get(dc, dc)
        assert LIP_LABELS[lip] == expected


def test_layout_categories_and_samples(dresscode: Path) -> None:
    for category in ("upper_body", "lower_body", "dresses"):
        folder = dresscode / category
        assert len(list((folder / "images").glob("*_0.jpg"))) == 4
        assert len(list((folder / "images").glob("*_1.jpg"))) == 4
        assert {p.name for p in folder.glob("*.txt")} == {"train_pairs.txt", "test_pairs_paired.txt",
                                                           "test_pairs_unpaired.txt"}
    ds = DressCode(dresscode, "train")
    assert [f.category for f in ds.files] == ["upper_body"] * 2 + ["lower_body"] * 2 + ["dresses"] * 2
    worn = {"upper_body": "upper_clothes", "lower_body": "pants", "dresses": "dress"}
    for index, files in enumerate(ds.files):
        sample = ds[index]
        raw = np.asarray(Image.open(files.parse))
        assert raw.max() < len(DRESSCODE_LABELS)            # written in Dress Code's own label set
        # the worn garment (Dress Code label) is exactly the sample's garment region, and repainted
        region = sample["garment_region"][0].numpy() > 0
        assert np.array_equal(region, raw == DRESSCODE_LABELS.index(worn[files.category]))
        assert sample["mask"][0].numpy()[region].all()
        assert not sample["mask"][0].numpy()[raw == DRESSCODE_LABELS.index("head")].any()
        # keypoints are in 384 x 512 space: the nose heatmap peaks where the scaled point lies (64 x 48 image)
        rows = json.loads(files.keypoints.read_text())["keypoints"]
        x, y = rows[0][0] * 48 / 384, rows[0][1] * 64 / 512
        peak = divmod(int(sample["pose"][0].argmax()), 48)
        assert abs(peak[0] - y) <= 1 and abs(peak[1] - x) <= 1
        for k, row in enumerate(rows):   # undetected points (-1, -1, 0) give empty channels
            assert (sample["pose"][k].max() > 0.5) == (row[2] > 0)
    assert set(load_parse(ds.files[4].parse, None, DRESSCODE_TO_LIP).ravel()) <= set(DRESSCODE_TO_LIP)


def test_pair_files_and_category_choice(dresscode: Path) -> None:
    paired = DressCode(dresscode, "test", categories=["dresses"])
    unpaired = DressCode(dresscode, "test", paired=False, categories=["dresses"])
    assert [f.person.stem[:-2] for f in paired.files] == [f.garment.stem[:-2] for f in paired.files]
    assert [f.garment.name for f in unpaired.files] == [paired.files[1].garment.name, paired.files[0].garment.name]
    with pytest.raises(InputError, match="unknown category 'shoes'"):
        DressCode(dresscode, "train", categories=["upper_body", "shoes"])


def test_missing_mask_is_named(dresscode: Path, tmp_path: Path) -> None:
    root = _copy(dresscode, tmp_path)
    (root / "lower_body/cloth_mask/000005_1.png").unlink()
    with pytest.raises(InputError, match=r"lower_body/cloth_mask/000005_1\.jpg \(or \.png\): file not found"):
        DressCode(root, "train")


def test_grey_mask_is_refused_naming_it(dresscode: Path, tmp_path: Path) -> None:
    root = _copy(dresscode, tmp_path)
    ramp = np.tile(np.linspace(0, 255, 48, dtype=np.uint8), (64, 1))
    Image.fromarray(ramp).save(root / "dresses/cloth_mask/000009_1.png")
    ds = DressCode(root, "train", categories=["dresses"])
    ds[0]
    with pytest.raises(InputError, match=r"dresses/cloth_mask/000009_1\.png: mask is not binary"):
        ds[1]


def test_keypoints_with_missing_points_are_refused(dresscode: Path, tmp_path: Path) -> None:
    root = _copy(dresscode, tmp_path)
    path = root / "upper_body/keypoints/000000_2.json"
    rows = json.loads(path.read_text())["keypoints"]
    path.write_text(json.dumps({"keypoints": rows[:15]}))
    with pytest.raises(InputError, match=r"000000_2\.json: 15 keypoints; Dress Code files hold 18"):
        DressCode(root, "train", categories=["upper_body"])[0]
    path.write_text(json.dumps({"keypoints": [row[:3] for row in rows]}))
    with pytest.raises(InputError, match=r"000000_2\.json: 'keypoints' must be a list of \[x, y, score, id\]"):
        DressCode(root, "train", categories=["upper_body"])[0]


def test_label_outside_the_set_and_bad_pair_lines(dresscode: Path, tmp_path: Path) -> None:
    root = _copy(dresscode, tmp_path)
    Image.fromarray(np.full((64, 48), 18, np.uint8)).save(root / "upper_body/label_maps/000001_4.png")
    with pytest.raises(InputError, match=r"000001_4\.png: label 18 is not a Dress Code label \(0\.\.17\)"):
        DressCode(root, "train", categories=["upper_body"])[1]
    (root / "lower_body/train_pairs.txt").write_text("000004_1.jpg 000004_0.jpg\n")
    with pytest.raises(InputError, match=r"lower_body/train_pairs\.txt: '000004_1\.jpg 000004_0\.jpg' is not a Dress"):
        DressCode(root, "train")
    shutil.rmtree(root / "dresses/keypoints")
    with pytest.raises(InputError, match=r"dresses/keypoints: folder not found \(not a Dress Code layout\)"):
        DressCode(root, "train", categories=["dresses"])
