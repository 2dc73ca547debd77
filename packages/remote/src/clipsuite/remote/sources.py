"""What a scene is: one raster file, or a set of band files (a folder or glob of ``_B*`` files, a Sentinel-2
``.SAFE``, a Landsat Collection 2 folder, a STAC item), found in the paths a user gives.

``find_scene_sources`` turns paths into ``SceneSource`` objects (small, picklable, stored in the index so
search can re-open a hit's scene); ``open_scene`` opens one as a rasterio dataset that the tiling code
reads window by window (a band set through an in-memory VRT, see ``band_files``).
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import rasterio
from rasterio.errors import RasterioIOError

from clipsuite.core.errors import InputError, first_line
from clipsuite.remote.band_files import (
    COMMON_ALIASES,
    BandHeader,
    band_sort_key,
    canonical_band,
    common_names_for,
    parse_band_file,
    read_header,
    stack_vrt,
)
from clipsuite.remote.rasters import BandRef, Scaling, io_reason, open_raster

RASTER_SUFFIXES = (".tif", ".tiff", ".vrt", ".jp2", ".img")
GLOB_CHARS = set("*?[")


@dataclass(frozen=True)
class BandFile:
    """One band of a band set: its name (``B04``), the file (path or URL), the band in that file and
    its common name (``red``) where known."""

    name: str
    path: str
    index: int = 1
    common: str | None = None


@dataclass(frozen=True)
class SceneSource:
    """A scene: ``bands`` empty for a single raster file at ``label``; else the band files of the set.
    ``scale``/``offset``: DN scaling from the product's metadata (Sentinel-2 baseline offset, Landsat
    MTL), used where the corresponding flag is not given; ``origin`` says where they came from."""

    label: str
    kind: str = "file"  # file | band-files | safe | landsat | stac
    bands: tuple[BandFile, ...] = ()
    scale: float | None = None
    offset: float | None = None
    origin: str = ""
    notes: tuple[str, ...] = field(default=())

    def __str__(self) -> str:
        return self.label

    @property
    def is_band_set(self) -> bool:
        return bool(self.bands)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SceneSource:
        bands = tuple(BandFile(**b) for b in data.get("bands", ()))
        return cls(data["label"], data.get("kind", "file"), bands, data.get("scale"), data.get("offset"),
                   data.get("origin", ""), tuple(data.get("notes", ())))

    def names(self) -> list[str]:
        return [b.name for b in self.bands]

    def chosen(self, bands: Sequence[BandRef] | None) -> list[str]:
        """Band names selected by ``bands`` (names, common names, 1-based indexes in the set's order);
        ``None``: red, green, blue where the set knows them, else its first three bands."""
        names = self.names()
        if not bands:
            by_common = {b.common: b.name for b in self.bands if b.common}
            if all(c in by_common for c in ("red", "green", "blue")):
                return [by_common["red"], by_common["green"], by_common["blue"]]
            return names * 3 if len(names) == 1 else names[:3] if len(names) >= 3 else _too_few(self.label, names)
        out = []
        for band in bands:
            if isinstance(band, str) and band.strip().isdigit():
                band = int(band)
            if isinstance(band, int):
                if not 1 <= band <= len(names):
                    raise InputError(f"{self.label}: band {band} requested but the scene has {len(names)} band "
                                     f"file(s) ({', '.join(names)})")
                out.append(names[band - 1])
                continue
            key, word = canonical_band(band), band.strip().lower()
            match = next((b.name for b in self.bands if b.name == key), None) or next(
                (b.name for b in self.bands if b.common and b.common == word), None) or next(
                (b.name for b in self.bands if b.common and b.common == COMMON_ALIASES.get(word)), None)
            if match is None:
                raise InputError(f"{self.label}: no band named '{band}' (band files: {', '.join(names)})")
            out.append(match)
        return out

    def vrt(self, bands: Sequence[BandRef] | None, resolution: float | None = None) -> str:
        """The in-memory VRT of this band set on the grid of the chosen bands (headers read here);
        ``resolution``: the tiles' ground size, which picks the grid (``band_files.grid_for``)."""
        chosen = self.chosen(bands)
        paths = {b.name: b.path for b in self.bands}
        headers = {b.name: _header(b, self.label) for b in self.bands}
        common = {b.name: b.common for b in self.bands if b.common}
        return stack_vrt(self.names(), paths, headers, list(dict.fromkeys(chosen)), common, self.label,
                         {b.name: b.index for b in self.bands}, resolution)


def _too_few(label: str, names: list[str]) -> list[str]:
    raise InputError(f"{label}: 3 bands needed by default but the scene has {len(names)} band file(s) "
                     f"({', '.join(names)}); choose with --bands")


def _header(band: BandFile, label: str) -> BandHeader:
    local = not band.path.startswith(("http://", "https://", "s3://", "gs://", "/vsi"))
    if local and not Path(band.path).is_file():
        raise InputError(f"{band.path}: band {band.name} of scene {label}: file not found")
    try:
        with rasterio.open(band.path if local else _remote(band.path)) as dataset:
            return read_header(dataset, band.path, band.index)
    except RasterioIOError as error:
        first = first_line(error, empty="unreadable")
        raise InputError(f"{band.path}: band {band.name} of scene {label}: not a readable raster ({first})") from None


def _remote(href: str) -> str:
    from clipsuite.remote.band_files import gdal_path

    return gdal_path(href)


def scene_scaling(scene: SceneSource | Path | str, scaling: Scaling) -> Scaling:
    """The run's scaling, with the product's own where no flag set it: the metadata scale when ``--scale``
    is not given, the metadata offset when ``--s2-offset`` is not (a Landsat MTL offset is in units of
    its own scale, so it goes with that scale only)."""
    if not isinstance(scene, SceneSource) or (scene.scale is None and scene.offset is None):
        return scaling
    scale = scaling.scale if scaling.scale is not None else scene.scale
    if scaling.offset:
        offset = scaling.offset
    elif scene.kind == "landsat" and scaling.scale is not None:
        offset = 0.0
    else:
        offset = scene.offset or 0.0
    return Scaling(scale, offset)


@contextmanager
def open_scene(scene: SceneSource | Path | str, bands: Sequence[BandRef] | None = None,
               resolution: float | None = None) -> Iterator[Any]:
    """A rasterio dataset for ``scene``: the file itself, or the VRT of a band set on the chosen bands' grid
    (``resolution``: the tiles' ground size; tile windows are in the pixels of the grid it picks)."""
    if not isinstance(scene, SceneSource) or not scene.is_band_set:
        with open_raster(scene.label if isinstance(scene, SceneSource) else scene) as dataset:
            yield dataset
        return
    xml = scene.vrt(bands, resolution)
    try:
        dataset = rasterio.open(xml)
    except RasterioIOError as error:
        raise InputError(f"{scene.label}: band files could not be stacked ({io_reason(error)})") from None
    try:
        yield dataset
    finally:
        dataset.close()


def check_scene_sets(scenes: Sequence[SceneSource], bands: Sequence[BandRef] | None,
                     resolution: float | None = None) -> None:
    """Band sets: the chosen bands exist and share a grid (CRS, overlapping footprints), for every scene
    before any work; a broken delivery is an error whatever ``on_error`` says."""
    for scene in scenes:
        if scene.is_band_set:
            scene.vrt(bands, resolution)


def _band_candidate(path: Path) -> tuple[str, str, int | None] | None:
    """``(group key, band, res tag)`` for a one-band raster named like a band file, else None."""
    parsed = parse_band_file(path.name)
    if parsed is None:
        return None
    try:
        with rasterio.open(path) as dataset:
            if dataset.count != 1:
                return None
    except RasterioIOError:  # a broken band of a set: its scene's header check names it (the set is broken)
        pass
    prefix, band, res = parsed
    return (prefix if prefix else str(path.parent) + os.sep), band, res


def group_band_files(files: Sequence[Path]) -> tuple[list[SceneSource], list[Path]]:
    """Band sets among ``files`` (by the name before the band token) and the other files."""
    groups: dict[str, dict[str, tuple[Path, int | None]]] = {}
    rest: list[Path] = []
    for path in files:
        found = _band_candidate(path)
        if found is None:
            rest.append(path)
            continue
        key, band, res = found
        group = groups.setdefault(key, {})
        if band in group:  # Sentinel-2 L2A ships B02 at 10, 20 and 60 m: keep the finest
            other, other_res = group[band]
            if res is None or other_res is None or res == other_res:
                raise InputError(f"{path}: band {band} given twice in one scene (also {other})")
            if res > other_res:
                continue
        group[band] = (path, res)
    scenes = []
    for key, group in groups.items():
        names = sorted(group, key=band_sort_key)
        first = group[names[0]][0]
        label = str(first.parent / key) if not key.endswith(os.sep) else key.rstrip(os.sep)
        common = common_names_for(key)
        bands = tuple(BandFile(n, str(group[n][0]), 1, common.get(n)) for n in names)
        scene = SceneSource(label, "band-files", bands)
        headers = {b.name: _header(b, label) for b in bands}
        from clipsuite.remote.band_files import check_same_crs

        check_same_crs(headers, {b.name: b.path for b in bands}, label)
        scenes.append(scene)
    return scenes, rest


def _expand(source: str) -> list[Path]:
    matches = sorted(glob.glob(source, recursive=True))
    if not matches:
        raise InputError(f"{source}: no files match")
    return [Path(m) for m in matches]


def find_scene_sources(sources: Sequence[str | os.PathLike[str] | SceneSource]) -> list[SceneSource]:
    """Scenes in files, folders (recursively, sorted) and globs: raster files, band-file sets, ``.SAFE``
    folders, Landsat folders, STAC items (``.json``). Refuses an empty result."""
    from clipsuite.remote import products, stac

    found: list[SceneSource] = []
    files: list[Path] = []
    for source in sources:
        if isinstance(source, SceneSource):
            found.append(source)
            continue
        text = os.fspath(source)
        path = Path(text)
        if not path.exists() and GLOB_CHARS & set(text):
            files.extend(_expand(text))
        elif path.is_dir() and products.is_safe(path):
            found.extend(products.safe_scenes(path))
        elif path.is_dir():
            safes = sorted(p for p in path.rglob("*") if p.is_dir() and products.is_safe(p))
            for safe in safes:
                found.extend(products.safe_scenes(safe))
            for item in sorted(path.rglob("*")):
                if not item.is_file() or any(s in item.parents for s in safes):
                    continue
                if item.suffix.lower() in RASTER_SUFFIXES:
                    files.append(item)
                elif item.suffix.lower() == ".json" and stac.looks_like_stac(item):
                    found.extend(stac.stac_scenes(item))
        elif path.is_file() and path.suffix.lower() == ".json":
            found.extend(stac.stac_scenes(path))
        elif path.is_file():
            files.append(path)
        else:
            raise InputError(f"{path}: not found")
    band_sets, rest = group_band_files(files)
    found.extend(products.with_landsat_metadata(s) for s in band_sets)
    found.extend(SceneSource(str(p)) for p in rest)
    if not found:
        raise InputError(f"{', '.join(str(s) for s in sources)}: no raster files ({', '.join(RASTER_SUFFIXES)}), "
                         "band files, .SAFE folders or STAC items")
    return found
