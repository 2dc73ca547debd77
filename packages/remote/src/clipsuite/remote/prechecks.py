"""What ``clipsuite-remote index`` can refuse from arguments and raster headers alone, before torch.

A band name the raster lacks, a band index past its count, a corrupt or non-raster file, a folder
without scenes, a tile larger than every raster: each is one line in well under a second, where the
same answer used to come after torch and the model were loaded. Only headers are read (rasterio opens
a file's directory, not its pixels); damaged data blocks still show when the scene is read.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from clipsuite.core.errors import InputError
from clipsuite.core.skipping import OnError, SkipLog
from clipsuite.remote.rasters import BandRef, check_scale, resolve_bands
from clipsuite.remote.sources import SceneSource, check_scene_sets, find_scene_sources, open_scene

INDEX_KINDS = ("exact", "ivf", "ivfpq", "hnsw")  # the store's kinds (clipsuite.core.index.KINDS, a torch module)
STRETCH_SCOPES = ("scene", "tile")  # one stretch per scene, or each tile on its own (as training chips)


def check_index_options(kind: str, stretch_scope: str | None, resolution: float | None,
                        scale: float | None) -> None:
    """What ``clipsuite-remote index`` can refuse from its arguments alone, before any file is opened."""
    check_resolution(resolution)
    if kind not in INDEX_KINDS:
        raise InputError(f"unknown index kind '{kind}' (choose from {', '.join(INDEX_KINDS)})",
                         cli=f"--kind '{kind}': choose exact, ivf, ivfpq or hnsw")
    if stretch_scope is not None:
        check_stretch_scope(stretch_scope)
    check_scale(scale, "--scale")


def check_stretch_scope(scope: str) -> None:
    if scope not in STRETCH_SCOPES:
        raise InputError(f"stretch scope '{scope}': choose scene or tile",
                         cli=f"--stretch-scope '{scope}': choose scene or tile")


def check_resolution(resolution: float | None, flag: str = "--resolution") -> None:
    """A ground size per output pixel must be positive: an argument error, answered before any file is read."""
    if resolution is not None and not resolution > 0:  # (also refuses NaN)
        raise InputError(f"resolution must be positive, got {resolution:g}",
                         cli=f"{flag} {resolution:g}: must be a positive ground size per output pixel "
                             "(e.g. 10 for 10 m)")


@dataclass(frozen=True)
class SceneSize:
    """A scene's grid in output pixels (at ``resolution``, or its own)."""

    scene: str
    width: int
    height: int

    def tile_fits(self, size: int, min_valid: float) -> bool:
        """A tile of ``size`` can be indexed: the raster fills at least ``min_valid`` of it (a raster smaller
        than a tile gives one padded tile, valid only where the raster is)."""
        covered = min(self.width, size) * min(self.height, size) / float(size * size)
        return covered >= max(min_valid, 1e-9)


def scene_size(scene: SceneSource, bands: Sequence[BandRef] | None, resolution: float | None) -> SceneSize:
    """Open ``scene``'s header (one ``InputError`` for a corrupt or non-raster file), check the band
    selection (always an error: a wrong selection is the user's, not the file's) and give its size."""
    with open_scene(scene, bands, resolution) as dataset:
        resolve_bands(dataset, bands, str(scene))
        sx = dataset.res[0] / resolution if resolution else 1.0
        sy = dataset.res[1] / resolution if resolution else 1.0
        # rounded as a tile's read rounds its output size (tiling._read_tile)
        return SceneSize(str(scene), max(1, round(dataset.width * sx)), max(1, round(dataset.height * sy)))


def check_index_inputs(paths: Sequence[str | os.PathLike[str]], bands: Sequence[BandRef] | None,
                       resolution: float | None, tile_size: int, min_valid: float,
                       on_error: OnError = "skip") -> list[SceneSource]:
    """The scenes ``paths`` name, each header read: refuses no scenes, a band selection a scene lacks, a
    broken band set, every scene unreadable (or the first under ``on_error='fail'``; under ``skip`` the
    index lists the unreadable ones), and a tile that fits no scene. Returns the scenes found."""
    check_resolution(resolution)
    scenes = find_scene_sources(paths)
    check_scene_sets(scenes, bands, resolution)
    log = SkipLog(on_error)
    sizes: list[SceneSize] = []
    for scene in scenes:
        if log.attempt(str(scene), lambda: _readable(scene, bands, resolution)) is None:  # noqa: B023 - called at once
            continue
        sizes.append(scene_size(scene, bands, resolution))
    if scenes and not sizes:
        raise InputError(f"none of the {len(scenes)} scenes could be read (first: {log.skipped[0].reason})")
    check_tiles_fit(sizes, tile_size, min_valid, resolution)
    return scenes


def check_tiles_fit(sizes: Sequence[SceneSize], tile_size: int, min_valid: float,
                    resolution: float | None = None) -> None:
    """Refuse a tile that fits none of the scenes (each would give one padded tile below ``min_valid``,
    and the index would be empty), naming the largest tile that fits."""
    if not sizes or any(s.tile_fits(tile_size, min_valid) for s in sizes):
        return
    best = max(sizes, key=lambda s: min(s.width, s.height))  # the scene that takes the largest whole tile
    side = min(best.width, best.height)
    at = f" at {resolution:g} units per pixel" if resolution else ""
    what = (f"{best.scene}: a {tile_size} px tile does not fit the raster ({best.width} x {best.height} px{at}; "
            f"min-valid {min_valid:g} needs {100 * min_valid:.0f} % of a tile inside it)")
    raise InputError(f"{what}; use tiles of {side} px or less", cli=f"{what}; give --tile-size {side} or less")


def _readable(scene: SceneSource, bands: Sequence[BandRef] | None, resolution: float | None) -> bool:
    """Opens the header (or stacks the band set), else ``InputError`` naming the file."""
    with open_scene(scene, bands, resolution):
        return True
