"""Windowed tiling of scenes larger than memory; every tile keeps its CRS and bounds.

A grid of tiles of ``size`` output pixels at ``resolution`` ground units per pixel (default: the
raster's own) with ``overlap`` output pixels shared between neighbours. The last row/column is
shifted back to end at the raster's edge (as torchgeo's ``GridGeoSampler`` does) so every tile is
full; a raster smaller than one tile gives one tile, padded and marked invalid outside. Each tile is
one windowed read: memory holds one tile (plus the stretch statistics), whatever the scene size.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine
from rasterio.enums import Resampling
from rasterio.windows import Window

from clipsuite.core.errors import InputError
from clipsuite.remote.fill import Fill, is_constant
from clipsuite.remote.rasters import (
    BandRef,
    Scaling,
    Stretch,
    apply_limits,
    crs_of,
    read_window,
    resolve_bands,
    scene_limits,
)
from clipsuite.remote.sources import SceneSource, open_scene


@dataclass(frozen=True)
class TileSpec:
    """``size`` output pixels per side, ``overlap`` output pixels, ``resolution`` ground units per output
    pixel (``None``: native), ``min_valid``: tiles with a smaller valid fraction are skipped."""

    size: int = 224
    overlap: int = 0
    resolution: float | None = None
    min_valid: float = 0.5

    def __post_init__(self) -> None:
        if self.size < 1:
            raise InputError(f"tile size must be positive, got {self.size}")
        if not 0 <= self.overlap < self.size:
            raise InputError(f"tile overlap must be in [0, size), got {self.overlap} for size {self.size}",
                             cli=f"--overlap {self.overlap} must be smaller than --tile-size {self.size}")
        if self.resolution is not None and self.resolution <= 0:
            raise InputError(f"tile resolution must be positive, got {self.resolution}")
        if not 0.0 <= self.min_valid <= 1.0:
            raise InputError(f"min_valid must be within [0, 1], got {self.min_valid}")


@dataclass
class Tile:
    """One tile: pixels ``[C, size, size]`` (stretched to [0, 1] unless no stretch), its valid mask, and
    its place: source ``window`` (pixels), ``bounds`` (left, bottom, right, top) in ``crs`` (pixel
    coordinates when ``crs`` is None) and the output ``transform``."""

    scene: str
    row: int
    col: int
    window: Window
    bounds: tuple[float, float, float, float]
    crs: str | None
    transform: Affine
    pixels: np.ndarray
    valid: np.ndarray

    @property
    def valid_fraction(self) -> float:
        return float(self.valid.mean())

    def metadata(self) -> dict[str, Any]:
        """JSON-ready geometry for an index's metadata table."""
        w = self.window
        return {"id": f"{Path(self.scene).name}:{self.row}:{self.col}", "path": self.scene, "row": self.row,
                "col": self.col, "window": [float(w.col_off), float(w.row_off), float(w.width), float(w.height)],
                "bounds": [float(b) for b in self.bounds], "crs": self.crs,
                "valid_fraction": round(self.valid_fraction, 4)}


@dataclass
class TilingStats:
    """What a pass over a scene did: tiles yielded and tiles skipped for too little valid data (of
    which ``skipped_constant`` held one constant value: fill without a tag, never data)."""

    yielded: int = 0
    skipped_nodata: int = 0
    skipped_constant: int = 0
    scenes: list[str] = field(default_factory=list)


def _starts(extent: float, window: float, stride: float) -> list[float]:
    """Window starts covering ``[0, extent)``; the last one is moved back to end at the edge."""
    if extent <= window:
        return [0.0]
    count = math.ceil((extent - window) / stride) + 1
    starts = [i * stride for i in range(count)]
    starts[-1] = extent - window
    return starts


def tile_windows(width: int, height: int, native_res: tuple[float, float], spec: TileSpec,
                 ) -> list[tuple[int, int, Window]]:
    """``(row, col, window)`` in source pixels for a ``width`` x ``height`` raster."""
    sx = spec.resolution / native_res[0] if spec.resolution else 1.0
    sy = spec.resolution / native_res[1] if spec.resolution else 1.0
    win_w, win_h = spec.size * sx, spec.size * sy
    stride_w, stride_h = (spec.size - spec.overlap) * sx, (spec.size - spec.overlap) * sy
    out = []
    for r, row_off in enumerate(_starts(height, win_h, stride_h)):
        for c, col_off in enumerate(_starts(width, win_w, stride_w)):
            out.append((r, c, Window(col_off, row_off, min(win_w, width), min(win_h, height))))
    return out


def count_tiles(path: str | Path | SceneSource, spec: TileSpec, bands: Sequence[BandRef] | None = None) -> int:
    with open_scene(path, bands, spec.resolution) as dataset:
        return len(tile_windows(dataset.width, dataset.height, dataset.res, spec))


def iter_tiles(path: str | Path | SceneSource, bands: Sequence[BandRef] | None = None,
               spec: TileSpec | None = None, scaling: Scaling | None = None, stretch: Stretch | None = Stretch(),
               stats: TilingStats | None = None, part: tuple[int, int] = (0, 1),
               limits: np.ndarray | None = None, fill: Fill | None = None, per_tile: bool = False,
               ) -> Iterator[Tile]:
    """Tiles of one scene, read window by window. ``part=(i, n)`` yields only every tile whose grid
    position ``% n == i`` (a process's share). Tiles below ``spec.min_valid`` are counted in ``stats``
    and skipped. A raster without CRS warns once and gives pixel-coordinate bounds. ``limits``: stretch
    limits computed beforehand (``rasters.scene_limits``), so worker processes share one colour mapping.
    ``path``: a raster file or a ``SceneSource`` (band files on one grid). ``fill``: see ``fill.Fill``;
    a tile of one constant value is skipped as fill. ``per_tile``: stretch each tile on its own pixels (as
    training stretches each chip) instead of with the scene's limits."""
    spec, scaling = spec or TileSpec(), scaling or Scaling()
    stats = stats if stats is not None else TilingStats()
    stats.scenes.append(str(path))
    with open_scene(path, bands, spec.resolution) as dataset:
        indexes = resolve_bands(dataset, bands, str(path))
        crs = crs_of(dataset, str(path))
        dtype = dataset.dtypes[0]
        if limits is None and stretch is not None and not per_tile:
            limits = scene_limits(dataset, indexes, scaling, stretch, fill=fill)
        for position, (row, col, window) in enumerate(tile_windows(dataset.width, dataset.height,
                                                                   dataset.res, spec)):
            if position % part[1] != part[0]:
                continue
            tile, constant = _read_tile(dataset, str(path), indexes, row, col, window, spec, crs, dtype, scaling,
                                        limits, fill, stretch if per_tile else None)
            if tile.valid_fraction < max(spec.min_valid, 1e-9) or constant:
                stats.skipped_nodata += 1
                stats.skipped_constant += int(constant and tile.valid_fraction >= max(spec.min_valid, 1e-9))
                continue
            stats.yielded += 1
            yield tile


def _read_tile(dataset: Any, scene: str, indexes: Sequence[int], row: int, col: int, window: Window,
               spec: TileSpec, crs: str | None, dtype: str, scaling: Scaling, limits: np.ndarray | None,
               fill: Fill | None = None, own_stretch: Stretch | None = None) -> tuple[Tile, bool]:
    # output pixels the window fills (a raster smaller than a tile fills part of it)
    full_w = spec.size * (spec.resolution / dataset.res[0] if spec.resolution else 1.0)
    full_h = spec.size * (spec.resolution / dataset.res[1] if spec.resolution else 1.0)
    out_w = max(1, round(spec.size * window.width / full_w))
    out_h = max(1, round(spec.size * window.height / full_h))
    # box average when shrinking (every source pixel counts once), bilinear when enlarging
    resampling = Resampling.average if window.width > out_w * 1.001 else Resampling.bilinear
    values, valid = read_window(dataset, indexes, window, (out_h, out_w), resampling, fill)
    constant = is_constant(values, valid)
    scaled = scaling.apply(values, dtype)
    if own_stretch is not None:  # per tile, as training stretches each chip
        scaled = apply_limits(scaled, own_stretch.limits(scaled, valid))
    elif limits is not None:
        scaled = apply_limits(scaled, limits)
    scaled[:, ~valid] = 0
    pixels = np.zeros((len(indexes), spec.size, spec.size), np.float32)
    mask = np.zeros((spec.size, spec.size), bool)
    pixels[:, :out_h, :out_w] = scaled
    mask[:out_h, :out_w] = valid
    window_transform = dataset.window_transform(window)
    transform = window_transform @ Affine.scale(window.width / out_w, window.height / out_h)
    left, top = window_transform @ (0, 0)
    right, bottom = window_transform @ (window.width, window.height)
    bounds = (min(left, right), min(bottom, top), max(left, right), max(bottom, top))
    return Tile(scene, row, col, window, bounds, crs, transform, pixels, mask), constant
