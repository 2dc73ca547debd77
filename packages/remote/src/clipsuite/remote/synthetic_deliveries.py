"""Synthetic scenes in the layouts missions deliver them (tests, benchmarks): one file per band at 10 and
20 m, a Sentinel-2 ``.SAFE`` tree (L1C / L2A, JP2, product metadata with the baseline offset), a
Landsat Collection 2 folder (``_B2`` ... ``_B5`` + ``_MTL.txt``) with a rotated 0-valued collar and no
nodata tag, and a STAC Item over band files. Each is cut from a stacked scene that ``synthetic.write_scene``
writes, block by block, so the two layouts hold the same pixels and can be compared tile for tile.
"""

from __future__ import annotations

import json
import math
import os
from datetime import datetime
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.warp import transform_geom
from rasterio.windows import Window

from clipsuite.remote.synthetic import spectral_bands, to_uint16

S2_TILE = "T33TWM_20230615T100031"
LANDSAT_ID = "LC08_L1TP_190030_20230615_20230620_02_T1"
LANDSAT_NAMES = {"B02": "B2", "B03": "B3", "B04": "B4", "B08": "B5"}  # Landsat 8: blue, green, red, nir
COARSE = ("B05", "B8A", "B11", "B12")  # Sentinel-2 20 m bands, derived from the four 10 m ones
COMMON = {"B02": "blue", "B03": "green", "B04": "red", "B08": "nir", "B05": "rededge", "B8A": "nir08",
          "B11": "swir16", "B12": "swir22"}


def _blocks(width: int, height: int, step: int = 512) -> list[Window]:
    return [Window(c, r, min(step, width - c), min(step, height - r))
            for r in range(0, height, step) for c in range(0, width, step)]


def _write_band(path: Path, source: rasterio.DatasetReader, band: str, factor: int = 1, offset: int = 0,
                driver: str = "GTiff", nodata: float | None = 0, collar: float | None = None) -> Path:
    """One band of ``source`` (a stacked B02/B03/B04/B08 scene), derived bands computed, at ``factor``
    times its pixel size (block average), ``offset`` DN added (Sentinel-2 baseline >= 04.00)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    width, height = source.width // factor, source.height // factor
    profile = {"driver": driver, "width": width, "height": height, "count": 1, "dtype": "uint16",
               "crs": source.crs, "transform": source.transform * Affine.scale(factor), "nodata": nodata}
    if driver == "GTiff":
        profile.update(compress="deflate", tiled=True, blockxsize=256, blockysize=256)
    else:  # JP2OpenJPEG: lossless, so pixels equal the GeoTIFF's
        profile.update(quality=100, reversible=True)
    names = [d or "" for d in source.descriptions]
    with rasterio.open(path, "w", **profile) as dst:
        for window in _blocks(source.width, source.height, 512):
            dn = source.read(window=window)
            valid = (dn != 0).any(axis=0)
            reflectance = dn.astype(np.float32) / 1e4  # B02, B03, B04, B08
            if band in names:
                out = dn[names.index(band)].astype(np.float64)
            else:
                out = to_uint16(spectral_bands(reflectance, (band,)))[0].astype(np.float64)
            out[~valid] = 0
            if collar is not None:
                out[~_inside(window, source.width, source.height, collar)] = 0
            h, w = out.shape[0] // factor, out.shape[1] // factor
            out = out[: h * factor, : w * factor].reshape(h, factor, w, factor).mean(axis=(1, 3)) if factor > 1 \
                else out
            data = np.where(out > 0, np.round(out) + offset, 0).astype(np.uint16)
            dst.write(data[None], window=Window(window.col_off // factor, window.row_off // factor, w, h))
    return path


def _inside(window: Window, width: int, height: int, angle: float) -> np.ndarray:
    """The data area of a Landsat-like scene: a rectangle rotated by ``angle`` degrees, inset so that its
    corners stay in the raster; outside it is the 0 collar."""
    rows, cols = np.mgrid[window.row_off:window.row_off + window.height, window.col_off:window.col_off + window.width]
    x, y = cols + 0.5 - width / 2, rows + 0.5 - height / 2
    a = math.radians(angle)
    u, v = x * math.cos(a) + y * math.sin(a), -x * math.sin(a) + y * math.cos(a)
    half_w, half_h = width * 0.36, height * 0.36
    return (np.abs(u) <= half_w) & (np.abs(v) <= half_h)


def collar_mask(width: int, height: int, angle: float = 12.0) -> np.ndarray:
    """``[H, W]`` True on data pixels of a collar scene (as ``write_landsat`` writes it)."""
    return _inside(Window(0, 0, width, height), width, height, angle)


def write_band_files(stacked: str | Path, folder: str | Path, prefix: str = S2_TILE,
                     fine: tuple[str, ...] = ("B02", "B03", "B04", "B08"), coarse: tuple[str, ...] = COARSE,
                     ) -> dict[str, Path]:
    """``folder/<prefix>_B04.tif`` ...: the ``fine`` bands at the stacked scene's 10 m, ``coarse`` at 20 m."""
    folder = Path(folder)
    out = {}
    with rasterio.open(stacked) as source:
        for band in fine:
            out[band] = _write_band(folder / f"{prefix}_{band}.tif", source, band)
        for band in coarse:
            out[band] = _write_band(folder / f"{prefix}_{band}.tif", source, band, factor=2)
    return out


def write_safe(stacked: str | Path, root: str | Path, level: str = "L2A", baseline: str = "05.09",
               offset: int = -1000) -> Path:
    """A ``.SAFE`` tree: product metadata with the processing baseline and offset, one granule of JP2
    band files (L2A: ``R10m``/``R20m``, every 10 m band also at 20 m, plus ``TCI``/``SCL`` as shipped;
    L1C: ``IMG_DATA/<tile>_B04.jp2``). DN are stored with ``-offset`` added, as products >= 04.00 are."""
    root = Path(root)
    name = f"S2A_MSI{level}_20230615T100031_N{baseline.replace('.', '')}_R122_T33TWM_20230615T120000.SAFE"
    safe = root / name
    granule = safe / "GRANULE" / f"{level}_T33TWM_A041600_20230615T100031" / "IMG_DATA"
    add = -offset
    tag, quant = ("BOA_ADD_OFFSET", "BOA_QUANTIFICATION_VALUE") if level == "L2A" else (
        "RADIO_ADD_OFFSET", "QUANTIFICATION_VALUE")
    offsets = "".join(f'<{tag} band_id="{i}">{offset}</{tag}>' for i in range(13))
    safe.mkdir(parents=True, exist_ok=True)
    product = f"n1:Level-{level[1:]}_User_Product"
    group = "BOA_ADD_OFFSET_VALUES_LIST" if level == "L2A" else "Radiometric_Offset_List"
    (safe / f"MTD_MSI{level}.xml").write_text(
        f'<?xml version="1.0" encoding="UTF-8"?><{product} xmlns:n1="https://psd-14.sentinel2.eo.esa.int/'
        f'PSD/User_Product_Level-{level[1:]}.xsd"><n1:General_Info><Product_Info><PROCESSING_BASELINE>{baseline}'
        f'</PROCESSING_BASELINE></Product_Info><Product_Image_Characteristics><{quant} unit="none">10000</{quant}>'
        f"<{group}>{offsets}</{group}></Product_Image_Characteristics></n1:General_Info></{product}>",
        encoding="utf-8")
    with rasterio.open(stacked) as source:
        if level == "L2A":
            for band in ("B02", "B03", "B04", "B08"):
                _write_band(granule / "R10m" / f"{S2_TILE}_{band}_10m.jp2", source, band, offset=add,
                            driver="JP2OpenJPEG", nodata=None)
            for band in ("B02", "B03", "B04", *COARSE):
                _write_band(granule / "R20m" / f"{S2_TILE}_{band}_20m.jp2", source, band, 2, add,
                            driver="JP2OpenJPEG", nodata=None)
            _write_band(granule / "R20m" / f"{S2_TILE}_SCL_20m.jp2", source, "B02", 2, driver="JP2OpenJPEG",
                        nodata=None)
            _write_band(granule / "R10m" / f"{S2_TILE}_TCI_10m.jp2", source, "B04", driver="JP2OpenJPEG",
                        nodata=None)
        else:
            for band in ("B02", "B03", "B04", "B08"):
                _write_band(granule / f"{S2_TILE}_{band}.jp2", source, band, offset=add, driver="JP2OpenJPEG",
                            nodata=None)
            for band in COARSE:
                _write_band(granule / f"{S2_TILE}_{band}.jp2", source, band, 2, add, driver="JP2OpenJPEG",
                            nodata=None)
    return safe


def write_landsat(stacked: str | Path, folder: str | Path, angle: float = 12.0, product: str = LANDSAT_ID,
                  stacked_copy: str | Path | None = None) -> Path:
    """A Landsat Collection 2 Level-1 folder: ``<product>_B2.TIF`` .. ``_B5.TIF`` with a rotated 0 collar
    and *no nodata tag*, and ``<product>_MTL.txt`` (TOA reflectance rescaling 2e-5, -0.1). With
    ``stacked_copy``, also the same pixels as one 4-band GeoTIFF (no nodata tag)."""
    folder = Path(folder) / product
    with rasterio.open(stacked) as source:
        for band, number in LANDSAT_NAMES.items():
            _write_band(folder / f"{product}_{number}.TIF", source, band, nodata=None, collar=angle)
        if stacked_copy is not None:
            profile = {**source.profile, "nodata": None}
            with rasterio.open(stacked_copy, "w", **profile) as dst:
                for window in _blocks(source.width, source.height, 512):
                    dn = source.read(window=window)
                    dn[:, ~_inside(window, source.width, source.height, angle)] = 0
                    dst.write(dn, window=window)
                for i, name in enumerate(source.descriptions, start=1):
                    dst.set_band_description(i, name or "")
    lines = ["GROUP = LANDSAT_METADATA_FILE", "  GROUP = PRODUCT_CONTENTS",
             f'    LANDSAT_PRODUCT_ID = "{product}"', "  END_GROUP = PRODUCT_CONTENTS",
             "  GROUP = LEVEL1_RADIOMETRIC_RESCALING"]
    for band_number in range(1, 10):
        lines += [f"    REFLECTANCE_MULT_BAND_{band_number} = 2.0000E-05",
                  f"    REFLECTANCE_ADD_BAND_{band_number} = -0.100000"]
    lines += ["  END_GROUP = LEVEL1_RADIOMETRIC_RESCALING", "END_GROUP = LANDSAT_METADATA_FILE", "END"]
    (folder / f"{product}_MTL.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def write_stac_item(bands: dict[str, Path], path: str | Path, item_id: str = "synthetic-s2",
                    missing: tuple[str, ...] = ()) -> Path:
    """A STAC Item (pystac) whose assets are ``bands`` (relative hrefs, ``eo:bands`` name + common name);
    ``missing`` names bands whose asset points at a file that does not exist (bad-input tests)."""
    import pystac

    path = Path(path)
    first = next(iter(bands.values()))
    with rasterio.open(first) as dataset:
        box = dataset.bounds
        crs = dataset.crs
    ring = [[box.left, box.bottom], [box.right, box.bottom], [box.right, box.top], [box.left, box.top],
            [box.left, box.bottom]]
    geometry = transform_geom(crs, "EPSG:4326", {"type": "Polygon", "coordinates": [ring]})
    xs = [p[0] for p in geometry["coordinates"][0]]
    ys = [p[1] for p in geometry["coordinates"][0]]
    item = pystac.Item(item_id, geometry, [min(xs), min(ys), max(xs), max(ys)],
                       datetime(2023, 6, 15, 10, 0, 31), {},
                       stac_extensions=["https://stac-extensions.github.io/eo/v1.1.0/schema.json"])
    for band, file in bands.items():
        href = os.path.relpath(Path(file).resolve(), path.parent.resolve())
        if band in missing:
            href = href.replace(band, f"{band}_gone")
        key = COMMON.get(band, band.lower())
        item.add_asset(key, pystac.Asset(href, media_type=pystac.MediaType.GEOTIFF, roles=["data"],
                                         extra_fields={"eo:bands": [{"name": band, "common_name": COMMON.get(band)}]}))
    item.add_asset("thumbnail", pystac.Asset("thumb.png", media_type=pystac.MediaType.PNG, roles=["thumbnail"]))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(item.to_dict(include_self_link=False, transform_hrefs=False), indent=1),
                    encoding="utf-8")
    return path
