"""Dassl splits, K-shot draws, base-to-novel, and the errors bad splits must give."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clipsuite.core.adapt.fewshot_data import base_novel, few_shot, load_class_folders, load_split
from clipsuite.core.errors import InputError
from clipsuite.core.synthetic import class_names


def test_split_reads_classes_in_label_order(shapes_split: Path) -> None:
    split = load_split(shapes_split)
    assert split.class_names == class_names()
    assert len(split.train) == 16 * 12 and len(split.test) == 8 * 12
    assert all(item.path.is_file() for item in split.train[:5])


def test_k_shot_draw_is_seeded_and_balanced(shapes_split: Path) -> None:
    split = load_split(shapes_split)
    a, b, c = few_shot(split, 4, seed=1), few_shot(split, 4, seed=1), few_shot(split, 4, seed=2)
    assert [i.path for i in a.train] == [i.path for i in b.train]
    assert [i.path for i in a.train] != [i.path for i in c.train]
    counts = [sum(i.label == label for i in a.train) for label in range(12)]
    assert counts == [4] * 12
    assert len(a.val) == 12 * 4 and len(few_shot(split, 2, seed=1).val) == 12 * 2  # min(K, 4) per class
    assert len(few_shot(split, 16, seed=1).val) == 12 * 4
    assert a.test == split.test


def test_validation_drawn_from_unused_training_images_when_split_has_none(tmp_path: Path, shapes_split: Path) -> None:
    data = json.loads(shapes_split.read_text())
    data.pop("val")
    path = shapes_split.parent / "no-val.json"
    path.write_text(json.dumps(data))
    draw = few_shot(load_split(path), 4, seed=0)
    assert len(draw.val) == 12 * 4 and not set(draw.val) & set(draw.train)


def test_base_novel_relabels(shapes_split: Path) -> None:
    split = load_split(shapes_split)
    base, novel = base_novel(split, "base"), base_novel(split, "novel")
    assert base.class_names == split.class_names[:6] and novel.class_names == split.class_names[6:]
    assert {i.label for i in novel.train} == set(range(6))
    assert all(novel.class_names[i.label] == i.class_name for i in novel.test)


def test_class_folders(tmp_path: Path, shapes_split: Path) -> None:
    split = load_split(shapes_split)
    for item in split.train[:24]:
        folder = tmp_path / item.class_name.replace(" ", "_")
        folder.mkdir(exist_ok=True)
        (folder / item.path.name).write_bytes(item.path.read_bytes())
    loaded = load_class_folders(tmp_path, test_fraction=0.5)
    assert loaded.class_names == sorted({i.class_name for i in split.train[:24]})
    assert len(loaded.train) + len(loaded.test) == 24


def _write(split_path: Path, name: str, mutate) -> Path:  # type: ignore[no-untyped-def]
    data = json.loads(split_path.read_text())
    mutate(data)
    out = split_path.parent / name
    out.write_text(json.dumps(data))
    return out


@pytest.mark.parametrize("name, mutate, message", [
    ("missing.json", lambda d: d["train"][3].__setitem__(0, "images/nope.png"),
     "train[3]: image 'images/nope.png' not found"),
    ("range.json", lambda d: d["test"][0].__setitem__(1, 12), "test[0]"),
    ("negative.json", lambda d: d["train"][0].__setitem__(1, -1), "out of range"),
    ("names.json", lambda d: d["val"][1].__setitem__(2, "green circle"),
     "val[1] gives label 0 the name 'green circle'"),
    ("shape.json", lambda d: d["train"].__setitem__(2, ["images/x.png", 1]),
     "train[2]: expected [path, label, class name]"),
    ("label.json", lambda d: d["train"][0].__setitem__(1, "3"), "train[0]: label '3' is not an integer"),
])
def test_bad_splits_name_the_entry(shapes_split: Path, name: str, mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    path = _write(shapes_split, name, mutate)
    with pytest.raises(InputError, match=None) as error:
        load_split(path)
    assert message in str(error.value) and str(path) in str(error.value)
    assert "\n" not in str(error.value)


def test_malformed_json_and_too_many_shots(shapes_split: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"train": [["a.png", 0, "x"],')
    with pytest.raises(InputError, match="malformed JSON"):
        load_split(bad)
    with pytest.raises(InputError, match="class 'red circle' has 16 train images, fewer than the 20 shots"):
        few_shot(load_split(shapes_split), 20, seed=1)
