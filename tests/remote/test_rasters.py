from __future__ import annotations

import tracemalloc
import warnings

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

from clipsuite.core.data import read_karpathy_pairs
from clipsuite.core.errors import InputError
from clipsuite.remote import rasters, synthetic, tiling


def _write(path, data, **extra):
    profile = {"driver": "GTiff", "width": data.shape[2], "height": data.shape[1], "count": data.shape[0],
               "dtype": str(data.dtype), **extra}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


def test_band_names_and_indexes(scene):
    with rasters.open_raster(scene.path) as ds:
        assert rasters.band_names(ds) == ["B02", "B03", "B04", "B08"]
        assert rasters.resolve_bands(ds, ["B04", "b3", "B02"]) == [3, 2, 1]
        assert rasters.resolve_bands(ds, [4, "1"]) == [4, 1]
        assert rasters.resolve_bands(ds, None) == [1, 2, 3]
        with pytest.raises(InputError, match=r"scene.tif: band 5 requested but the raster has 4"):
            rasters.resolve_bands(ds, [5], scene.path)
        with pytest.raises(InputError, match=r"no band named 'B8A'"):
            rasters.resolve_bands(ds, ["B8A"], scene.path)


def test_thirteen_bands_without_names_follow_sentinel2_order(tmp_path):
    data = np.arange(13, dtype=np.uint16)[:, None, None] * np.ones((1, 4, 4), np.uint16)
    path = _write(tmp_path / "ms.tif", data + 1)
    with rasters.open_raster(path) as ds:
        assert rasters.resolve_bands(ds, ["B8A", "B04", "B03", "B02"]) == [13, 4, 3, 2]
    image, valid = rasters.read_image(path, bands=["B8A", "B04"], stretch=None)
    assert valid.all()
    np.testing.assert_allclose(image[:, 0, 0], [13e-4, 4e-4], rtol=1e-6)


def test_fewer_bands_than_requested(tmp_path):
    path = _write(tmp_path / "grey.tif", np.ones((2, 8, 8), np.uint8))
    with pytest.raises(InputError, match=r"grey.tif: 3 bands requested but the raster has 2"):
        rasters.read_image(path)


def test_scaling_reflectance_and_sentinel2_offset():
    dn = np.array([[[0, 1000, 2500, 10000]]], np.uint16)
    np.testing.assert_allclose(rasters.Scaling().apply(dn, np.uint16), [[[0, 0.1, 0.25, 1.0]]], rtol=1e-6)
    np.testing.assert_allclose(rasters.Scaling.sentinel2(offset=True).apply(dn, np.uint16),
                               [[[-0.1, 0.0, 0.15, 0.9]]], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(rasters.Scaling().apply(np.array([[[255]]], np.uint8), np.uint8), [[[1.0]]])


def test_percentile_stretch_matches_numpy():
    rng = np.random.default_rng(0)
    values = rng.uniform(0, 1, (2, 20, 20)).astype(np.float32)
    valid = np.ones((20, 20), bool)
    valid[:5] = False
    values[:, :5] = 1000.0  # invalid pixels must not move the limits
    limits = rasters.Stretch(2, 98).limits(values, valid)
    for band in range(2):
        lo, hi = np.percentile(values[band, 5:], [2, 98])
        np.testing.assert_allclose(limits[band], [lo, hi], rtol=1e-6)
    out = rasters.apply_limits(values, limits)
    expected = np.clip((values[1, 10, 3] - limits[1, 0]) / (limits[1, 1] - limits[1, 0]), 0, 1)
    assert out[1, 10, 3] == pytest.approx(expected, rel=1e-6)


def test_tiles_match_the_raster_and_its_transform(scene):
    stats = tiling.TilingStats()
    tiles = list(tiling.iter_tiles(scene.path, ["B04", "B03", "B02"], tiling.TileSpec(size=64), stretch=None,
                                   stats=stats))
    assert stats.yielded == 9 and stats.skipped_nodata == 3  # the nodata column is skipped and counted
    with rasterio.open(scene.path) as ds:
        full = ds.read([3, 2, 1]).astype(np.float32) * 1e-4
        for tile in tiles:
            c0, r0 = int(tile.window.col_off), int(tile.window.row_off)
            np.testing.assert_allclose(tile.pixels, full[:, r0:r0 + 64, c0:c0 + 64], rtol=1e-6)
            left, top = ds.transform @ (c0, r0)
            assert tile.bounds == pytest.approx((left, top - 640.0, left + 640.0, top))
            assert tile.crs == "EPSG:32633"
            assert scene.cells[tile.row][tile.col] is not None


def test_overlap_and_resolution(scene):
    spec = tiling.TileSpec(size=32, overlap=8)
    windows = tiling.tile_windows(256, 192, (10.0, 10.0), spec)
    cols = sorted({w.col_off for _, _, w in windows})
    assert cols == [0, 24, 48, 72, 96, 120, 144, 168, 192, 216, 224]  # last moved back to the edge
    coarse = list(tiling.iter_tiles(scene.path, None, tiling.TileSpec(size=32, resolution=20.0), stretch=None))
    assert coarse[0].pixels.shape == (3, 32, 32)
    assert coarse[0].transform.a == pytest.approx(20.0) and coarse[0].transform.e == pytest.approx(-20.0)
    assert coarse[0].bounds[2] - coarse[0].bounds[0] == pytest.approx(640.0)
    with rasterio.open(scene.path) as ds:
        block = ds.read([1, 2, 3], window=Window(64, 0, 64, 64)).astype(np.float32) * 1e-4
    down = block.reshape(3, 32, 2, 32, 2).mean(axis=(2, 4))
    first = next(t for t in coarse if t.window.col_off == 64 and t.window.row_off == 0)
    np.testing.assert_allclose(first.pixels, down, atol=1e-4)


def test_parts_split_the_tiles(scene):
    spec = tiling.TileSpec(size=64)
    every = {t.metadata()["id"] for t in tiling.iter_tiles(scene.path, None, spec)}
    shares = [{t.metadata()["id"] for t in tiling.iter_tiles(scene.path, None, spec, part=(i, 2))} for i in range(2)]
    assert not shares[0] & shares[1] and shares[0] | shares[1] == every


def test_no_crs_warns_and_uses_pixel_coordinates(tmp_path):
    layout = synthetic.write_scene(tmp_path / "nocrs.tif", rows=1, cols=2, cell=32, nodata_cols=0, crs=None)
    with pytest.warns(rasters.NoCRSWarning, match="nocrs.tif: raster has no CRS"):
        tiles = list(tiling.iter_tiles(layout.path, None, tiling.TileSpec(size=32)))
    assert tiles[1].crs is None and tiles[1].bounds == (32.0, 0.0, 64.0, 32.0)


def test_corrupt_and_missing_files(tmp_path):
    bad = tmp_path / "broken.tif"
    bad.write_bytes(b"II*\x00garbage" * 10)
    with pytest.raises(InputError, match=r"broken.tif: not a readable raster"):
        list(tiling.iter_tiles(bad))
    with pytest.raises(InputError, match=r"absent.tif: raster file not found"):
        rasters.read_image(tmp_path / "absent.tif")


def test_nan_pixels_are_invalid(tmp_path):
    data = np.ones((3, 8, 8), np.float32)
    data[1, 2, 3] = np.nan
    image, valid = rasters.read_image(_write(tmp_path / "nan.tif", data), stretch=None)
    assert not valid[2, 3] and valid.sum() == 63 and image[:, 2, 3].tolist() == [0, 0, 0]


def test_tiling_memory_does_not_hold_the_scene(tmp_path):
    layout = synthetic.write_scene(tmp_path / "big.tif", rows=8, cols=8, cell=256, nodata_cols=0)
    full_bytes = 3 * 2048 * 2048 * 4  # the selected bands as float32
    with warnings.catch_warnings():
        tracemalloc.start()
        count = sum(1 for _ in tiling.iter_tiles(layout.path, None, tiling.TileSpec(size=128)))
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert count == 256
    assert peak < full_bytes / 5, f"peak {peak / 1e6:.1f} MB vs scene {full_bytes / 1e6:.1f} MB"


def test_synthetic_captions_and_translations(captions):
    caption_json, translations = captions
    pairs = read_karpathy_pairs(caption_json, split="test")
    assert len(pairs) == 6 * 1 * 2 and all(p.image.is_file() for p in pairs)
    import json
    rows = [json.loads(line) for line in translations.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 12 and set(rows[0]["translations"]) == set(synthetic.LANGUAGES) - {"en"}
    assert rows[0]["translations"]["zh"] == "一片茂密的绿色森林"


@pytest.mark.parametrize("kind", ["uint16_nodata_0", "float_nodata_nan", "float_no_nodata"])
def test_native_reads_compute_the_same_mask_as_gdal(tmp_path, kind):
    """The native-resolution read derives the mask from the values; GDAL's masked read is the reference."""
    rng = np.random.default_rng(0)
    if kind == "uint16_nodata_0":
        data = rng.integers(0, 4, (3, 40, 50)).astype(np.uint16)  # zeros scattered in single bands
        path = _write(tmp_path / "a.tif", data, nodata=0)
    else:
        data = rng.random((3, 40, 50)).astype(np.float32)
        data[1, 5:9, 7:20] = np.nan
        data[0, 30, 3] = np.inf
        path = _write(tmp_path / "a.tif", data, **({"nodata": float("nan")} if kind == "float_nodata_nan" else {}))
    window = Window(6, 4, 37, 29)
    with rasterio.open(path) as ds:
        values, valid = rasters.read_window(ds, [3, 1, 2], window, (29, 37))
        masked = ds.read([3, 1, 2], window=window, masked=True)
        reference = rasters.valid_mask(masked)
        expected = np.ma.getdata(masked).copy()
        expected[:, ~reference] = 0
    assert np.array_equal(valid, reference) and 0 < valid.sum() < valid.size
    np.testing.assert_array_equal(values, expected)
