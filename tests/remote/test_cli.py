"""The clipsuite-remote CLI: one clear line and exit 2 for bad input, outputs for good input."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from clipsuite.remote import synthetic
from clipsuite.remote_app.main import app

runner = CliRunner()


def _run(*args: str):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def indexed(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    layout = synthetic.write_scene(root / "scene.tif", rows=2, cols=3, cell=32)
    result = _run("index", layout.path, "-o", root / "idx", "--tile-size", "32", "--bands", "B04,B03,B02",
                  "--workers", "0")
    assert result.exit_code == 0, result.output
    assert "indexed 4 tiles from 1 scene(s) (2 nodata tiles skipped)" in result.output
    return root


def test_search_writes_geojson_thumbnails_and_page(indexed):
    result = _run("search", indexed / "idx", "a winding blue river", "강이 땅을 가로질러 흐른다", "--top", "2",
                  "-o", indexed / "hits")
    assert result.exit_code == 0, result.output
    collection = json.loads((indexed / "hits" / "hits.geojson").read_text(encoding="utf-8"))
    assert len(collection["features"]) == 4
    assert {f["properties"]["query"] for f in collection["features"]} == {"a winding blue river",
                                                                         "강이 땅을 가로질러 흐른다"}
    assert (indexed / "hits" / "thumbnails" / "0003.png").is_file() and (indexed / "hits" / "index.html").is_file()


@pytest.mark.parametrize("args, message", [
    (["index", "missing.tif"], "missing.tif: not found"),
    (["index", "SCENE", "--bands", "B04,B03,B8A"], "no band named 'B8A'"),
    (["index", "SCENE", "--bands", "1,2,9"], "band 9 requested but the raster has 4"),
    (["index", "SCENE", "--tile-size", "32", "--overlap", "32"], "--overlap 32 must be smaller than --tile-size 32"),
    (["index", "SCENE", "--stretch", "98,2"], "--stretch '98,2': need 0 <= LOW < HIGH <= 100"),
    (["index", "CORRUPT"], "broken.tif: not a readable raster"),
    (["search", "nowhere", "forest"], "nowhere: index folder not found"),
    (["search", "IDX", "forest", "--crs", "utm"], "--crs 'utm': choose wgs84 or scene"),
])
def test_bad_input_gives_one_line_and_exit_2(indexed, args, message):
    corrupt = indexed / "broken.tif"
    corrupt.write_bytes(b"II*\x00" + b"\x00" * 64)
    substitutions = {"SCENE": str(indexed / "scene.tif"), "CORRUPT": str(corrupt), "IDX": str(indexed / "idx")}
    result = _run(*[substitutions.get(a, a) for a in args])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())
    assert "Traceback" not in result.output


def test_evaluate_and_classify_commands(tmp_path):
    captions, translations = synthetic.write_captions(tmp_path / "rsicd", per_class=2)
    result = _run("evaluate", captions, "--languages", "en,ko", "--translations", translations, "-o",
                  tmp_path / "eval.json")
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "eval.json").read_text(encoding="utf-8"))
    assert [(r["language"], r["convention"]) for r in rows] == [("en", "all"), ("en", "dedup"), ("ko", "all"),
                                                                ("ko", "dedup")]
    missing = _run("evaluate", captions, "--languages", "en,ko")
    assert missing.exit_code == 2 and "need a translations JSONL" in missing.output
    root = synthetic.write_class_folders(tmp_path / "classes", per_class=1, classes=("forest", "river"))
    result = _run("classify", root)
    assert result.exit_code == 0 and "2 images, 2 classes: top-1" in result.output


def test_train_runs_resumes_with_its_flags_and_refuses_bad_input(tmp_path):
    captions, translations = synthetic.write_captions(tmp_path / "rsicd", per_class=2)
    run = tmp_path / "run"
    first = _run("train", captions, "-o", run, "--languages", "en,zh", "--translations", translations,
                 "--max-steps", "2", "--batch-size", "8", "--lr", "5e-4", "--distill-weight", "0.5",
                 "--local-crops", "1", "-q")
    assert first.exit_code == 0, first.output
    assert "trained 2 steps" in first.output and (run / "open_clip_config.json").is_file()
    again = _run("train", "-o", run, "--resume", "--max-steps", "3", "-q")  # data, languages ... remembered
    assert again.exit_code == 0, again.output
    assert "resumed at step 2" in again.output and ", 1 of them now; final loss " in again.output
    differs = _run("train", "-o", run, "--resume", "--languages", "en", "--max-steps", "4")
    assert differs.exit_code == 2 and "--languages" in differs.output and "Traceback" not in differs.output
    exists = _run("train", captions, "-o", run)
    assert exists.exit_code == 2 and "already holds a training run" in exists.output

    broken = synthetic.write_class_folders(tmp_path / "ms", per_class=1, classes=("forest", "river"),
                                           multispectral=True)
    (broken / "river" / "river_0.tif").write_bytes(b"II*\x00" + b"\x00" * 64)
    table = tmp_path / "pairs.csv"
    table.write_text("image,caption\na.png,a forest\n")
    for args, message in [
        # a CSV has no splits: its "test split" would be the training rows scored as held out
        (["train", table, "-o", tmp_path / "o", "--eval-split", "test"], "pairs.csv: has no splits"),
        (["train", captions, "-o", tmp_path / "o", "--eval-split", "train"], "is the training split"),
        (["train", tmp_path / "nowhere.json", "-o", tmp_path / "o"], "nowhere.json: not found"),
        (["train", captions], "--output is required"),
        (["train", captions, "-o", tmp_path / "o", "--band-rule", "copy"], "--band-rule 'copy'"),
        (["train", captions, "-o", tmp_path / "o", "--teacher-decay", "0.99", "--teacher-decay-end", "0.9"],
         "--teacher-decay 0.99 and --teacher-decay-end 0.9"),
        (["train", captions, "-o", tmp_path / "o", "--teacher-temp-start", "0"], "--teacher-temp-start must be > 0"),
        (["train", captions, "-o", tmp_path / "o", "--languages", "en,nl", "--translations", translations],
         "no 'nl' translation of caption"),
        (["train", broken, "-o", tmp_path / "o", "--bands", "all"], "river_0.tif: not a readable raster"),
        (["train", broken, "-o", tmp_path / "o", "--bands", "B04,B03,B12"], "no band named 'B12'"),
    ]:
        result = _run(*args)
        assert result.exit_code == 2, (args, result.output)
        assert message in " ".join(result.output.split()), result.output
        assert "Traceback" not in result.output
        assert not (tmp_path / "o").exists()  # no partial output
