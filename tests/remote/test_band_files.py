"""Scenes as they are delivered (issue 18): one file per band at 10 and 20 m, a Sentinel-2 .SAFE tree, a
Landsat Collection 2 folder with a rotated 0 collar and no nodata tag, STAC items; each compared tile for
tile with the same pixels as one stacked GeoTIFF."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import rasterio
from rasterio.enums import Resampling
from rasterio.warp import reproject

from clipsuite.core.errors import InputError
from clipsuite.remote import synthetic
from clipsuite.remote import synthetic_deliveries as deliveries
from clipsuite.remote.fill import Fill, parse_nodata
from clipsuite.remote.rasters import Scaling, Stretch, read_window, resolve_bands, scene_statistics
from clipsuite.remote.scenes import check_scene_sets
from clipsuite.remote.sources import find_scene_sources, open_scene, scene_scaling
from clipsuite.remote.tiling import TileSpec, TilingStats, iter_tiles

RGB = ["B04", "B03", "B02"]


@pytest.fixture(scope="module")
def stacked(tmp_path_factory):
    return synthetic.write_scene(tmp_path_factory.mktemp("stacked") / "scene.tif", rows=3, cols=4, cell=64)


@pytest.fixture(scope="module")
def band_folder(tmp_path_factory, stacked):
    folder = tmp_path_factory.mktemp("bands")
    deliveries.write_band_files(stacked.path, folder)
    return folder


def _same_tiles(a, b) -> int:
    a, b = list(a), list(b)
    assert len(a) == len(b) > 0
    for x, y in zip(a, b):
        assert (x.row, x.col, x.window, x.bounds, x.crs) == (y.row, y.col, y.window, y.bounds, y.crs)
        np.testing.assert_array_equal(x.pixels, y.pixels)
        np.testing.assert_array_equal(x.valid, y.valid)
    return len(a)


def test_a_folder_of_band_files_is_one_scene(band_folder):
    scenes = find_scene_sources([band_folder])
    assert len(scenes) == 1  # not eight grey scenes
    scene = scenes[0]
    assert scene.kind == "band-files" and scene.names() == ["B02", "B03", "B04", "B05", "B08", "B8A", "B11", "B12"]
    assert scene.chosen(None) == RGB  # red, green, blue by the Sentinel-2 tile name's common names
    assert scene.chosen(["red", "nir", "b8a", 1]) == ["B04", "B08", "B8A", "B02"]
    # a quoted glob of the same files gives the same scene
    assert find_scene_sources([str(band_folder / "*_B*.tif")])[0].names() == scene.names()


@pytest.mark.parametrize("spec", [TileSpec(64), TileSpec(48, overlap=8), TileSpec(32, resolution=20.0)],
                         ids=["native", "overlap", "20m_tiles"])
def test_band_files_equal_the_stacked_geotiff_tile_for_tile(band_folder, stacked, spec):
    scene = find_scene_sources([band_folder])[0]
    for stretch in (Stretch(), None):
        stats_a, stats_b = TilingStats(), TilingStats()
        n = _same_tiles(iter_tiles(stacked.path, RGB, spec, stretch=stretch, stats=stats_a),
                        iter_tiles(scene, RGB, spec, stretch=stretch, stats=stats_b))
        assert n == stats_a.yielded and stats_a.skipped_nodata == stats_b.skipped_nodata > 0  # the nodata column


def test_bands_at_20m_are_read_onto_the_finest_chosen_grid(band_folder):
    scene = find_scene_sources([band_folder])[0]
    with open_scene(scene, ["B04", "B03", "B11"]) as mixed:
        assert mixed.res == (10.0, 10.0) and (mixed.width, mixed.height) == (256, 192)
        index = resolve_bands(mixed, ["B11"])[0]
        upsampled = mixed.read(index)
    with open_scene(scene, ["B8A", "B11", "B12"]) as coarse:  # only 20 m bands: a 20 m grid
        assert coarse.res == (20.0, 20.0) and (coarse.width, coarse.height) == (128, 96)
    with open_scene(scene, ["B04", "B03", "B11"], resolution=20.0) as twenty, \
            rasterio.open(scene.bands[scene.names().index("B11")].path) as b11:
        # --resolution 20: the 20 m band's own grid, read as it is; the 10 m bands averaged onto it
        assert twenty.res == (20.0, 20.0) and twenty.transform == b11.transform
        np.testing.assert_array_equal(twenty.read(resolve_bands(twenty, ["B11"])[0]), b11.read(1))
    with rasterio.open(scene.bands[scene.names().index("B11")].path) as src, open_scene(scene, RGB) as fine:
        expected = np.zeros((fine.height, fine.width), np.float32)
        reproject(src.read(1).astype(np.float32), expected, src_transform=src.transform, src_crs=src.crs,
                  dst_transform=fine.transform, dst_crs=fine.crs, resampling=Resampling.bilinear)
    inner = (slice(2, -2), slice(66, -2))  # away from the raster edge and the nodata column's edge
    assert np.abs(upsampled[inner].astype(np.float32) - expected[inner]).mean() < 2.0


@pytest.mark.parametrize("level", ["L2A", "L1C"])
def test_safe_folder_is_a_scene_with_the_metadata_offset(tmp_path, stacked, level):
    safe = deliveries.write_safe(stacked.path, tmp_path, level=level, offset=-1000)
    (scene,) = find_scene_sources([tmp_path])
    assert scene.kind == "safe" and scene.label == str(safe) and scene.offset == -1000.0
    assert f"MTD_MSI{level}.xml" in scene.origin and "baseline 05.09" in scene.origin
    if level == "L2A":  # B02 ships at 10, 20 and 60 m: the finest is read
        assert "R10m" in scene.bands[0].path and scene.names()[:3] == ["B02", "B03", "B04"]
    scaling = scene_scaling(scene, Scaling(1 / 3500))  # --s2-offset not given: the metadata's -1000
    assert scaling.offset == -1000.0
    spec = TileSpec(64)
    _same_tiles(iter_tiles(stacked.path, RGB, spec, Scaling(1 / 3500), None),
                iter_tiles(scene, RGB, spec, scaling, None))
    shutil.rmtree(safe / "GRANULE")
    with pytest.raises(InputError, match=r"\.SAFE: a \.SAFE folder without granules"):
        find_scene_sources([safe])


def test_landsat_collar_is_fill_and_leaves_the_stretch_alone(tmp_path, stacked):
    folder = deliveries.write_landsat(stacked.path, tmp_path, angle=12, stacked_copy=tmp_path / "collar.tif")
    (scene,) = find_scene_sources([folder])
    assert scene.kind == "landsat" and scene.names() == ["B02", "B03", "B04", "B05"] and scene.scale == 2e-5
    with rasterio.open(tmp_path / "collar.tif") as src:
        assert src.nodata is None
        dn = src.read([3, 2, 1])
        indexes = resolve_bands(src, RGB)
        limits, fraction = scene_statistics(src, indexes, Scaling(), Stretch())
        blind, blind_fraction = scene_statistics(src, indexes, Scaling(), Stretch(), Fill(zero=False))
    data = (dn != 0).any(axis=0)
    collar = ~deliveries.collar_mask(src.width, src.height, 12) | ~data  # the collar and the nodata column
    assert fraction == pytest.approx(collar.mean()) and blind_fraction == 0.0
    expected = Stretch().limits(Scaling().apply(dn, "uint16"), ~collar)  # the data pixels alone
    np.testing.assert_allclose(limits, expected)
    assert (blind[:, 0] == 0).all() and not np.allclose(blind, expected)  # with the zeros in: pale tiles
    spec = TileSpec(32)
    stats = TilingStats()
    tiles = list(iter_tiles(tmp_path / "collar.tif", RGB, spec, stats=stats))
    for tile in tiles:  # every indexed tile is mostly data, and says how much
        window = tile.window
        inside = ~collar[int(window.row_off):int(window.row_off + window.height),
                         int(window.col_off):int(window.col_off + window.width)]
        assert tile.valid_fraction == pytest.approx(inside.mean(), abs=1e-4) and inside.mean() >= 0.5
    assert stats.skipped_nodata > 0 and stats.yielded + stats.skipped_nodata == 48
    _same_tiles(tiles, iter_tiles(scene, RGB, spec))  # band files: the same tiles


def test_constant_tiles_are_never_data(tmp_path):
    path = tmp_path / "flat.tif"
    values = np.random.default_rng(0).uniform(0.1, 0.3, (3, 64, 128)).astype(np.float32)
    values[:, :, 64:] = 0.5  # a float product without nodata: a constant right half
    with rasterio.open(path, "w", driver="GTiff", width=128, height=64, count=3, dtype="float32") as dst:
        dst.write(values)
    stats = TilingStats()
    tiles = list(iter_tiles(path, None, TileSpec(64), stretch=None, stats=stats))
    assert [t.col for t in tiles] == [0] and (stats.skipped_nodata, stats.skipped_constant) == (1, 1)


def test_nodata_flag_overrides_the_file(stacked):
    with rasterio.open(stacked.path) as src:  # the file says 0; --nodata 65535 makes the 0 column data
        indexes = resolve_bands(src, RGB)
        window = rasterio.windows.Window(0, 0, 128, 64)
        _, valid = read_window(src, indexes, window, (64, 128))
        _, overridden = read_window(src, indexes, window, (64, 128), fill=Fill(65535))
        _, resampled = read_window(src, indexes, window, (32, 64), Resampling.average, Fill(65535))
    assert not valid[:, :64].any() and valid[:, 64:].all() and overridden.all() and resampled.all()
    assert parse_nodata("-9999") == -9999.0 and np.isnan(parse_nodata("nan"))
    with pytest.raises(InputError, match="--nodata 'abc': not a number"):
        parse_nodata("abc")


def test_stac_items_select_bands_by_common_name(tmp_path, band_folder, stacked):
    files = {p.stem.rsplit("_", 1)[1]: p for p in band_folder.glob("*.tif")}
    item = deliveries.write_stac_item({b: files[b] for b in ("B02", "B03", "B04", "B08", "B11")},
                                      tmp_path / "items" / "item.json")
    (scene,) = find_scene_sources([item])
    assert scene.kind == "stac" and scene.names() == ["B02", "B03", "B04", "B08", "B11"]
    assert scene.chosen(["red", "green", "blue"]) == RGB == scene.chosen(None)
    spec = TileSpec(64)
    _same_tiles(iter_tiles(stacked.path, RGB, spec), iter_tiles(scene, ["red", "green", "blue"], spec))
    # an ItemCollection of two items (and the folder holding it) gives two scenes
    data = json.loads(item.read_text())
    second = {**data, "id": "second"}
    (tmp_path / "items" / "collection.json").write_text(json.dumps({"type": "FeatureCollection",
                                                                    "features": [data, second]}))
    labels = [s.label for s in find_scene_sources([tmp_path / "items"])]
    assert labels == [f"{tmp_path / 'items' / 'collection.json'}#synthetic-s2",
                      f"{tmp_path / 'items' / 'collection.json'}#second", str(item)]
    # one asset holding four bands (a stacked analytic GeoTIFF): its eo:bands name each band of the file
    analytic = {**data, "id": "analytic", "assets": {"analytic": {
        "href": str(stacked.path), "type": "image/tiff; application=geotiff", "roles": ["data"],
        "eo:bands": [{"name": n, "common_name": c} for n, c in
                     (("B02", "blue"), ("B03", "green"), ("B04", "red"), ("B08", "nir"))]}}}
    (tmp_path / "analytic.json").write_text(json.dumps(analytic))
    (four,) = find_scene_sources([tmp_path / "analytic.json"])
    assert [(b.name, b.index) for b in four.bands] == [("B02", 1), ("B03", 2), ("B04", 3), ("B08", 4)]
    _same_tiles(iter_tiles(stacked.path, RGB, spec), iter_tiles(four, ["red", "green", "blue"], spec))
    broken = deliveries.write_stac_item({b: files[b] for b in ("B02", "B03", "B04")}, tmp_path / "bad.json",
                                        missing=("B03",))
    with pytest.raises(InputError, match=r"bad\.json: asset 'green' file not found: .*B03_gone"):
        find_scene_sources([broken])


def _copy_band(src_path, dst_path, crs=None, shift=0.0):
    with rasterio.open(src_path) as src:
        profile = {**src.profile}
        if crs is not None:
            profile["crs"] = crs
        profile["transform"] = src.transform * rasterio.Affine.translation(0, 0)
        if shift:
            profile["transform"] = rasterio.Affine(src.transform.a, 0, src.transform.c + shift, 0,
                                                   src.transform.e, src.transform.f)
        with rasterio.open(dst_path, "w", **profile) as dst:
            dst.write(src.read())


def test_broken_band_sets_are_one_line_naming_the_file(tmp_path, band_folder):
    source = {p.stem.rsplit("_", 1)[1]: p for p in band_folder.glob("*.tif")}
    crs = tmp_path / "crs"
    crs.mkdir()
    for band in ("B02", "B03"):
        shutil.copy(source[band], crs / f"X_{band}.tif")
    _copy_band(source["B04"], crs / "X_B04.tif", crs="EPSG:32634")
    with pytest.raises(InputError, match=r"X_B04\.tif: band B04 is in EPSG:32634 but .*X_B02\.tif \(B02\) is in "
                                         r"EPSG:32633"):
        find_scene_sources([crs])
    apart = tmp_path / "apart"
    apart.mkdir()
    for band in ("B02", "B03"):
        shutil.copy(source[band], apart / f"Y_{band}.tif")
    _copy_band(source["B04"], apart / "Y_B04.tif", shift=100_000.0)
    (scene,) = find_scene_sources([apart])
    with pytest.raises(InputError, match=r"Y_B04\.tif: the footprint of band B04 does not overlap"):
        check_scene_sets([scene], RGB)
    several = tmp_path / "several"
    for name, bands in (("A", ("B02", "B03", "B04")), ("B", ("B03", "B04"))):
        (several / name).mkdir(parents=True)
        for band in bands:
            shutil.copy(source[band], several / name / f"{name}_{band}.tif")
    scenes = find_scene_sources([several])
    with pytest.raises(InputError, match=r"several/B/B: no band named 'B02' \(band files: B03, B04\)"):
        check_scene_sets(scenes, RGB)
    (several / "B" / "B_B02.tif").write_bytes(b"not a tiff")  # a corrupt band file breaks its set
    with pytest.raises(InputError, match=r"B_B02\.tif: band B02 of scene .*several/B/B: not a readable raster"):
        find_scene_sources([several])


def test_landsat_mtl_scaling_from_txt_and_xml(tmp_path):
    from clipsuite.remote.products import landsat_scaling

    xml = tmp_path / "LC09_L2SP_MTL.xml"
    xml.write_text("<LANDSAT_METADATA_FILE><LEVEL1_RADIOMETRIC_RESCALING><REFLECTANCE_MULT_BAND_4>2.0000E-05"
                   "</REFLECTANCE_MULT_BAND_4><REFLECTANCE_ADD_BAND_4>-0.100000</REFLECTANCE_ADD_BAND_4>"
                   "</LEVEL1_RADIOMETRIC_RESCALING><LEVEL2_SURFACE_REFLECTANCE_PARAMETERS>"
                   "<REFLECTANCE_MULT_BAND_4>2.75e-05</REFLECTANCE_MULT_BAND_4>"
                   "<REFLECTANCE_ADD_BAND_4>-0.2</REFLECTANCE_ADD_BAND_4></LEVEL2_SURFACE_REFLECTANCE_PARAMETERS>"
                   "</LANDSAT_METADATA_FILE>")
    scale, offset = landsat_scaling(xml, ["B04"], surface=True)  # _SR_ files: the Level-2 group
    assert scale == 2.75e-05 and scale * offset == pytest.approx(-0.2)
    scale, offset = landsat_scaling(xml, ["B04"], surface=False)
    assert scale == 2e-05 and scale * offset == pytest.approx(-0.1)
    assert landsat_scaling(xml, ["B10"], surface=False) == (None, None)  # thermal: DN scaling by dtype
