"""Searching a scene index: text (any language the model reads) -> tiles, as GeoJSON, PNGs and HTML.

The index is the core's store (format 2); ``area`` (``geo_filter.GeoArea``, from ``--bbox`` or
``--within``) keeps only tiles whose footprint intersects it. Folders of the older in-memory format
(``metadata.jsonl``) still search without an area; with one they are refused, saying how to rebuild.

GeoJSON polygons are in WGS84 (RFC 7946) by default, reprojected from each scene's CRS; ``crs="scene"``
keeps the scenes' own CRS (all hits must share it) and names it in a ``crs`` member, which GDAL, QGIS
and geopandas read. Tiles of a raster without CRS stay in pixel coordinates, with a warning.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from rasterio.windows import Window

from clipsuite.core.errors import InputError
from clipsuite.core.fingerprint import check_same_backbone
from clipsuite.core.html_report import escape, page, table
from clipsuite.core.index import EmbeddingIndex
from clipsuite.core.index_store import IndexStore
from clipsuite.core.json_files import read_json
from clipsuite.core.models import ClipModel, load_model
from clipsuite.core.staging import atomic_write_json, atomic_write_text, staged_folder
from clipsuite.remote.geo_filter import (
    GeoArea,
    check_geo_store,
    filtered_search,
    footprint_geojson,
    is_old_index,
    old_index_error,
    open_store,
)
from clipsuite.remote.rasters import NoCRSWarning, apply_limits, read_window, resolve_bands, scene_limits
from clipsuite.remote.scenes import SceneIndexConfig, model_input
from clipsuite.remote.sources import open_scene, scene_scaling

WGS84 = "EPSG:4326"


@dataclass
class Hit:
    query: str
    rank: int
    score: float
    tile: dict[str, Any]  # the index metadata row: id, path, row, col, window, bounds, crs


@dataclass
class SceneIndex:
    """An opened scene index: the core's store (or an older in-memory index), how its tiles were read,
    and ``info`` (``scenes.json``: scenes, model identity, fill, skipped files)."""

    folder: Path
    store: IndexStore | EmbeddingIndex
    config: SceneIndexConfig
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def model(self) -> str | None:
        return self.store.config.model

    @property
    def dim(self) -> int:
        return self.store.dim

    def __len__(self) -> int:
        return len(self.store)

    def check_area(self) -> None:
        """One line, before any model loads, when this index cannot be filtered by place."""
        if isinstance(self.store, EmbeddingIndex):
            raise old_index_error(self.folder)
        check_geo_store(self.store, self.folder)

    def search(self, vectors: Any, k: int, area: GeoArea | None = None, shift: bool = True,
               ) -> tuple[np.ndarray, list[list[dict[str, Any] | None]]]:
        """(scores [Q, k], metadata rows) best first; ``shift``: text queries (cells chosen across the gap)."""
        if isinstance(self.store, EmbeddingIndex):
            if area is not None:
                self.check_area()
            result = self.store.search(vectors, k=k)
            return result.scores, result.metadata
        if area is not None:
            self.check_area()
            scores, rows = filtered_search(self.store, np.asarray(vectors, dtype=np.float32), k, area, shift)
        else:
            scores, rows = self.store.search(vectors, k=k, shift=shift)
        return scores, self.store.rows_metadata(rows)


def load_scene_index(index_dir: str | os.PathLike[str]) -> tuple[SceneIndex, SceneIndexConfig]:
    """Open a scene index folder (format 2, or the older format 1 for unfiltered search)."""
    folder = Path(index_dir)
    if not folder.is_dir():
        raise InputError(f"{folder}: index folder not found")
    store: IndexStore | EmbeddingIndex
    if is_old_index(folder):
        store = EmbeddingIndex.load(folder)
        info = dict(store.config.extra)
    else:
        store = open_store(folder)
        path = folder / "scenes.json"
        info = read_json(path) if path.is_file() else {}
    remote = info.get("remote") if isinstance(info, dict) else None
    if not isinstance(remote, dict):
        raise InputError(f"{folder}: not a scene index (no tiling settings; build it with `clipsuite-remote index`)")
    return SceneIndex(folder, store, SceneIndexConfig.from_dict(remote), info), SceneIndexConfig.from_dict(remote)


def search_vectors(index: SceneIndex, vectors: torch.Tensor, labels: Sequence[str], top: int = 20,
                   area: GeoArea | None = None, shift: bool = True) -> list[list[Hit]]:
    """Top-``top`` tiles for each query embedding (``labels`` name the queries in the output); with
    ``area`` only tiles whose WGS84 footprint intersects it. ``shift``: the vectors are text queries."""
    if vectors.shape[-1] != index.dim:
        raise InputError(f"query dimension {vectors.shape[-1]} does not match the index dimension {index.dim}")
    matrix = vectors.detach().float().cpu().numpy()
    scores, metadata = index.search(matrix, min(top, len(index)), area, shift)
    return [[Hit(label, rank + 1, float(score), dict(meta))
             for rank, (score, meta) in enumerate(zip(scores[q], metadata[q])) if meta is not None]
            for q, label in enumerate(labels)]


def _index_model(index: SceneIndex, index_dir: str | os.PathLike[str], clip: ClipModel | None,
                 device: str | None) -> ClipModel:
    if clip is None:
        if not index.model:
            raise InputError(f"{index_dir}: the index does not record its model; pass one with --model")
        clip = load_model(index.model, device=device)
    if clip.embed_dim != index.dim:
        raise InputError(f"{index_dir}: index dimension {index.dim} but the model embeds in {clip.embed_dim}")
    recorded = index.info.get("model_identity")
    if isinstance(recorded, dict):  # another model's query embeddings would score the tiles meaninglessly
        check_same_backbone(index_dir, recorded, clip, made="built with")
    return clip


def search_scenes(index_dir: str | os.PathLike[str], queries: Sequence[str], top: int = 20,
                  clip: ClipModel | None = None, device: str | None = None, area: GeoArea | None = None,
                  ) -> list[list[Hit]]:
    """Top-``top`` tiles per text query (within ``area`` when given). ``clip`` defaults to the model
    recorded in the index."""
    if not queries or any(not q.strip() for q in queries):
        raise InputError("search: give at least one non-empty query")
    index, _ = load_scene_index(index_dir)
    if area is not None:
        index.check_area()  # before the model loads
    clip = _index_model(index, index_dir, clip, device)
    return search_vectors(index, clip.encode_texts(list(queries)), queries, top, area, shift=True)


def search_by_image(index_dir: str | os.PathLike[str], pixels: torch.Tensor, labels: Sequence[str], top: int = 20,
                    clip: ClipModel | None = None, device: str | None = None, area: GeoArea | None = None,
                    ) -> list[list[Hit]]:
    """Search by example: ``pixels`` ``[B, C, H, W]`` in [0, 1] (e.g. ``rasters.read_image`` of a chip
    read with the index's bands and scaling) prepared the way indexed tiles were."""
    index, _ = load_scene_index(index_dir)
    if area is not None:
        index.check_area()
    clip = _index_model(index, index_dir, clip, device)
    vectors = clip.encode_image_tensor(model_input(pixels, clip)).cpu()
    return search_vectors(index, vectors, labels, top, area, shift=False)  # images: no modality gap to cross


def _polygon(bounds: Sequence[float]) -> dict[str, Any]:
    left, bottom, right, top = bounds
    ring = [[left, bottom], [right, bottom], [right, top], [left, top], [left, bottom]]
    return {"type": "Polygon", "coordinates": [ring]}


def hits_geojson(hits: Sequence[Hit], crs: str = "wgs84", thumbnails: Sequence[str] | None = None) -> dict[str, Any]:
    """A FeatureCollection, one polygon per hit with query, rank, score, scene, window and tile id."""
    if crs not in ("wgs84", "scene"):
        raise InputError(f"crs must be 'wgs84' or 'scene', got '{crs}'")
    scene_crs = {h.tile.get("crs") for h in hits}
    if None in scene_crs:
        warnings.warn("some hits come from rasters without CRS: their polygons are in pixel coordinates",
                      NoCRSWarning, stacklevel=2)
    if crs == "scene" and len(scene_crs) > 1:
        names = ', '.join(sorted(map(str, scene_crs)))
        raise InputError(f"hits come from scenes in different CRSs ({names}); "
                         "use the default WGS84 output")
    features = []
    for i, hit in enumerate(hits):
        geometry: dict[str, Any] | None = _polygon(hit.tile["bounds"])
        pixel_space: dict[str, Any] = {}
        if not hit.tile.get("crs"):
            # no CRS: its bounds are pixels, which a GIS would draw at 0 N 0 E; no geometry (RFC 7946 allows
            # null), the pixel polygon kept under a member of our own that says what it is
            pixel_space = {"pixel_polygon": geometry, "coordinates": "pixel (the raster has no CRS)"}
            geometry = None
        elif crs == "wgs84":  # the footprint --bbox / --within test (split at 180 degrees where it crosses)
            geometry = footprint_geojson(hit.tile["crs"], hit.tile["bounds"])
        properties = {**pixel_space, "query": hit.query, "rank": hit.rank, "score": round(hit.score, 6),
                      "tile": hit.tile["id"], "scene": hit.tile["path"], "row": hit.tile["row"], "col": hit.tile["col"],
                      "window": hit.tile["window"], "scene_crs": hit.tile.get("crs")}
        if thumbnails is not None:
            properties["thumbnail"] = thumbnails[i]
        features.append({"type": "Feature", "geometry": geometry, "properties": properties})
    collection: dict[str, Any] = {"type": "FeatureCollection", "features": features}
    if None in scene_crs:
        collection["clipsuite:pixel_coordinates"] = ("features without geometry come from rasters without CRS; "
                                                     "their pixel_polygon is in pixel coordinates")
    only = next(iter(scene_crs)) if len(scene_crs) == 1 else None
    if crs == "scene" and only and only.startswith("EPSG:"):
        collection["crs"] = {"type": "name", "properties": {"name": f"urn:ogc:def:crs:EPSG::{only.split(':')[1]}"}}
    return collection


def tile_thumbnail(tile: dict[str, Any], config: SceneIndexConfig, size: int = 128) -> Image.Image:
    """Re-read a hit's window with the index's bands, scaling and stretch; RGB PNG-ready."""
    scene = config.source(tile["path"])  # a band set is re-opened from the files the index recorded
    scaling = scene_scaling(scene, config.scaling)
    with open_scene(scene, config.bands, config.tile.resolution) as dataset:
        indexes = resolve_bands(dataset, config.bands, tile["path"])[:3]
        window = Window(*tile["window"])
        values, valid = read_window(dataset, indexes, window, (size, size), fill=config.filler)
        scaled = scaling.apply(values, dataset.dtypes[0])
        stretch = config.stretcher
        if stretch is not None and config.stretch_scope == "tile":
            scaled = apply_limits(scaled, stretch.limits(scaled, valid))
        elif stretch is not None:
            scaled = apply_limits(scaled, scene_limits(dataset, indexes, scaling, stretch, fill=config.filler))
        else:
            scaled = np.clip(scaled, 0, 1)
    scaled[:, ~valid] = 0
    if scaled.shape[0] < 3:
        scaled = np.repeat(scaled[:1], 3, axis=0)
    return Image.fromarray((scaled.transpose(1, 2, 0) * 255).round().astype(np.uint8))


def _html(hits: Sequence[Hit], thumbnails: Sequence[str]) -> str:
    rows = []
    for hit, thumb in zip(hits, thumbnails):
        left, bottom, right, top = hit.tile["bounds"]
        rows.append([escape(hit.query), str(hit.rank), f"{hit.score:.4f}", f"<img src='{escape(thumb)}' width=128>",
                     escape(Path(hit.tile["path"]).name),
                     f"{left:.1f}, {bottom:.1f}, {right:.1f}, {top:.1f} ({escape(hit.tile.get('crs'))})"])
    header = ["query", "rank", "score", "tile", "scene", "bounds (scene CRS)"]
    return page("clipsuite-remote search", [table(header, rows, cells_are_html=True)])


def write_search_results(hits: Sequence[Hit], config: SceneIndexConfig, output_dir: str | os.PathLike[str],
                         crs: str = "wgs84") -> Path:
    """``output_dir/hits.geojson``, ``thumbnails/NNN.png`` and ``index.html``, written as one staged folder."""
    if not hits:
        raise InputError("search: no hits to write (empty index?)")
    with staged_folder(output_dir, command="remote search") as folder:
        (folder / "thumbnails").mkdir()
        names = []
        for i, hit in enumerate(hits):
            name = f"thumbnails/{i:04d}.png"
            tile_thumbnail(hit.tile, config).save(folder / name)
            names.append(name)
        atomic_write_json(folder / "hits.geojson", hits_geojson(hits, crs, names), ensure_ascii=False)
        atomic_write_text(folder / "index.html", _html(hits, names))
    return Path(output_dir)


def hits_table(hits: Sequence[Hit]) -> list[dict[str, Any]]:
    return [{"query": h.query, "rank": h.rank, "score": round(h.score, 4), "tile": h.tile["id"],
             "bounds": json.dumps([round(b, 2) for b in h.tile["bounds"]])} for h in hits]
