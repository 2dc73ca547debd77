"""Place filters of a scene index (issue 21 item 6): ``search --bbox / --within`` on the core's store.

Synthetic tile rows as ``clipsuite-remote index`` writes them (2.24 km tiles: 224 px of 10 m) on a
``--side`` x ``--side`` grid in each of two UTM zones (33N, 34N), with clustered ``--dim`` vectors,
built into an IVF store through ``geo_filter.GeoSource`` (the footprint's WGS84 bounds as columns). Rows
are generated lazily: the build holds one block. For boxes and polygons of several sizes and shapes, the
per-query time of ``geo_filter.filtered_search`` (first call, DuckDB prefilter included, divided over the
queries) against unfiltered search in the same run, and recall@10 against an exact filtered search (brute
force over the vectors whose footprints, computed by ``geo_filter.footprints``, intersect the area).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from harness import BenchResult, peak_rss_mb

from clipsuite.core.index_build import build_store
from clipsuite.core.index_store import IndexStore, StoreConfig, normalized
from clipsuite.core.index_tuning import recall_at_k

TILE = 2240.0
ZONES = {"EPSG:32633": (200_000.0, 5_400_000.0), "EPSG:32634": (200_000.0, 5_400_000.0)}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--side", type=int, default=500, help="tiles per side of each zone's grid")
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--nprobe", type=int, default=16)


class TileRows:
    """A build source: tile rows and vectors made block by block (never all rows as Python objects)."""

    def __init__(self, side: int, dim: int, seed: int = 0, block: int = 65_536) -> None:
        self.side, self.dim, self.model, self.block = side, dim, "synthetic", block
        self.means = np.random.default_rng(seed).normal(size=(200, dim))

    @property
    def total(self) -> int:
        return 2 * self.side * self.side

    def chunks(self) -> Iterator[np.ndarray]:
        rng = np.random.default_rng(1)
        for start in range(0, self.total, self.block):
            size = min(self.block, self.total - start)
            yield self.means[rng.integers(0, len(self.means), size)] + 0.8 * rng.normal(size=(size, self.dim))

    def metadata_rows(self) -> Iterator[dict[str, Any]]:
        for crs, (x0, y0) in ZONES.items():
            for r in range(self.side):
                for c in range(self.side):
                    left, top = x0 + c * TILE, y0 - r * TILE
                    yield {"id": f"{crs}:{r}:{c}", "path": f"{crs}.tif", "row": r, "col": c,
                           "window": [c * 224.0, r * 224.0, 224.0, 224.0],
                           "bounds": [left, top - TILE, left + TILE, top], "crs": crs, "valid_fraction": 1.0}

    def __str__(self) -> str:
        return "synthetic tiles"


def _areas() -> dict[str, Any]:
    from shapely.geometry import Polygon

    from clipsuite.remote.geo_filter import GeoArea, _boxes, parse_bbox

    triangle = Polygon([(10.5, 38), (34, 38), (10.5, 48.8)])
    sliver = Polygon([(11.0, 40.0), (15.0, 46.0), (15.0, 46.02), (11.0, 40.02)])
    return {"small_box": parse_bbox("13.5,45.5,13.8,45.7"), "medium_box": parse_bbox("12.5,44.5,15.0,46.0"),
            "large_box": parse_bbox("5,30,16.5,50"), "triangle": GeoArea(triangle, _boxes([triangle]), "triangle"),
            "sliver": GeoArea(sliver, _boxes([sliver]), "sliver"),
            "sliver_one_box": GeoArea(sliver, [sliver.bounds], "sliver, one box")}


def run(args: argparse.Namespace) -> BenchResult:
    from clipsuite.remote.geo_filter import GeoSource, filtered_search, footprints

    source = TileRows(args.side, args.dim)
    result = BenchResult("geo_filter", params={"rows": source.total, "dim": args.dim, "queries": args.queries,
                                               "nprobe": args.nprobe, "tile_m": TILE})
    tmp = Path(tempfile.mkdtemp(prefix="bench_geo_"))
    try:
        start = time.perf_counter()
        build_store(GeoSource(source), tmp / "ix", StoreConfig(kind="ivf", nprobe=args.nprobe))
        result.timings_s["build"] = time.perf_counter() - start
        result.memory_mb["peak_rss_build"] = peak_rss_mb()
        store = IndexStore.open(tmp / "ix")
        result.params["nlist"] = store.config.nlist
        rng = np.random.default_rng(2)
        q = normalized(source.means[rng.integers(0, 200, args.queries)] + 0.8 * rng.normal(size=(args.queries,
                                                                                                   args.dim)),
                       args.dim, "q")
        store.matching_rows("lat_min > 0")  # DuckDB's import and first connection are not the filters' cost
        start = time.perf_counter()
        store.search(q, 10)
        result.timings_s["unfiltered_per_query"] = (time.perf_counter() - start) / len(q)
        for name, area in _areas().items():
            store = IndexStore.open(tmp / "ix")  # a fresh store: the first call's prefilter counts
            start = time.perf_counter()
            _, found = filtered_search(store, q, 10, area)
            result.timings_s[f"{name}_per_query"] = (time.perf_counter() - start) / len(q)
            candidates = store.matching_rows(area.where())
            keep = np.concatenate([part[area.intersects(footprints(store.metadata.rows(part)))]
                                   for part in np.array_split(candidates, max(1, candidates.size // 65_536))])
            scores = q @ store.gather(keep).T if keep.size else np.zeros((len(q), 0), np.float32)
            truth = keep[np.argsort(-scores, axis=1)[:, :10]] if keep.size else np.full((len(q), 0), -1)
            result.metrics[f"{name}_candidates"] = float(candidates.size)
            result.metrics[f"{name}_matches"] = float(keep.size)
            result.metrics[f"{name}_recall@10"] = recall_at_k(found, truth)
            result.checks[f"{name}_every_hit_inside"] = bool(np.isin(found[found >= 0], keep).all())
            result.ratio(f"{name}_vs_unfiltered", f"{name}_per_query", "unfiltered_per_query")
        result.memory_mb["peak_rss"] = peak_rss_mb()
        result.notes.append("truth: footprints from geo_filter.footprints (the tests check them tile by tile)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return result
