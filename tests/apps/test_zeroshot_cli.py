"""`clipsuite zeroshot` and `clipsuite models` through the real CLI entry point."""

from __future__ import annotations

import csv

from PIL import Image
from typer.testing import CliRunner

from clipsuite.cli.main import app

runner = CliRunner()


def _images(folder, n=3):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.new("RGB", (40, 30), (80 * i, 40, 200)).save(folder / f"img{i}.png")
    return folder


def test_models_lists_presets():
    result = runner.invoke(app, ["models"])
    assert result.exit_code == 0, result.output
    for name in ("biomedclip", "tiny", "winclip"):
        assert name in result.output


def test_zeroshot_writes_csv_with_probabilities(tmp_path):
    folder = _images(tmp_path / "imgs")
    out = tmp_path / "preds.csv"
    result = runner.invoke(app, ["zeroshot", str(folder), "--classes", "red circle,blue square,cat",
                                 "--top-k", "2", "--output", str(out), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(open(out)))
    assert len(rows) == 3
    assert all(r["class_1"] in {"red circle", "blue square", "cat"} for r in rows)
    assert all(float(r["prob_1"]) >= float(r["prob_2"]) for r in rows)


def _assert_one_line_error(result, needle):
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    assert needle in result.output


def test_corrupt_image_is_skipped_and_listed_or_fails_with_on_error_fail(tmp_path):
    folder = _images(tmp_path / "imgs")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    out = tmp_path / "preds.csv"
    result = runner.invoke(app, ["zeroshot", str(folder), "--classes", "a,b", "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert "skipped 1 unreadable image: " in result.output and "broken.png" in result.output
    rows = list(csv.DictReader(open(out)))
    assert [row["path"].rsplit("/", 1)[-1] for row in rows] == ["img0.png", "img1.png", "img2.png", "broken.png"]
    assert [row["error"] == "" for row in rows] == [True, True, True, False]
    assert rows[3]["class_1"] == "" and "broken.png: not a readable image" in rows[3]["error"]
    out.unlink()
    result = runner.invoke(app, ["zeroshot", str(folder), "--classes", "a,b", "--output", str(out),
                                 "--on-error", "fail"])
    _assert_one_line_error(result, "broken.png")
    assert not out.exists()
    bad = runner.invoke(app, ["zeroshot", str(folder), "--classes", "a,b", "--on-error", "ignore"])
    _assert_one_line_error(bad, "on_error must be 'skip' or 'fail'")


def test_a_single_class_is_refused(tmp_path):
    folder = _images(tmp_path / "imgs", 1)
    for args in (["--classes", "cat"], ["--classes", "cat,"]):
        result = runner.invoke(app, ["zeroshot", str(folder), *args, "--model", "nope"])
        _assert_one_line_error(result, "give at least two classes, got 1 ('cat')")  # before the model is built
    names = tmp_path / "names.txt"
    names.write_text("cat\n\n")
    _assert_one_line_error(runner.invoke(app, ["zeroshot", str(folder), "--classes-file", str(names)]),
                           "scores 1.000 by construction")


def test_empty_folder_unknown_model_and_missing_classes(tmp_path):
    (tmp_path / "empty").mkdir()
    _assert_one_line_error(runner.invoke(app, ["zeroshot", str(tmp_path / "empty"), "--classes", "a,b"]),
                           "no images found")
    folder = _images(tmp_path / "imgs", 1)
    _assert_one_line_error(runner.invoke(app, ["zeroshot", str(folder), "--classes", "a,b", "--model", "nope"]),
                           "unknown model 'nope'")
    _assert_one_line_error(runner.invoke(app, ["zeroshot", str(folder)]), "give --classes")


def test_malformed_descriptions_json(tmp_path):
    folder = _images(tmp_path / "imgs", 1)
    bad = tmp_path / "cupl.json"
    bad.write_text('{"a": ["x"],')
    _assert_one_line_error(runner.invoke(app, ["zeroshot", str(folder), "--classes", "a,b",
                                               "--descriptions", str(bad)]), "malformed JSON")


def test_learned_adapter_classifies_through_zeroshot(tmp_path):
    from clipsuite.core.synthetic import write_shapes_split

    split = write_shapes_split(tmp_path / "shapes", {"train": 2, "val": 1, "test": 1}, seed=1)
    out = tmp_path / "adapt"
    trained = runner.invoke(app, ["adapt", "train", "--method", "linear-probe", "--split", str(split), "--shots", "2",
                                  "--output", str(out), "--device", "cpu"])
    assert trained.exit_code == 0, trained.output
    adapter = next(out.rglob("*.safetensors"))
    preds = tmp_path / "preds.csv"
    result = runner.invoke(app, ["zeroshot", str(tmp_path / "shapes" / "images"), "--adapter", str(adapter),
                                 "--output", str(preds), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(open(preds)))
    assert len(rows) == 12 * 4
    assert {r["class_1"] for r in rows} <= {"red circle", "red square", "red triangle", "green circle",
                                            "green square", "green triangle", "blue circle", "blue square",
                                            "blue triangle", "yellow circle", "yellow square", "yellow triangle"}
