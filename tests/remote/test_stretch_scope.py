"""One colour mapping (issue 18): `train` stretches each chip on its own; an index built with a raster-trained
``--model`` stretches each tile on its own too (``--stretch-scope tile``), and the line it prints says how
the tiles' mapping compares with the chips'."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

from clipsuite.remote import synthetic
from clipsuite.remote.rasters import Scaling, Stretch, read_image
from clipsuite.remote.reading import describe, index_reading
from clipsuite.remote.tiling import TileSpec, iter_tiles


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    return synthetic.write_scene(tmp_path_factory.mktemp("scope") / "s.tif", rows=2, cols=3, cell=64)


def _run(folder, recorded):
    folder.mkdir()
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": {}, "remote_input": recorded}))
    return str(folder)


def test_per_tile_stretch_equals_the_training_chip_stretch(tmp_path, scene):
    tiles = list(iter_tiles(scene.path, ["B04", "B03", "B02"], TileSpec(64), Scaling(), Stretch(), per_tile=True))
    assert len(tiles) == 4
    for tile in tiles:  # the same window written as a chip and read as training reads chips
        col, row = int(tile.window.col_off), int(tile.window.row_off)
        chip = synthetic.write_scene(tmp_path / f"chip_{row}_{col}.tif", rows=1, cols=1, cell=64, nodata_cols=0,
                                     cells=[[scene.cells[row // 64][col // 64]]])
        with rasterio.open(scene.path) as src, rasterio.open(chip.path, "r+") as dst:
            dst.write(src.read(window=Window(col, row, 64, 64)))
        pixels, _ = read_image(chip.path, ["B04", "B03", "B02"], Scaling(), Stretch())
        np.testing.assert_allclose(tile.pixels, pixels, atol=1e-6)
    shared = list(iter_tiles(scene.path, ["B04", "B03", "B02"], TileSpec(64), Scaling(), Stretch()))
    assert not np.allclose(shared[0].pixels, tiles[0].pixels)  # one mapping per scene is another mapping


def test_index_with_a_raster_run_reads_tiles_as_chips_and_says_so(tmp_path, scene):
    run = _run(tmp_path / "run", {"bands": ["B04", "B03", "B02"], "scale": None, "offset": 0.0,
                                  "stretch": [2.0, 98.0], "tile_size": 64})
    reading = index_reading(run, [scene.path])
    assert reading.stretch_scope == "tile" and not reading.notes
    assert "each tile stretched on its own, as each training chip was" in describe(reading)
    scene_wide = index_reading(run, [scene.path], stretch_scope="scene")
    assert "--stretch-scope scene (trained: each chip stretched on its own)" in scene_wide.notes[0]
    assert "differs from training" in describe(scene_wide)
    trained_fill = _run(tmp_path / "fill", {"bands": ["B04", "B03", "B02"], "stretch": [2.0, 98.0], "nodata": 0})
    assert index_reading(trained_fill, [scene.path]).nodata == 0  # train --nodata 0: the index reads alike
    other = index_reading(trained_fill, [scene.path], nodata=65535.0)
    assert other.nodata == 65535.0 and "--nodata 65535 (trained: 0)" in other.notes[0]
    rgb = index_reading(_run(tmp_path / "rgb", {"tile_size": 64}), [scene.path])
    assert rgb.stretch_scope == "scene" and "its chips were 8-bit RGB pictures" in describe(rgb)
