"""Scene index and search: tile geometry in the index, hits on the tiles holding the queried content,
GeoJSON valid for geopandas with coordinates from the raster's transform."""

from __future__ import annotations

import geopandas
import numpy as np
import pytest
import rasterio
import torch
from pyproj import Transformer

from clipsuite.core.errors import InputError
from clipsuite.core.models import load_model
from clipsuite.remote import synthetic
from clipsuite.remote.scenes import SceneIndexConfig, build_scene_index
from clipsuite.remote.search import search_by_image, search_scenes, write_search_results
from clipsuite.remote.tiling import TileSpec

# the synthetic chips' display mapping (reflectance 0-0.35 -> 0-1): tiles and queries read alike
CONFIG = SceneIndexConfig(tile=TileSpec(size=64), stretch=None, scale=1 / 3500, num_workers=0, progress=False,
                          bands=["B04", "B03", "B02"])


@pytest.fixture(scope="module")
def clip():
    return load_model("tiny-multilingual", device="cpu", precision="fp32")


@pytest.fixture(scope="module")
def index(tmp_path_factory, clip):
    root = tmp_path_factory.mktemp("scene_index")
    cells = [[None, "solar_farm", "forest", "river"], [None, "desert", "solar_farm", "residential"],
             [None, "farmland", "river", "forest"]]
    layout = synthetic.write_scene(root / "scenes" / "a.tif", rows=3, cols=4, cell=64, cells=cells)
    result = build_scene_index(clip, [root / "scenes"], root / "index", CONFIG, model_spec="tiny-multilingual")
    return layout, result


def test_index_counts_tiles_and_skips_nodata(index):
    layout, result = index
    assert (result.tiles, result.skipped_nodata, result.scenes) == (9, 3, 1)
    assert (result.index_dir / "scenes.json").is_file()
    assert (result.index_dir.with_name("index.shards") / "shard-00000-of-00001.safetensors").is_file()


def test_image_query_hits_the_tiles_holding_that_content(index, clip):
    layout, result = index
    rng = np.random.default_rng(123)  # a new chip, not one of the indexed tiles
    for kind in ("solar_farm", "river", "forest"):
        chip = np.clip(synthetic.render(kind, 64, rng)[[2, 1, 0]] / 0.35, 0, 1)
        hits = search_by_image(result.index_dir, torch.from_numpy(chip)[None], [kind], top=2, clip=clip)[0]
        assert {(h.tile["row"], h.tile["col"]) for h in hits} == set(layout.where(kind)), kind


def test_tile_bounds_follow_the_raster_transform(index, clip):
    layout, result = index
    hits = search_scenes(result.index_dir, ["一座有成排面板的太阳能电站"], top=9, clip=clip)[0]
    assert len(hits) == 9
    with rasterio.open(layout.path) as ds:
        for hit in hits:
            col_off, row_off, width, height = hit.tile["window"]
            left, top = ds.transform @ (col_off, row_off)
            right, bottom = ds.transform @ (col_off + width, row_off + height)
            assert hit.tile["bounds"] == pytest.approx([left, bottom, right, top])
            assert (col_off, row_off) == (hit.tile["col"] * 64, hit.tile["row"] * 64)


def test_geojson_is_valid_for_geopandas_in_wgs84_and_scene_crs(index, clip, tmp_path):
    layout, result = index
    hits = search_scenes(result.index_dir, ["a solar farm with rows of panels"], top=3, clip=clip)[0]
    out = write_search_results(hits, CONFIG, tmp_path / "wgs84")
    frame = geopandas.read_file(out / "hits.geojson")
    assert frame.crs.to_epsg() == 4326 and len(frame) == 3
    assert list(frame["rank"]) == [1, 2, 3] and np.all(np.diff(frame["score"]) <= 1e-6)
    to_wgs84 = Transformer.from_crs("EPSG:32633", "EPSG:4326", always_xy=True)
    left, bottom, right, top = hits[0].tile["bounds"]
    lon, lat = to_wgs84.transform(left, bottom)
    minx, miny, _, _ = frame.geometry.iloc[0].bounds
    assert (minx, miny) == pytest.approx((lon, lat), abs=2e-4)  # a 640 m tile: corners ~1e-4 deg apart
    assert 14.9 < lon < 15.1 and 45.0 < lat < 45.2
    for i in range(3):
        assert (out / frame["thumbnail"].iloc[i]).is_file()
    assert "thumbnails/0000.png" in (out / "index.html").read_text(encoding="utf-8")
    native = geopandas.read_file(write_search_results(hits, CONFIG, tmp_path / "utm", crs="scene") / "hits.geojson")
    assert native.crs.to_epsg() == 32633
    assert native.geometry.iloc[0].bounds == pytest.approx(tuple(hits[0].tile["bounds"]))


def test_bands_must_fit_the_model(index, clip, tmp_path):
    layout, _ = index
    four = SceneIndexConfig(tile=TileSpec(size=64), bands=[1, 2, 3, 4], num_workers=0, progress=False)
    with pytest.raises(InputError, match=r"a.tif: 4 bands selected but the model takes 3"):
        build_scene_index(clip, [layout.path], tmp_path / "bad", four)
    assert not (tmp_path / "bad").exists()


def test_all_nodata_scene_is_refused(tmp_path, clip):
    empty = synthetic.write_scene(tmp_path / "empty.tif", rows=1, cols=2, cell=64, nodata_cols=2)
    with pytest.raises(InputError, match=r"every tile is nodata \(2 skipped\)"):
        build_scene_index(clip, [empty.path], tmp_path / "idx", CONFIG)
    assert not (tmp_path / "idx").exists()


def test_search_refuses_another_models_queries(scene, tmp_path):
    """--model overrides the index's recorded model only with the same weights: another model of the same
    width would score the tiles with queries from another embedding space (silently meaningless hits)."""
    clip = load_model("tiny-multilingual", device="cpu")
    index = tmp_path / "idx"
    build_scene_index(clip, [scene.path], index, SceneIndexConfig(tile=TileSpec(64), num_workers=0),
                      model_spec="tiny-multilingual")
    assert search_scenes(index, ["a forest"], 3, load_model("tiny-multilingual", device="cpu"))[0]
    other = load_model("tiny-multilingual", device="cpu")
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in other.model.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.05)
    with pytest.raises(InputError, match="built with model 'tiny-multilingual'"):
        search_scenes(index, ["a forest"], 3, other)
