"""`--on-error skip|fail` for the folder commands (index, classify, leakage), as the core's embed and
zeroshot have it: skip by default, the skipped files listed and counted; fail stops with one line."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from clipsuite.core.errors import InputError
from clipsuite.core.models import load_model
from clipsuite.core.skipping import SkipLog
from clipsuite.remote import synthetic
from clipsuite.remote.evaluate import find_leakage, zero_shot_classify
from clipsuite.remote.scenes import SceneIndexConfig, build_scene_index
from clipsuite.remote.tiling import TileSpec
from clipsuite.remote_app.main import app

CORRUPT = b"II*\x00" + b"\x00" * 64  # a TIFF signature and nothing readable after it


def _run(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def clip():
    return load_model("tiny-multilingual", device="cpu", precision="fp32")


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    root = tmp_path_factory.mktemp("scenes_with_broken")
    good = synthetic.write_scene(root / "a_good.tif", rows=2, cols=3, cell=32)
    (root / "b_broken.tif").write_bytes(CORRUPT)
    data = good.path.read_bytes()  # a real GeoTIFF cut short: the header may open, its pixels cannot
    (root / "c_truncated.tif").write_bytes(data[: len(data) // 3])
    return root


def test_index_skips_unreadable_scenes_and_lists_them(scenes, clip, tmp_path):
    config = SceneIndexConfig(bands=["B04", "B03", "B02"], tile=TileSpec(32), num_workers=0, progress=False)
    result = build_scene_index(clip, [scenes], tmp_path / "idx", config, process_index=0, num_processes=1)
    assert result is not None and (result.scenes, result.tiles, result.skipped_nodata) == (1, 4, 2)
    assert sorted(s.path.rsplit("/", 1)[1] for s in result.skipped) == ["b_broken.tif", "c_truncated.tif"]
    assert all("not a readable raster" in s.reason for s in result.skipped)
    stored = json.loads((tmp_path / "idx" / "scenes.json").read_text())
    assert [p.rsplit("/", 1)[1] for p in stored["scenes"]] == ["a_good.tif"]
    assert len(stored["skipped_files"]) == 2
    strict = SceneIndexConfig(bands=["B04", "B03", "B02"], tile=TileSpec(32), num_workers=0, progress=False,
                              on_error="fail")
    with pytest.raises(InputError, match="b_broken.tif: not a readable raster"):
        build_scene_index(clip, [scenes], tmp_path / "idx_fail", strict, process_index=0, num_processes=1)
    assert not (tmp_path / "idx_fail").exists()
    only_broken = tmp_path / "only_broken"
    only_broken.mkdir()
    shutil.copy(scenes / "b_broken.tif", only_broken)
    with pytest.raises(InputError, match="none of the 1 scenes could be read"):
        build_scene_index(clip, [only_broken], tmp_path / "idx_none", config, process_index=0, num_processes=1)


def test_cli_index_says_how_many_and_which(scenes, tmp_path):
    result = _run("index", scenes, "-o", tmp_path / "idx", "--tile-size", "32", "--bands", "B04,B03,B02",
                  "--workers", "0")
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "indexed 4 tiles from 1 scene(s)" in text and "skipped 2 unreadable scenes:" in text
    assert "b_broken.tif: not a readable raster" in text and "c_truncated.tif" in text
    failed = _run("index", scenes, "-o", tmp_path / "idx2", "--tile-size", "32", "--bands", "B04,B03,B02",
                  "--workers", "0", "--on-error", "fail")
    assert failed.exit_code == 2 and "b_broken.tif: not a readable raster" in failed.output
    assert "Traceback" not in failed.output and not (tmp_path / "idx2").exists()
    bad = _run("index", scenes, "--on-error", "ignore")
    assert bad.exit_code == 2 and "--on-error 'ignore': choose skip or fail" in bad.output


def test_classify_and_leakage_skip_a_corrupt_geotiff(clip, tmp_path):
    root = synthetic.write_class_folders(tmp_path / "classes", per_class=2, classes=("forest", "river"))
    (root / "river" / "river_9.tif").write_bytes(CORRUPT)
    result = zero_shot_classify(clip, root)
    assert result["images"] == 4 and len(result["predictions"]) == 4
    assert [s["path"].rsplit("/", 1)[1] for s in result["skipped"]] == ["river_9.tif"]
    with pytest.raises(InputError, match="river_9.tif"):
        zero_shot_classify(clip, root, on_error="fail")
    out = tmp_path / "classify.json"
    cli = _run("classify", root, "-o", out)
    assert cli.exit_code == 0 and "4 images, 2 classes" in cli.output and "skipped 1 unreadable image" in cli.output
    assert json.loads(out.read_text())["skipped"][0]["path"].endswith("river_9.tif")
    assert _run("classify", root, "--on-error", "fail").exit_code == 2

    train, test = root / "forest", root / "river"
    shutil.copy(train / "forest_0.png", test / "copy_of_forest.png")
    log = SkipLog("skip")
    found = find_leakage(sorted(train.iterdir()), sorted(test.iterdir()), None, log=log)
    assert [(f["test"].rsplit("/", 1)[1], f["kind"]) for f in found] == [("copy_of_forest.png", "exact")]
    assert [s.path.rsplit("/", 1)[1] for s in log.skipped] == ["river_9.tif"]
    with pytest.raises(InputError, match="river_9.tif"):
        find_leakage(sorted(train.iterdir()), sorted(test.iterdir()))  # without a log: fail
    out = tmp_path / "leak.json"
    cli = _run("leakage", train, test, "-o", out)
    assert cli.exit_code == 0 and "1 leaked test image(s)" in cli.output and "skipped 1 unreadable image" in cli.output
    written = json.loads(out.read_text())
    assert len(written["leaked"]) == 1 and written["skipped"][0]["path"].endswith("river_9.tif")
    failed = _run("leakage", train, test, "--on-error", "fail")
    assert failed.exit_code == 2 and "river_9.tif" in failed.output
