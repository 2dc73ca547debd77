"""Indexing scenes as delivered (issue 18) end to end: band files index like the stacked GeoTIFF (same tiles,
same vectors), scenes in two UTM zones and one across the antimeridian share one index and come back as
right WGS84 footprints, and bad deliveries stop the CLI in one line before any index is written."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import rasterio
import torch
from rasterio.warp import transform_geom
from safetensors.numpy import load_file
from typer.testing import CliRunner

from clipsuite.core.index_store import IndexStore
from clipsuite.core.models import load_model
from clipsuite.remote import synthetic
from clipsuite.remote import synthetic_deliveries as deliveries
from clipsuite.remote.scenes import SceneIndexConfig, build_scene_index
from clipsuite.remote.search import hits_geojson, search_by_image, tile_thumbnail
from clipsuite.remote.tiling import TileSpec
from clipsuite.remote_app.main import app

CONFIG = SceneIndexConfig(bands=["B04", "B03", "B02"], tile=TileSpec(size=64), num_workers=0, progress=False)


@pytest.fixture(scope="module")
def clip():
    return load_model("tiny-multilingual", device="cpu", precision="fp32")


@pytest.fixture(scope="module")
def stacked(tmp_path_factory):
    return synthetic.write_scene(tmp_path_factory.mktemp("stacked") / "scene.tif", rows=3, cols=4, cell=64)


def _run(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args])


def _rows(index_dir) -> list[dict]:
    """Every tile row of a scene index, from the store's columnar metadata."""
    store = IndexStore.open(index_dir)
    return store.metadata.rows(np.arange(len(store)))


def _vectors(index_dir):
    return load_file(str(index_dir.with_name(f"{index_dir.name}.shards") / "shard-00000-of-00001.safetensors"))


def test_band_files_index_like_the_stacked_geotiff(tmp_path, clip, stacked):
    deliveries.write_band_files(stacked.path, tmp_path / "bands")
    a = build_scene_index(clip, [stacked.path], tmp_path / "a", CONFIG)
    b = build_scene_index(clip, [tmp_path / "bands"], tmp_path / "b", CONFIG)
    assert (a.tiles, a.skipped_nodata, a.scenes) == (b.tiles, b.skipped_nodata, b.scenes) == (9, 3, 1)
    assert a.fill[0]["fraction"] == b.fill[0]["fraction"] == pytest.approx(0.25)  # the nodata column of cells
    def place(row: dict) -> dict:  # windows, bounds, crs, WGS84 bounds, valid fraction: all but id and path
        return {k: v for k, v in row.items() if k not in ("id", "path")}

    assert [place(r) for r in _rows(tmp_path / "a")] == [place(r) for r in _rows(tmp_path / "b")]
    for key, value in _vectors(tmp_path / "a").items():
        np.testing.assert_allclose(value, _vectors(tmp_path / "b")[key], atol=1e-6)
    # search re-opens the band set from the files the index recorded (thumbnails alike)
    hit = search_by_image(tmp_path / "b", torch.rand(1, 3, 64, 64), ["x"], top=1, clip=clip)[0][0]
    config_b = SceneIndexConfig.from_dict(json.loads((tmp_path / "b" / "scenes.json").read_text())["remote"])
    other = dict(hit.tile, path=str(stacked.path))
    assert np.array_equal(np.asarray(tile_thumbnail(hit.tile, config_b)), np.asarray(tile_thumbnail(other, CONFIG)))


def test_scenes_in_two_zones_and_across_the_antimeridian_search_together(tmp_path, clip):
    cells = [["forest", "river"], ["solar_farm", "desert"]]
    synthetic.write_scene(tmp_path / "s" / "z33.tif", rows=2, cols=2, cell=64, nodata_cols=0, cells=cells)
    synthetic.write_scene(tmp_path / "s" / "z34.tif", rows=2, cols=2, cell=64, nodata_cols=0, cells=cells,
                          crs="EPSG:32634")
    # UTM 60N east of its zone: 180 degrees runs through this scene (easting ~736 km at 45 N)
    synthetic.write_scene(tmp_path / "s" / "z60.tif", rows=2, cols=2, cell=64, nodata_cols=0, cells=cells,
                          crs="EPSG:32660", origin=(736_120.0, 4_988_000.0))
    result = build_scene_index(clip, [tmp_path / "s"], tmp_path / "idx", CONFIG)
    assert (result.tiles, result.scenes) == (12, 3)
    hits = search_by_image(tmp_path / "idx", torch.rand(1, 3, 64, 64), ["x"], top=12, clip=clip)[0]
    collection = hits_geojson(hits)
    assert {h.tile["crs"] for h in hits} == {"EPSG:32633", "EPSG:32634", "EPSG:32660"}
    crossing = 0
    for hit, feature in zip(hits, collection["features"]):
        left, bottom, right, top = hit.tile["bounds"]
        with rasterio.open(hit.tile["path"]) as ds:  # the window, placed by the raster's own transform
            col, row, width, height = hit.tile["window"]
            assert (left, top) == pytest.approx(ds.transform * (col, row))
            assert (right, bottom) == pytest.approx(ds.transform * (col + width, row + height))
        ring = [[left, bottom], [right, bottom], [right, top], [left, top], [left, bottom]]
        expected = transform_geom(hit.tile["crs"], "EPSG:4326", {"type": "Polygon", "coordinates": [ring]})
        assert feature["geometry"] == expected
        lons = [p[0] for part in _parts(feature["geometry"]) for p in part[0]]
        lats = [p[1] for part in _parts(feature["geometry"]) for p in part[0]]
        assert all(-180 <= x <= 180 for x in lons) and all(44.9 < y < 45.2 for y in lats)
        zone = {"EPSG:32633": 15.0, "EPSG:32634": 21.0}.get(hit.tile["crs"])
        if zone is not None:  # the zone's central meridian: 500 km easting
            assert all(abs(x - zone) < 0.05 for x in lons)
        elif feature["geometry"]["type"] == "MultiPolygon":  # RFC 7946: split at 180, one part each side
            crossing += 1
            sides = [max(p[0] for p in part[0]) for part in feature["geometry"]["coordinates"]]
            assert sorted(np.sign(sides)) == [-1, 1]
            assert all(abs(abs(p[0]) - 180) < 0.05 for part in _parts(feature["geometry"]) for p in part[0])
    assert crossing == 2  # 180 degrees runs through the middle of the z60 scene's left column of tiles
    assert result.fill and all(record["fraction"] == 0.0 for record in result.fill)


def _parts(geometry):
    return [geometry["coordinates"]] if geometry["type"] == "Polygon" else geometry["coordinates"]


def test_cli_indexes_a_band_folder_and_says_how_much_fill(tmp_path, stacked):
    deliveries.write_band_files(stacked.path, tmp_path / "bands")
    result = _run("index", tmp_path / "bands", "-o", tmp_path / "idx", "--bands", "red,green,blue",
                  "--tile-size", "64", "--workers", "0")
    assert result.exit_code == 0, result.output
    assert "indexed 9 tiles from 1 scene(s)" in result.output
    assert "T33TWM_20230615T100031: 25.0 % fill (nodata 0 from the file)" in " ".join(result.output.split())
    # a Landsat folder: collar without a nodata tag, the MTL's scaling, nir by the name users type
    landsat = deliveries.write_landsat(stacked.path, tmp_path / "landsat")
    result = _run("index", landsat, "-o", tmp_path / "idx_ls", "--bands", "nir,red,green", "--tile-size", "32",
                  "--workers", "0")
    assert result.exit_code == 0, result.output
    line = " ".join(result.output.split())
    assert "% fill (no nodata tag: 0 in every band); scaling from LC08_L1TP_190030_20230615_20230620_02_T1_MTL.txt" \
        in line
    stored = json.loads((tmp_path / "idx_ls" / "scenes.json").read_text())
    assert stored["fill"][0]["fraction"] > 0.4 and stored["remote"]["bands"] == ["nir", "red", "green"]
    rows = _rows(tmp_path / "idx_ls")
    assert rows and all(r["valid_fraction"] >= 0.5 for r in rows)


def test_cli_refuses_broken_deliveries_in_one_line(tmp_path, stacked):
    bands = deliveries.write_band_files(stacked.path, tmp_path / "bands", coarse=())
    safe = deliveries.write_safe(stacked.path, tmp_path / "safe")
    shutil.rmtree(safe / "GRANULE")
    item = deliveries.write_stac_item(bands, tmp_path / "item.json", missing=("B04",))
    crs = tmp_path / "crs"
    crs.mkdir()
    for band in ("B02", "B03"):
        shutil.copy(bands[band], crs / f"X_{band}.tif")
    with rasterio.open(bands["B04"]) as src:
        profile, pixels = {**src.profile, "crs": "EPSG:32634"}, src.read()
    with rasterio.open(crs / "X_B04.tif", "w", **profile) as dst:
        dst.write(pixels)
    cases = [((tmp_path / "bands", "--nodata", "abc"), "--nodata 'abc': not a number"),
             ((safe,), "a .SAFE folder without granules"),
             ((item,), "asset 'red' file not found"),
             ((crs,), "X_B04.tif: band B04 is in EPSG:32634"),
             ((tmp_path / "bands", "--bands", "B8A,B03,B02"), "no band named 'B8A'"),
             ((str(tmp_path / "nothing" / "*_B*.tif"),), "no files match")]
    for args, message in cases:
        out = tmp_path / "idx"
        result = _run("index", *args, "-o", out)
        assert result.exit_code == 2, (args, result.output)
        assert message in " ".join(result.output.split()) and len(result.output.strip().splitlines()) == 1, \
            result.output
        assert not out.exists() and not out.with_name("idx.shards").exists()


def test_classify_leaves_out_fill_pictures(tmp_path, clip):
    from PIL import Image

    from clipsuite.remote.evaluate import zero_shot_classify

    folders = synthetic.write_class_folders(tmp_path / "classes", per_class=2, size=32,
                                            classes=("forest", "river"))
    Image.new("RGB", (32, 32)).save(folders / "forest" / "collar.png")  # a chip cut from a collar: all 0
    plain = zero_shot_classify(clip, folders)
    kept = zero_shot_classify(clip, folders, nodata=0)
    assert (plain["images"], kept["images"]) == (5, 4) and kept["fill"] == [str(folders / "forest" / "collar.png")]
    result = _run("classify", folders, "--nodata", "0", "-o", tmp_path / "out.json")
    assert result.exit_code == 0, result.output
    assert "4 images, 2 classes" in result.output and "left out 1 fill image(s) (every pixel 0)" in result.output
    bad = _run("classify", folders, "--nodata", "zero")
    assert bad.exit_code == 2 and "--nodata 'zero': not a number" in bad.output


def test_broken_deliveries_are_refused_before_torch_is_imported(tmp_path, stacked, before_torch):
    safe = deliveries.write_safe(stacked.path, tmp_path / "safe")
    shutil.rmtree(safe / "GRANULE")
    bands = deliveries.write_band_files(stacked.path, tmp_path / "bands", coarse=())
    for argv in (["index", str(safe), "-o", str(tmp_path / "idx")],
                 ["index", str(tmp_path / "bands"), "-o", str(tmp_path / "idx"), "--bands", "B05,B04,B03"],
                 ["index", str(bands["B04"].parent), "-o", str(tmp_path / "idx"), "--nodata", "x"]):
        report, lines = before_torch("clipsuite.remote_app.main", argv)
        assert report == {"code": 2, "torch": False, "open_clip": False}, lines
        assert len(lines) == 1, lines
