"""Reading GeoTIFF (and any rasterio-readable) scenes: bands, nodata, scaling, stretch.

Nothing here reads a whole scene at full resolution: band statistics come from a decimated read
(GDAL resamples block by block), pixels from windowed reads. Tiling lives in ``tiling``.

Values are brought to reflectance-like floats by ``Scaling`` (uint16 reflectance / 10000, with the
Sentinel-2 L2A offset of -1000 DN for products processed since January 2022), then optionally to
``[0, 1]`` by a per-band percentile stretch (2-98 by default), the usual input for an RGB CLIP.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import rasterio
from rasterio.enums import MaskFlags, Resampling
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError
from rasterio.windows import Window

from clipsuite.core.errors import InputError, first_line
from clipsuite.remote.band_files import COMMON_ALIASES
from clipsuite.remote.fill import Fill, zero_rule_applies

# EuroSAT-MS / Sentinel-2 L1C band order as shipped in 13-band GeoTIFFs (B8A last).
SENTINEL2_13 = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B09", "B10", "B11", "B12", "B8A")
SENTINEL2_RGB = ("B04", "B03", "B02")
S2_L2A_OFFSET_DN = -1000.0  # BOA_ADD_OFFSET of L2A products with processing baseline >= 04.00
BandRef = int | str


class NoCRSWarning(UserWarning):
    """A raster without a CRS: tile geometry is in pixel coordinates."""


@contextmanager
def open_raster(path: str | Path) -> Iterator[Any]:
    """``rasterio.open`` with a corrupt or unreadable file turned into one ``InputError`` line."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: raster file not found")
    try:
        with warnings.catch_warnings():  # crs_of says it in our words, once per scene
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            dataset = rasterio.open(path)
    except RasterioIOError as error:
        raise InputError(f"{path}: not a readable raster ({io_reason(error)})") from None
    try:
        yield dataset
    finally:
        dataset.close()


def io_reason(error: BaseException) -> str:
    """rasterio's message in one line; a failed read says only "Read failed. See previous exception for
    details." and keeps GDAL's reason (the damaged block) in the chained error, which is what a user needs."""
    text = str(error).strip()
    chained = error.__cause__ or error.__context__
    if "See previous exception" in text and chained is not None and str(chained).strip():
        text = str(chained).strip()
    return first_line(text, empty="unreadable")


def _canonical(name: str) -> str:
    """``b4`` / ``B4`` / ``B04`` -> ``B04``; ``b8a`` -> ``B8A``; other names upper-cased and stripped."""
    text = name.strip().upper()
    match = re.fullmatch(r"B0?(\d{1,2})(A?)", text)
    if match:
        return f"B{int(match.group(1)):02d}{match.group(2)}" if not match.group(2) else f"B{int(match.group(1))}A"
    return text


def band_names(dataset: Any) -> list[str | None]:
    """A name per band: its description, else a ``name``/``band_name`` tag, else the Sentinel-2 order
    for a 13-band file (EuroSAT-MS has no descriptions), else ``None``."""
    names: list[str | None] = []
    for i in range(1, dataset.count + 1):
        description = (dataset.descriptions[i - 1] or "").strip()
        tags = {k.lower(): v for k, v in dataset.tags(i).items()}
        names.append(description or tags.get("name") or tags.get("band_name") or None)
    if all(n is None for n in names) and dataset.count == len(SENTINEL2_13):
        return list(SENTINEL2_13)
    return names


def resolve_bands(dataset: Any, bands: Sequence[BandRef] | None, path: str | Path = "") -> list[int]:
    """1-based band indexes for ``bands`` (1-based ints or names such as ``B04``); ``None`` = the first
    three bands (or the only band, three times). Refuses indexes past the band count and unknown names."""
    label = path or dataset.name
    count = int(dataset.count)
    common = {}  # band sets and STAC items tag their bands' common names (red, nir ...)
    for i in range(count, 0, -1):
        name = dataset.tags(i).get("common_name")
        if name:
            common[name.lower()] = i
    if bands is None or len(bands) == 0:
        if all(c in common for c in ("red", "green", "blue")):
            return [common["red"], common["green"], common["blue"]]
        return [1, 1, 1] if count == 1 else [1, 2, 3] if count >= 3 else _too_few(label, count, 3)
    known = band_names(dataset)
    lookup = {_canonical(n): i + 1 for i, n in enumerate(known) if n}
    indexes = []
    for band in bands:
        if isinstance(band, str) and band.strip().isdigit():
            band = int(band)
        if isinstance(band, int):
            if not 1 <= band <= count:
                raise InputError(f"{label}: band {band} requested but the raster has {count} band(s)")
            indexes.append(band)
        else:
            key = _canonical(band)
            word = band.strip().lower()
            word = word if word in common else COMMON_ALIASES.get(word, word)
            if key not in lookup and word in common:  # common names (and what users type for them)
                indexes.append(common[word])
                continue
            if key not in lookup:
                named = ", ".join(n for n in known if n) or "none (no band descriptions)"
                raise InputError(f"{label}: no band named '{band}' (bands: {named}; or give 1-based indexes)")
            indexes.append(lookup[key])
    return indexes


def _too_few(label: Any, count: int, wanted: int) -> list[int]:
    raise InputError(f"{label}: {wanted} bands requested but the raster has {count} band(s)")


def check_scale(scale: float | None, name: str = "scale") -> None:
    """A DN multiplier must be a positive number: 0 reads every pixel as black, a negative one inverts the
    picture under the stretch, NaN poisons every embedding."""
    if scale is not None and not (math.isfinite(scale) and scale > 0):
        raise InputError(f"{name} {scale}: the DN multiplier must be a positive number (e.g. 1e-4)")


@dataclass(frozen=True)
class Scaling:
    """DN -> reflectance-like float: ``(dn + offset) * scale``; ``scale=None`` picks by dtype
    (uint8: 1/255, uint16/int16: 1/10000 (Sentinel-2/Landsat-style reflectance), floats: 1)."""

    scale: float | None = None
    offset: float = 0.0

    def __post_init__(self) -> None:
        check_scale(self.scale)

    @classmethod
    def sentinel2(cls, offset: bool = False) -> Scaling:
        """Sentinel-2 L2A: DN / 10000, or (DN - 1000) / 10000 for baseline >= 04.00 products."""
        return cls(scale=1e-4, offset=S2_L2A_OFFSET_DN if offset else 0.0)

    def factor(self, dtype: np.dtype | str) -> float:  # rasterio names dtypes by str
        if self.scale is not None:
            return float(self.scale)
        kind = np.dtype(dtype)
        if kind == np.uint8:
            return 1.0 / 255.0
        if kind in (np.uint16, np.int16, np.uint32, np.int32):
            return 1e-4
        return 1.0

    def apply(self, dn: np.ndarray, dtype: np.dtype | str) -> np.ndarray:
        values = dn.astype(np.float32)
        if self.offset:
            values += np.float32(self.offset)
        values *= np.float32(self.factor(dtype))
        return values


@dataclass(frozen=True)
class Stretch:
    """Per-band linear stretch of the ``low``-``high`` percentiles to ``[0, 1]`` (clipped)."""

    low: float = 2.0
    high: float = 98.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.low < self.high <= 100.0:
            raise InputError(f"stretch percentiles must satisfy 0 <= low < high <= 100, got {self.low}, {self.high}")

    def limits(self, values: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """``[C, 2]`` (low, high) per band of ``values`` ``[C, H, W]`` over the ``valid`` pixels."""
        limits = np.zeros((values.shape[0], 2), np.float32)
        for band in range(values.shape[0]):
            pixels = values[band][valid]
            if pixels.size == 0:
                limits[band] = (0.0, 1.0)
                continue
            lo, hi = np.percentile(pixels, [self.low, self.high])
            limits[band] = (lo, hi if hi > lo else lo + 1e-6)
        return limits


def apply_limits(values: np.ndarray, limits: np.ndarray) -> np.ndarray:
    """Stretch ``values`` ``[C, H, W]`` with per-band ``limits`` ``[C, 2]`` to ``[0, 1]``."""
    lo, hi = limits[:, 0, None, None], limits[:, 1, None, None]
    return np.clip((values - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def valid_mask(masked: np.ma.MaskedArray) -> np.ndarray:
    """``[H, W]`` True where every band holds data (not nodata, not masked, not NaN)."""
    data = np.ma.getdata(masked)
    invalid = cast(np.ndarray, np.ma.getmaskarray(masked).any(axis=0))  # [H, W]: any over the bands
    if np.issubdtype(data.dtype, np.floating):
        invalid |= ~np.isfinite(data).all(axis=0)
    return ~invalid


def _mask_from_values(dataset: Any, indexes: Sequence[int]) -> bool:
    """True when the selected bands' masks come only from a nodata value (or there is none): then the
    mask is ``value == nodata``, and reading it through GDAL would decode the window a second time."""
    flags = dataset.mask_flag_enums
    return all(list(flags[i - 1]) in ([MaskFlags.nodata], [MaskFlags.all_valid]) for i in indexes)


def _integral(window: Window, out_shape: tuple[int, int]) -> bool:
    parts = (window.col_off, window.row_off, window.width, window.height)
    return all(float(v).is_integer() for v in parts) and (int(window.height), int(window.width)) == tuple(out_shape)


def _invalid_by_value(values: np.ndarray, nodatas: Sequence[float | None]) -> np.ndarray:
    invalid = np.zeros(values.shape[1:], bool)
    for band, nodata in enumerate(nodatas):
        if nodata is not None:
            invalid |= np.isnan(values[band]) if np.isnan(nodata) else values[band] == nodata
        if np.issubdtype(values.dtype, np.floating):
            invalid |= ~np.isfinite(values[band])
    return invalid


def read_window(dataset: Any, indexes: Sequence[int], window: Window, out_shape: tuple[int, int],
                resampling: Resampling = Resampling.bilinear, fill: Fill | None = None,
                ) -> tuple[np.ndarray, np.ndarray]:
    """Raw DN ``[C, h, w]`` and the valid mask ``[h, w]`` of ``window`` (inside the raster) resampled to
    ``out_shape``. Invalid pixels (``fill``: see ``clipsuite.remote.fill``) are set to 0 in the values.

    At native resolution with nodata-value masks (GeoTIFFs as Sentinel-2 tiles ship) the mask is
    computed from the values: the same mask as GDAL's, for one decode of the window instead of two.
    Resampled windows at a collar's edge mix fill into the pixels next to it (a pixel wholly in the
    collar is still found)."""
    fill = fill or Fill()
    zero = zero_rule_applies(dataset, list(indexes), fill)
    if fill.value is not None or _integral(window, out_shape) and _mask_from_values(dataset, indexes):
        nodatas = [fill.value if fill.value is not None else dataset.nodatavals[i - 1] for i in indexes]
        if _integral(window, out_shape):
            values = dataset.read(list(indexes), window=window)
        else:  # --nodata replaces the file's own mask: read the values, mask them here
            values = dataset.read(list(indexes), window=window, out_shape=(len(indexes), *out_shape),
                                  resampling=resampling)
        invalid = _invalid_by_value(values, nodatas)
    else:
        masked = dataset.read(list(indexes), window=window, out_shape=(len(indexes), *out_shape),
                              resampling=resampling, masked=True)
        invalid = ~valid_mask(masked)
        values = np.ma.getdata(masked).copy()
    if zero:
        invalid |= (values == 0).all(axis=0)
    values[:, invalid] = 0
    return values, ~invalid


def scene_statistics(dataset: Any, indexes: Sequence[int], scaling: Scaling, stretch: Stretch | None,
                     fill: Fill | None = None, max_side: int = 512) -> tuple[np.ndarray | None, float]:
    """Stretch limits (None without a stretch) over the valid pixels only, and the scene's fill fraction,
    from one decimated read (longest side ``max_side`` px, nearest: each sample is a real pixel), so the
    tiles of a scene share one colour mapping without the scene being held in memory."""
    factor = max(1.0, max(dataset.width, dataset.height) / max_side)
    shape = (max(1, int(dataset.height / factor)), max(1, int(dataset.width / factor)))
    values, valid = read_window(dataset, indexes, Window(0, 0, dataset.width, dataset.height), shape,
                                Resampling.nearest, fill)
    limits = stretch.limits(scaling.apply(values, dataset.dtypes[0]), valid) if stretch is not None else None
    return limits, 1.0 - float(valid.mean())


def scene_limits(dataset: Any, indexes: Sequence[int], scaling: Scaling, stretch: Stretch,
                 max_side: int = 512, fill: Fill | None = None) -> np.ndarray:
    """Stretch limits for a whole scene from a decimated read (see ``scene_statistics``)."""
    limits, _ = scene_statistics(dataset, indexes, scaling, stretch, fill, max_side)
    assert limits is not None
    return limits


def crs_of(dataset: Any, path: str | Path = "") -> str | None:
    """The CRS as ``EPSG:n`` (or WKT); ``None`` with a ``NoCRSWarning`` when the raster has none."""
    if dataset.crs is None:
        warnings.warn(f"{path or dataset.name}: raster has no CRS; geometry is given in pixel coordinates",
                      NoCRSWarning, stacklevel=3)
        return None
    epsg = dataset.crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else dataset.crs.to_wkt()


def read_image(path: str | Path, bands: Sequence[BandRef] | None = None, scaling: Scaling | None = None,
               stretch: Stretch | None = Stretch(), fill: Fill | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A whole (small) raster -> float ``[C, H, W]`` and valid mask ``[H, W]``: for image chips such as
    EuroSAT-MS or captioned dataset images, not for scenes (use ``tiling.iter_tiles``)."""
    scaling = scaling or Scaling()
    with open_raster(path) as dataset:
        indexes = resolve_bands(dataset, bands, path)
        values, valid = read_window(dataset, indexes, Window(0, 0, dataset.width, dataset.height),
                                    (dataset.height, dataset.width), Resampling.nearest, fill)
        scaled = scaling.apply(values, dataset.dtypes[0])
    if stretch is not None:
        scaled = apply_limits(scaled, stretch.limits(scaled, valid))
    scaled[:, ~valid] = 0
    return scaled, valid
