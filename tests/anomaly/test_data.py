from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from clipsuite.anomaly import synthetic
from clipsuite.anomaly.data import detect_format, load_dataset, load_mask
from clipsuite.core.errors import InputError


def _summary(categories):
    return {c.name: sorted((s.image.stem[-3:], s.label, s.mask is not None) for s in c.test) for c in categories}


def test_mvtec_layout(mvtec_root):
    categories = load_dataset(mvtec_root)
    assert [c.name for c in categories] == ["bottle", "carpet"]
    bottle = categories[0]
    assert len(bottle.train) == 4 and len(bottle.test) == 3 + 2 * 2
    assert bottle.has_masks
    anomalous = [s for s in bottle.test if s.label]
    assert {s.defect for s in anomalous} == {"scratch", "stain"}
    assert all(s.mask.name == f"{s.image.stem}_mask.png" for s in anomalous)
    assert load_dataset(mvtec_root / "carpet")[0].name == "carpet"  # a single category folder
    assert [c.name for c in load_dataset(mvtec_root, categories=["carpet"])] == ["carpet"]


def test_visa_and_meta_describe_the_same_samples(mvtec_root, tmp_path):
    reference = _summary(load_dataset(mvtec_root))
    visa = synthetic.write_visa(mvtec_root, tmp_path / "visa")
    assert detect_format(visa) == "visa"
    visa_categories = load_dataset(visa)
    assert [len(c.test) for c in visa_categories] == [len(v) for v in reference.values()]
    assert all(c.has_masks and len(c.train) == 4 for c in visa_categories)
    meta_root = tmp_path / "meta"
    shutil.copytree(mvtec_root, meta_root)
    synthetic.write_meta_json(meta_root)
    meta = load_dataset(meta_root, format="meta")
    assert _summary(meta) == reference
    assert all(len(c.train) == 4 for c in meta)


def test_plain_folder_with_and_without_masks(mvtec_root, tmp_path):
    folder = tmp_path / "plain"
    shutil.copytree(mvtec_root / "bottle" / "test", folder)
    (category,) = load_dataset(folder)
    assert not category.has_masks and sum(s.label for s in category.test) == 4
    shutil.copytree(mvtec_root / "bottle" / "ground_truth", folder / "masks")
    assert load_dataset(folder)[0].has_masks


def test_bad_layouts_name_the_file(mvtec_root, tmp_path):
    root = tmp_path / "broken"
    shutil.copytree(mvtec_root / "bottle", root / "bottle")
    (root / "bottle" / "test" / "crack").mkdir()
    with pytest.raises(InputError, match=r"crack: defect folder holds no images"):
        load_dataset(root)
    (root / "bottle" / "test" / "crack").rmdir()
    (root / "bottle" / "ground_truth" / "stain" / "001_mask.png").unlink()
    with pytest.raises(InputError, match=r"stain/001.png: no mask found"):
        load_dataset(root)
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "meta.json").write_text('{"test": {"a": [')
    with pytest.raises(InputError, match=r"meta.json: malformed JSON"):
        load_dataset(tmp_path / "m")
    with pytest.raises(InputError, match="not a known anomaly dataset layout"):
        load_dataset(tmp_path)


def test_mask_size_must_match_image(tmp_path):
    path = tmp_path / "m.png"
    Image.fromarray(np.full((10, 12), 255, np.uint8)).save(path)
    assert load_mask(path, (10, 12)).all()
    with pytest.raises(InputError, match=r"m.png: mask is 12x10 but its image is 16x16"):
        load_mask(path, (16, 16))
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(InputError, match="bad.png: not a readable mask"):
        load_mask(tmp_path / "bad.png", (4, 4))


def test_bad_visa_split_names_the_line(mvtec_root, tmp_path):
    visa = synthetic.write_visa(mvtec_root, tmp_path / "visa")
    split = visa / "split_csv" / "1cls.csv"
    lines = split.read_text().splitlines()
    fields = lines[3].split(",")
    split.write_text("\n".join(lines[:3] + [",".join([fields[0], "testing", *fields[2:]])] + lines[4:]) + "\n")
    with pytest.raises(InputError, match=r"1cls.csv line 4: bad split 'testing' or label"):
        load_dataset(visa)
    split.write_text("\n".join(lines[:2] + ["bottle,test,anomaly,bottle/Data/Images/Anomaly/gone.JPG,"]) + "\n")
    with pytest.raises(InputError, match=r"1cls.csv line 3: image not found: .*gone.JPG"):
        load_dataset(visa)
    split.write_text("object,split,label,image\n")
    with pytest.raises(InputError, match=r"1cls.csv line 1: no column 'mask'"):
        load_dataset(visa)


def test_an_unknown_category_is_refused_in_every_layout(mvtec_root, tmp_path):
    """--category once fell through: a KeyError traceback on VisA, an empty table on meta.json, and the
    whole dataset evaluated on a single MVTec category or a plain good/ folder."""
    visa = synthetic.write_visa(mvtec_root, tmp_path / "visa")
    meta_root = tmp_path / "meta"
    shutil.copytree(mvtec_root, meta_root)
    synthetic.write_meta_json(meta_root)
    for root in (mvtec_root, visa, meta_root, mvtec_root / "bottle", mvtec_root / "bottle" / "test"):
        with pytest.raises(InputError, match="unknown categories nope"):
            load_dataset(root, categories=["nope"])
    assert [c.name for c in load_dataset(visa, categories=["carpet"])] == ["carpet"]
    assert [c.name for c in load_dataset(meta_root, categories=["carpet", "bottle"])] == ["carpet", "bottle"]
    assert [c.name for c in load_dataset(mvtec_root / "bottle", categories=["bottle"])] == ["bottle"]


def test_malformed_meta_json_train_entries_are_refused(mvtec_root, tmp_path):
    """A 'train' entry without img_path was a KeyError traceback, and a section that is not a mapping of
    lists broke the same way; each is one line naming meta.json."""
    import json

    meta_root = tmp_path / "meta"
    shutil.copytree(mvtec_root, meta_root)
    meta_path = synthetic.write_meta_json(meta_root)
    good = json.loads(meta_path.read_text())
    cases = [("train", "bottle", [{"anomaly": 0}], "entry in 'bottle' lacks img_path"),
             ("train", "bottle", [{"img_path": "bottle/train/good/nope.png", "anomaly": 0}], "nope.png: image listed"),
             ("train", "bottle", {"img_path": "x"}, "'train' -> 'bottle' must be a list"),
             ("test", "carpet", "not a list", "'test' -> 'carpet' must be a list")]
    for section, name, value, message in cases:
        meta = json.loads(json.dumps(good))
        meta[section][name] = value
        meta_path.write_text(json.dumps(meta))
        with pytest.raises(InputError, match=message):
            load_dataset(meta_root, format="meta")
    meta = json.loads(json.dumps(good))
    meta["test"] = []
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(InputError, match="expected a 'test' section"):
        load_dataset(meta_root, format="meta")
    for entries in good["train"].values():  # an entry without "anomaly" in train is a normal image, as before
        for entry in entries:
            entry.pop("anomaly", None)
    meta_path.write_text(json.dumps(good))
    assert all(len(c.train) == 4 for c in load_dataset(meta_root, format="meta"))
