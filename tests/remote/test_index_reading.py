"""`clipsuite-remote index --model RUN` reads tiles as the training run read its chips: bands, scaling,
stretch and tile size from the saved model's ``remote_input``; explicit flags that differ are noted
(other bands are refused), in one line each."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from clipsuite.core.errors import InputError
from clipsuite.remote import synthetic
from clipsuite.remote.rasters import SENTINEL2_13
from clipsuite.remote.reading import DEFAULT_STRETCH, DEFAULT_TILE, NOT_GIVEN, index_reading
from clipsuite.remote_app.main import app

RECORDED = {"bands": list(range(1, 14)), "scale": 1 / 3500, "offset": 0.0, "stretch": None, "tile_size": 32}


def _run(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    root = tmp_path_factory.mktemp("ms_scene")
    return synthetic.write_scene(root / "ms.tif", rows=2, cols=3, cell=32, bands=SENTINEL2_13).path


def _config_only(folder, recorded):
    folder.mkdir()
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": {}, "remote_input": recorded}))
    return str(folder)


def test_defaults_come_from_the_training_run(tmp_path, scene):
    run = _config_only(tmp_path / "run", RECORDED)
    reading = index_reading(run, [scene])
    assert reading.from_model and not reading.notes
    assert (reading.bands, reading.scale, reading.stretch, reading.tile_size) == (list(range(1, 14)), 1 / 3500,
                                                                                  None, 32)
    # a model that is not a training run keeps the plain defaults
    plain = index_reading("tiny-multilingual", [scene])
    assert not plain.from_model and (plain.bands, plain.stretch, plain.tile_size) == (None, DEFAULT_STRETCH,
                                                                                       DEFAULT_TILE)
    # the same bands by name (the 13-band order) are the same bands; explicit equal values give no note
    same = index_reading(run, [scene], bands=list(SENTINEL2_13), stretch=None, tile_size=32)
    assert not same.notes and same.bands == list(SENTINEL2_13)
    # differing scaling / stretch / tile size: used as given, noted in one line naming each flag
    other = index_reading(run, [scene], stretch=(2.0, 98.0), tile_size=64, offset=-1000.0)
    assert (other.stretch, other.tile_size, other.offset, other.scale) == ((2.0, 98.0), 64, -1000.0, 1 / 3500)
    assert len(other.notes) == 1
    for part in ("--stretch 2,98 (trained: none)", "--tile-size 64 (trained: 32)", "--s2-offset -1000 (trained: 0)"):
        assert part in other.notes[0]
    with pytest.raises(InputError, match=r"--bands B04,B03,B02: .* was trained on bands 1,2,3,4,5"):
        index_reading(run, [scene], bands=["B04", "B03", "B02"])
    # an RGB-chip run records only its chip size: bands/stretch stay the defaults
    rgb = index_reading(_config_only(tmp_path / "rgb", {"tile_size": 48}), [scene])
    assert (rgb.bands, rgb.stretch, rgb.tile_size) == (None, DEFAULT_STRETCH, 48)
    assert index_reading(run, [scene], tile_size=NOT_GIVEN).tile_size == 32


def test_cli_index_reads_as_the_model_was_trained(tmp_path, scene):
    from clipsuite.core.models import load_model

    model = load_model("tiny-multilingual", device="cpu", precision="fp32")
    model.adapt_input_bands(13, "repeat")
    model.config["remote_input"] = RECORDED
    model.save(tmp_path / "ms_model")
    out = tmp_path / "idx"
    result = _run("index", scene, "-o", out, "-m", tmp_path / "ms_model", "--workers", "0")
    assert result.exit_code == 0, result.output
    assert "reading as" in result.output and "tiles of 32 px" in result.output
    assert "indexed 4 tiles" in result.output  # 32 px cells, the nodata column skipped
    stored = json.loads((out / "scenes.json").read_text())["remote"]
    assert stored["bands"] == list(range(1, 14)) and stored["stretch"] is None and stored["tile"]["size"] == 32
    assert stored["scale"] == pytest.approx(1 / 3500)
    refused = _run("index", scene, "-o", tmp_path / "idx3", "-m", tmp_path / "ms_model", "--bands", "B04,B03,B02")
    assert refused.exit_code == 2 and "was trained on bands" in refused.output
    assert len(refused.output.strip().splitlines()) == 1 and not (tmp_path / "idx3").exists()
    noted = _run("index", scene, "-o", tmp_path / "idx4", "-m", tmp_path / "ms_model", "--stretch", "2,98",
                 "--workers", "0")
    assert noted.exit_code == 0, noted.output
    assert "note:" in noted.output and "--stretch 2,98 (trained: none)" in " ".join(noted.output.split())
