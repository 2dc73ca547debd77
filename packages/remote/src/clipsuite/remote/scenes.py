"""Scene indexing: tile whole scenes window by window, embed the tiles, build the core's index store.

Every tile's geometry (scene, window, bounds, CRS, and its WGS84 bounds as numeric columns for
``--bbox`` / ``--within``) goes into the index's columnar metadata table, so a search hit is a place
on the ground. The index is the core's bounded-memory store (``clipsuite.core.index_store``, the one
``clipsuite index build`` writes): millions of tiles never sit in memory at once.
Tiles are read in DataLoader workers (each worker a disjoint share of
the tile grid) while the model encodes the previous batch. Under ``accelerate launch`` / ``torchrun``
each process embeds its share of the tiles into its own shard (the core's shard format, as
``clipsuite embed`` writes it); the main process then builds the index from all shards.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rasterio.errors import RasterioIOError
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from clipsuite.core.checkpoints import read_config
from clipsuite.core.embed import ShardWriter, process_layout, read_shards, shard_name
from clipsuite.core.errors import InputError
from clipsuite.core.index_build import build_store, plan_config
from clipsuite.core.index_store import ShardSource, StoreConfig
from clipsuite.core.models import ClipModel
from clipsuite.core.progress import progress_bar
from clipsuite.core.skipping import OnError, SkipLog, Skipped, check_on_error
from clipsuite.core.staging import StagedFile, atomic_write_json, staged_folder
from clipsuite.core.towers import vision_tower
from clipsuite.remote.fill import Fill, describe_rule
from clipsuite.remote.geo_filter import GeoSource
from clipsuite.remote.prechecks import STRETCH_SCOPES, check_stretch_scope
from clipsuite.remote.rasters import (
    BandRef,
    Scaling,
    Stretch,
    check_scale,
    io_reason,
    resolve_bands,
    scene_statistics,
)
from clipsuite.remote.sources import (
    RASTER_SUFFIXES,
    SceneSource,
    check_scene_sets,
    find_scene_sources,
    open_scene,
    scene_scaling,
)
from clipsuite.remote.tiling import TileSpec, TilingStats, count_tiles, iter_tiles

__all__ = ["RASTER_SUFFIXES", "STRETCH_SCOPES", "SceneIndexConfig", "build_scene_index", "check_scene_sets",
           "find_scenes"]


@dataclass
class SceneIndexConfig:
    """How scenes are read and tiled; stored in the index (``extra``) so search re-reads tiles alike."""

    bands: list[BandRef] | None = None
    tile: TileSpec = field(default_factory=TileSpec)
    scale: float | None = None
    offset: float = 0.0
    stretch: tuple[float, float] | None = (2.0, 98.0)
    batch_size: int = 64
    num_workers: int = 2
    progress: bool = True
    on_error: OnError = "skip"  # an unreadable scene among several: leave it out (listed) or stop
    nodata: float | None = None  # overrides every scene's own nodata (fill.Fill)
    stretch_scope: str = "scene"  # scene: one mapping per scene; tile: each tile on its own (as training chips)
    sources: dict[str, dict[str, Any]] = field(default_factory=dict)  # band-set scenes, for search to re-open

    def __post_init__(self) -> None:
        check_scale(self.scale)
        check_stretch_scope(self.stretch_scope)
        Fill(self.nodata)

    @property
    def filler(self) -> Fill:
        return Fill(self.nodata)

    def source(self, label: str) -> SceneSource | str:
        """The scene a tile's ``path`` names: a band set recorded in the index, else the raster file."""
        return SceneSource.from_dict(self.sources[label]) if label in self.sources else label

    @property
    def scaling(self) -> Scaling:
        return Scaling(self.scale, self.offset)

    @property
    def stretcher(self) -> Stretch | None:
        return Stretch(*self.stretch) if self.stretch is not None else None

    def to_dict(self) -> dict[str, Any]:
        return {"bands": self.bands, "tile": asdict(self.tile), "scale": self.scale, "offset": self.offset,
                "stretch": list(self.stretch) if self.stretch is not None else None, "nodata": self.nodata,
                "stretch_scope": self.stretch_scope, "sources": self.sources}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SceneIndexConfig:
        stretch = data.get("stretch")
        return cls(bands=data.get("bands"), tile=TileSpec(**data.get("tile", {})), scale=data.get("scale"),
                   offset=float(data.get("offset", 0.0)), stretch=tuple(stretch) if stretch else None,
                   nodata=data.get("nodata"), stretch_scope=data.get("stretch_scope", "scene"),
                   sources=dict(data.get("sources") or {}))


@dataclass
class SceneIndexResult:
    index_dir: Path
    tiles: int
    skipped_nodata: int
    scenes: int                                                 # scenes indexed
    skipped: list[Skipped] = field(default_factory=list)       # unreadable scenes left out
    fill: list[dict[str, Any]] = field(default_factory=list)   # per scene: label, fraction, how recognised


def find_scenes(sources: Sequence[str | os.PathLike[str] | SceneSource]) -> list[SceneSource]:
    """Scenes from files, folders (recursively, sorted) and globs: raster files, band-file sets, ``.SAFE``
    folders, Landsat folders, STAC items (``sources.find_scene_sources``); refuses an empty result."""
    return find_scene_sources(sources)


def model_input(pixels: torch.Tensor, clip: ClipModel) -> torch.Tensor:
    """Tiles ``[B, C, H, W]`` in [0, 1] -> the model's input: resized to its image size and normalised
    with its mean/std (extra bands reuse the RGB statistics in turn, like the ``repeat`` band rule)."""
    size = clip.image_size
    if pixels.shape[-2:] != (size, size):
        pixels = torch.nn.functional.interpolate(pixels, size=(size, size), mode="bilinear", antialias=True,
                                                 align_corners=False)
    mean = torch.tensor(clip.preprocess_cfg.mean, dtype=pixels.dtype)
    std = torch.tensor(clip.preprocess_cfg.std, dtype=pixels.dtype)
    channels = torch.arange(pixels.shape[1]) % len(mean)
    return (pixels - mean[channels].view(1, -1, 1, 1)) / std[channels].view(1, -1, 1, 1)


def _readable(scene: SceneSource, bands: Sequence[BandRef] | None, resolution: float | None) -> bool:
    """Opens (header) or raises ``InputError`` naming the file."""
    with open_scene(scene, bands, resolution):
        return True


def _statistics(dataset: Any, scene: SceneSource, indexes: list[int], config: SceneIndexConfig,
                ) -> tuple[np.ndarray | None, float]:
    stretch = config.stretcher if config.stretch_scope == "scene" else None
    try:  # a decimated read of every band: damaged data blocks show here, before any tile
        return scene_statistics(dataset, indexes, scene_scaling(scene, config.scaling), stretch, config.filler)
    except RasterioIOError as error:
        raise InputError(f"{scene}: not a readable raster ({io_reason(error)})") from None


def check_bands(clip: ClipModel, scenes: Sequence[SceneSource], config: SceneIndexConfig, log: SkipLog | None = None,
                fill: list[dict[str, Any]] | None = None) -> tuple[list[SceneSource], list[np.ndarray | None]]:
    """Resolve the bands of every scene up front (a bad file fails before any work) and compute each
    scene's stretch limits and fill fraction once (``fill`` receives one record per scene). The model
    must take as many bands as are selected. An unreadable scene goes to ``log`` (skipped or fatal by its
    policy); a wrong band selection or a broken band set is always an error.
    Returns the readable scenes and their limits."""
    in_chans = vision_tower(clip).in_chans
    log = log if log is not None else SkipLog("fail")  # (an empty SkipLog is falsy)
    check_scene_sets(scenes, config.bands, config.tile.resolution)
    kept, limits = [], []
    for scene in scenes:
        if log.attempt(str(scene), lambda: _readable(scene, config.bands, config.tile.resolution)) is None:  # noqa: B023 - called at once
            continue
        with open_scene(scene, config.bands, config.tile.resolution) as dataset:
            indexes = resolve_bands(dataset, config.bands, str(scene))
            if len(indexes) != in_chans:
                raise InputError(f"{scene}: {len(indexes)} bands selected but the model takes {in_chans}; "
                                 f"choose {in_chans} with --bands")
            stats = log.attempt(str(scene), lambda: _statistics(dataset, scene, indexes, config))  # noqa: B023
            rule = describe_rule(dataset, indexes, config.filler)
        if stats is not None:
            kept.append(scene)
            limits.append(stats[0])
            if fill is not None:
                fill.append({"scene": str(scene), "fraction": round(stats[1], 4), "rule": rule,
                             "scaling": scene.origin})
    if scenes and not kept:
        raise InputError(f"none of the {len(scenes)} scenes could be read (first: {log.skipped[0].reason})")
    return kept, limits


class SceneTiles(IterableDataset):
    """Tiles of several scenes; worker ``w`` of process ``r`` takes grid positions ``= r * W + w`` mod
    ``world * W``. Yields ``(pixels, metadata)`` for tiles and ``(None, {"skipped": n})`` per scene."""

    def __init__(self, scenes: Sequence[SceneSource], limits: Sequence[np.ndarray | None], config: SceneIndexConfig,
                 rank: int = 0, world: int = 1) -> None:
        self.scenes, self.limits, self.config = list(scenes), list(limits), config
        self.rank, self.world = rank, world

    def __iter__(self) -> Iterator[tuple[torch.Tensor | None, dict[str, Any]]]:
        info = get_worker_info()
        workers, worker = (info.num_workers, info.id) if info is not None else (1, 0)
        part = (self.rank * workers + worker, self.world * workers)
        for scene, limits in zip(self.scenes, self.limits):
            stats = TilingStats()
            for tile in iter_tiles(scene, self.config.bands, self.config.tile,
                                   scene_scaling(scene, self.config.scaling), self.config.stretcher, stats, part,
                                   limits, self.config.filler, self.config.stretch_scope == "tile"):
                yield torch.from_numpy(tile.pixels), tile.metadata()
            yield None, {"skipped": stats.skipped_nodata}


def _collate(items: list[tuple[torch.Tensor | None, dict[str, Any]]]) -> tuple[torch.Tensor | None, list, int]:
    tiles = [(p, m) for p, m in items if p is not None]
    skipped = sum(m["skipped"] for p, m in items if p is None)
    pixels = torch.stack([p for p, _ in tiles]) if tiles else None
    return pixels, [m for _, m in tiles], skipped


def _remove_other_layouts(folder: Path, world_tag: str) -> None:
    """Shards of an earlier run on another number of processes would be read in with this run's."""
    for path in folder.glob("shard-*-of-*.*"):
        if path.name.split("-of-")[1].split(".")[0] != world_tag:
            path.unlink(missing_ok=True)


def embed_scene_tiles(clip: ClipModel, scenes: Sequence[SceneSource | Path], shard_dir: str | os.PathLike[str],
                      config: SceneIndexConfig, model_spec: str | None = None, process_index: int | None = None,
                      num_processes: int | None = None, log: SkipLog | None = None,
                      fill: list[dict[str, Any]] | None = None) -> tuple[int, int, int, int]:
    """This process's share of the tiles -> ``shard_dir/shard-r-of-n.safetensors`` + ``.jsonl``.
    Unreadable scenes go to ``log`` (default: the config's ``on_error``). Returns ``(rank, world,
    tiles written, tiles skipped for nodata)``."""
    rank, world, state = process_layout(process_index, num_processes)
    log = log if log is not None else SkipLog(check_on_error(config.on_error))
    sources = [s if isinstance(s, SceneSource) else SceneSource(str(s)) for s in scenes]
    kept, limits = check_bands(clip, sources, config, log, fill)
    folder = Path(shard_dir)
    folder.mkdir(parents=True, exist_ok=True)
    name = shard_name(rank, world)
    _remove_other_layouts(folder, name.split("-of-")[1])
    writer = ShardWriter(folder / f"{name}.safetensors", clip.embed_dim)
    lines = StagedFile(folder / f"{name}.jsonl", "w")
    loader = DataLoader(SceneTiles(kept, limits, config, rank, world), batch_size=config.batch_size,
                        num_workers=config.num_workers, collate_fn=_collate)
    total = sum(count_tiles(s, config.tile, config.bands) for s in kept)
    skipped = 0
    try:
        with progress_bar(-(-total // world), f"tiles {name}", unit="tile", leave=False,
                          enabled=config.progress and rank == 0) as bar:
            for pixels, metadata, skipped_here in loader:
                skipped += skipped_here
                if pixels is not None:
                    writer.write(clip.encode_image_tensor(model_input(pixels, clip)).cpu())
                    lines.handle.writelines(json.dumps(m, ensure_ascii=False) + "\n" for m in metadata)
                    bar.update(len(metadata))
        lines.commit()
        writer.close({"model": model_spec, "dim": clip.embed_dim, "shard": rank, "num_shards": world,
                      "count": writer.rows, "skipped_nodata": skipped,
                      "skipped_files": [item.as_dict() for item in log.skipped]})
    except BaseException:
        writer.abort()
        lines.abort()
        raise
    if state is not None:
        state.wait_for_everyone()
    return rank, world, writer.rows, skipped


def build_scene_index(clip: ClipModel, sources: Sequence[str | os.PathLike[str] | SceneSource],
                      index_dir: str | os.PathLike[str],
                      config: SceneIndexConfig | None = None, model_spec: str | None = None, kind: str = "exact",
                      process_index: int | None = None, num_processes: int | None = None,
                      max_memory: int | None = None) -> SceneIndexResult | None:
    """Tile and embed ``sources`` (files or folders of rasters) into an index store at ``index_dir``.
    Shards are kept in ``index_dir/shards`` (a multi-process run writes one per process); the main
    process builds the index and returns the result, other processes return ``None``. ``kind``: exact,
    ivf, ivfpq (ivf with PQ codes) or hnsw; ``max_memory`` (bytes) lets the core's plan pick kind and
    codes (``clipsuite index build --max-memory``) when ``kind`` is left at exact."""
    config = config or SceneIndexConfig()
    scenes = find_scenes(sources)
    target = Path(index_dir)
    shard_dir = target.with_name(f"{target.name}.shards")
    log = SkipLog(check_on_error(config.on_error))
    config = replace(config, sources={s.label: s.to_dict() for s in scenes if s.is_band_set})
    fill: list[dict[str, Any]] = []
    rank, world, _, _ = embed_scene_tiles(clip, scenes, shard_dir, config, model_spec, process_index, num_processes,
                                          log, fill)
    if rank != 0:
        return None
    left_out = {item.path for item in log.skipped}
    scenes = [s for s in scenes if str(s) not in left_out]
    shards = read_shards(shard_dir)
    skipped = sum(int((read_config(path) or {}).get("skipped_nodata", 0)) for path in shards.paths)
    if sum(shards.counts) == 0:
        from clipsuite.remote.prechecks import check_tiles_fit, scene_size

        # a tile larger than every scene is said as such (the CLI says it before any work, prechecks)
        check_tiles_fit([scene_size(s, config.bands, config.tile.resolution) for s in scenes], config.tile.size,
                        config.tile.min_valid, config.tile.resolution)
        raise InputError(f"{', '.join(map(str, sources))}: every tile is nodata ({skipped} skipped); nothing to index")
    extra = {"remote": config.to_dict(), "scenes": [str(s) for s in scenes], "skipped_nodata": skipped,
             "skipped_files": [item.as_dict() for item in log.skipped], "fill": fill,
             "model_identity": clip.identity()}  # search refuses another model's queries (search._index_model)
    source = GeoSource(ShardSource(shards))  # + lon_min .. lat_max per tile, for --bbox / --within
    store = build_store(source, target, store_config(kind, max_memory, source.total, source.dim, model_spec))
    with staged_folder(target, merge=True, command="remote index") as extra_dir:
        atomic_write_json(extra_dir / "scenes.json", extra)
    return SceneIndexResult(target, len(store), skipped, len(scenes), list(log.skipped), fill)


def store_config(kind: str, max_memory: int | None, total: int, dim: int, model: str | None) -> StoreConfig:
    """The store's settings as ``clipsuite index build`` makes them: ``ivfpq`` is ivf with PQ codes of
    dim/8 bytes; a memory budget with the default kind picks kind, codes and sizes (autofaiss-style)."""
    pq = kind == "ivfpq"
    if pq and total < 39 * 256:  # said in this command's flags (the core's advice names --codes)
        raise InputError(f"--kind ivfpq needs at least {39 * 256} tiles to train its codes, got {total} "
                         "(use --kind ivf or exact)")
    config = StoreConfig(kind="ivf" if pq else kind, codes=f"pq{max(1, dim // 8)}" if pq else "flat",
                         max_memory=max_memory, model=model)
    if max_memory is not None and kind == "exact":
        return plan_config(config, total, dim)
    if max_memory is not None:
        plan_config(config, total, dim)  # still refuses a budget too small for anything
    return config
