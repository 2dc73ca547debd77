"""Scenes delivered as one file per band (Landsat ``_B4``/``_SR_B4``, Sentinel-2 ``_B04``/``_B04_10m``/``B8A``).

What a file set *is* (bands, names, grid) is kept apart from *which windows* are read, as torchgeo's
``RasterDataset(separate_files=True)`` does; unlike it, no ``filename_regex`` is written by the user: the
band token of both standard deliveries is recognised in the file name, and the files that share the
name before it form one scene.

A band set is read through a GDAL VRT held in memory (an XML string, never written to disk): one band
per file, all on one grid. The grid is the finest of the *chosen* bands (its pixel origin, the
intersection of the chosen bands' footprints); coarser bands are upsampled onto it with bilinear
resampling by GDAL as windows are read. Every window read is then a windowed read of each band file.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import numpy as np
from rasterio.dtypes import _gdal_typename  # GDAL's name for a numpy dtype

from clipsuite.core.errors import InputError

# <prefix>_[SR_|ST_]B<n>[_<res>m]: Landsat C1/C2 (L1, L2 SR/ST) and Sentinel-2 L1C/L2A granule file names
BAND_FILE = re.compile(r"^(?:(?P<prefix>.*?)_)?(?:(?:SR|ST)_)?(?P<band>B(?:8A|\d{1,2}))(?:_(?P<res>\d+)m)?$",
                       re.IGNORECASE)
# a common name users type for the one a delivery names otherwise (Landsat 8/9 and STAC eo 1.1: nir08)
COMMON_ALIASES = {"nir": "nir08", "swir1": "swir16", "swir2": "swir22"}
UPSAMPLING = "bilinear"  # coarser bands onto a finer grid (named in docs/remote.md)
DOWNSAMPLING = "average"  # finer bands onto a coarser grid (--resolution): every source pixel counts once

# common names (STAC eo:bands) per delivery; Landsat 4-7 number their bands otherwise than Landsat 8/9
S2_COMMON = {"B01": "coastal", "B02": "blue", "B03": "green", "B04": "red", "B05": "rededge", "B06": "rededge",
             "B07": "rededge", "B08": "nir", "B8A": "nir08", "B09": "nir09", "B10": "cirrus", "B11": "swir16",
             "B12": "swir22"}
L89_COMMON = {"B01": "coastal", "B02": "blue", "B03": "green", "B04": "red", "B05": "nir08", "B06": "swir16",
              "B07": "swir22", "B08": "pan", "B09": "cirrus", "B10": "lwir11", "B11": "lwir12"}
L457_COMMON = {"B01": "blue", "B02": "green", "B03": "red", "B04": "nir08", "B05": "swir16", "B06": "lwir",
               "B07": "swir22", "B08": "pan"}


def canonical_band(name: str) -> str:
    """``B4`` -> ``B04``, ``b8a`` -> ``B8A`` (the vocabulary ``--bands`` takes)."""
    text = name.strip().upper()
    match = re.fullmatch(r"B0?(\d{1,2})(A?)", text)
    if not match:
        return text
    return f"B{int(match.group(1))}A" if match.group(2) else f"B{int(match.group(1)):02d}"


def band_sort_key(name: str) -> tuple[int, int]:
    """Sentinel-2 order: B01 .. B08, B8A, B09 .. B12 (band indexes of a band set count in this order)."""
    match = re.fullmatch(r"B(\d+)(A?)", name)
    return (int(match.group(1)), 1 if match.group(2) else 0) if match else (999, 0)


def parse_band_file(path: str) -> tuple[str, str, int | None] | None:
    """``(prefix, band, resolution tag in m)`` from a band file's name, else None."""
    stem = Path(path.split("?")[0]).name
    stem = stem[: stem.index(".")] if "." in stem else stem
    match = BAND_FILE.match(stem)
    if not match:
        return None
    res = match.group("res")
    return match.group("prefix") or "", canonical_band(match.group("band")), int(res) if res else None


def common_names_for(prefix: str) -> dict[str, str]:
    """Common band names for a delivery recognised by its product id (Sentinel-2 tile names start ``T``)."""
    head = Path(prefix).name.upper()
    if head[:4] in ("LC08", "LC09", "LO08", "LO09"):
        return L89_COMMON
    if head[:4] in ("LT04", "LT05", "LE07", "LT4", "LT5", "LE7"):
        return L457_COMMON
    if re.match(r"^(T\d{2}[A-Z]{3}_|S2[ABC]_)", head):
        return S2_COMMON
    return {}


@dataclass(frozen=True)
class BandHeader:
    """What the VRT needs of one band file (header only)."""

    width: int
    height: int
    transform: tuple[float, ...]  # affine a, b, c, d, e, f
    crs: Any
    dtype: str
    nodata: float | None

    @property
    def res(self) -> float:
        return abs(self.transform[0])

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        a, _, c, _, e, f = self.transform
        return c, f + e * self.height, c + a * self.width, f


def read_header(dataset: Any, label: str, index: int = 1) -> BandHeader:
    """The grid of band ``index`` of a file; refuses a rotated or unreferenced one (no shared grid)."""
    t = dataset.transform
    if dataset.crs is None:
        raise InputError(f"{label}: band file has no CRS; band files must be georeferenced to be stacked")
    if t.b != 0 or t.d != 0 or t.a <= 0 or t.e >= 0:
        raise InputError(f"{label}: band file grid is rotated or flipped; only north-up band files are stacked")
    if not 1 <= index <= dataset.count:
        raise InputError(f"{label}: band {index} requested but the file has {dataset.count} band(s)")
    return BandHeader(dataset.width, dataset.height, tuple(t)[:6], dataset.crs, dataset.dtypes[index - 1],
                      dataset.nodatavals[index - 1])


def check_same_crs(headers: dict[str, BandHeader], paths: dict[str, str], label: str) -> None:
    first = next(iter(headers))
    for band, header in headers.items():
        if header.crs != headers[first].crs:
            raise InputError(f"{paths[band]}: band {band} is in {header.crs} but {paths[first]} ({first}) is in "
                             f"{headers[first].crs}; the band files of scene {label} must share one CRS")


def grid_for(headers: dict[str, BandHeader], chosen: Sequence[str], paths: dict[str, str], label: str,
             resolution: float | None = None) -> tuple[float, float, float, int, int]:
    """``(left, top, res, width, height)`` over the intersection of the chosen bands' footprints: the pixel
    grid of the finest chosen band, or with ``resolution`` (the tiles' ground size) of the coarsest chosen
    band not coarser than it, so bands at that resolution are read as they are; refuses footprints that do
    not overlap."""
    finest = min(chosen, key=lambda b: headers[b].res)
    fitting = [b for b in chosen if resolution is not None and headers[b].res <= resolution * (1 + 1e-9)]
    base = max(fitting, key=lambda b: headers[b].res) if fitting else finest
    res = headers[base].res
    ox, oy = headers[base].transform[2], headers[base].transform[5]
    left = max(headers[b].bounds[0] for b in chosen)
    bottom = max(headers[b].bounds[1] for b in chosen)
    right = min(headers[b].bounds[2] for b in chosen)
    top = min(headers[b].bounds[3] for b in chosen)
    if right <= left or top <= bottom:  # name the band that overlaps the fewest others
        def overlaps(x: str, y: str) -> bool:
            a, b = headers[x].bounds, headers[y].bounds
            return min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1])

        odd = min(reversed(chosen), key=lambda x: sum(overlaps(x, y) for y in chosen if y != x))
        raise InputError(f"{paths[odd]}: the footprint of band {odd} does not overlap the other bands "
                         f"of scene {label} ({', '.join(b for b in chosen if b != odd)})")
    eps = 1e-6
    col0, row0 = math.ceil((left - ox) / res - eps), math.ceil((oy - top) / res - eps)
    col1, row1 = math.floor((right - ox) / res + eps), math.floor((oy - bottom) / res + eps)
    if col1 <= col0 or row1 <= row0:
        raise InputError(f"{label}: the bands {', '.join(chosen)} overlap by less than one pixel")
    return ox + col0 * res, oy - row0 * res, res, col1 - col0, row1 - row0


def gdal_path(href: str) -> str:
    """A path GDAL opens: local paths absolute, URLs through GDAL's virtual file systems."""
    if href.startswith(("http://", "https://")):
        return f"/vsicurl/{href}"
    if href.startswith("s3://"):
        return f"/vsis3/{href[5:]}"
    if href.startswith("gs://"):
        return f"/vsigs/{href[5:]}"
    if href.startswith("/vsi"):
        return href
    return str(Path(href).resolve())


def stack_vrt(bands: Sequence[str], paths: dict[str, str], headers: dict[str, BandHeader], chosen: Sequence[str],
              common: dict[str, str], label: str, source_band: dict[str, int] | None = None,
              resolution: float | None = None) -> str:
    """The VRT XML of ``bands`` (all files of the set, in order) on the grid of the ``chosen`` ones;
    ``source_band``: the band of each file to read (1 unless a STAC asset holds several)."""
    check_same_crs(headers, paths, label)
    left, top, res, width, height = grid_for(headers, chosen, paths, label, resolution)
    dtype = np.result_type(*[np.dtype(headers[b].dtype) for b in bands]).name
    crs = headers[chosen[0]].crs
    parts = [f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}">',
             f"<SRS>{escape(crs.to_wkt())}</SRS>",
             f"<GeoTransform>{left!r}, {res!r}, 0, {top!r}, 0, {-res!r}</GeoTransform>"]
    for i, band in enumerate(bands, start=1):
        h = headers[band]
        sx = (left - h.transform[2]) / h.res
        sy = (h.transform[5] - top) / h.res
        sw, sh = width * res / h.res, height * res / h.res
        same = abs(h.res - res) < 1e-9 * res and float(sx).is_integer() and float(sy).is_integer()
        kernel = UPSAMPLING if h.res > res else DOWNSAMPLING
        resampling = "" if same else f' resampling="{kernel}"'
        nodata = f"<NoDataValue>{h.nodata!r}</NoDataValue>" if h.nodata is not None else ""
        meta = f'<Metadata><MDI key="common_name">{common[band]}</MDI></Metadata>' if band in common else ""
        parts.append(f'<VRTRasterBand dataType="{_gdal_typename(dtype)}" band="{i}"><Description>{band}</Description>'
                     f"{nodata}{meta}<SimpleSource{resampling}>"
                     f'<SourceFilename relativeToVRT="0">{escape(gdal_path(paths[band]))}</SourceFilename>'
                     f"<SourceBand>{(source_band or {}).get(band, 1)}</SourceBand>"
                     f'<SrcRect xOff="{sx!r}" yOff="{sy!r}" xSize="{sw!r}" ySize="{sh!r}"/>'
                     f'<DstRect xOff="0" yOff="0" xSize="{width}" ySize="{height}"/></SimpleSource></VRTRasterBand>')
    parts.append("</VRTDataset>")
    return "".join(parts)
