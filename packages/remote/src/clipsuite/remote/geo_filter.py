"""Where on the ground: ``--bbox`` / ``--within`` filters over a scene index's tile footprints.

Every tile row of a scene index carries its footprint's WGS84 bounds as four numeric columns
(``lon_min``, ``lat_min``, ``lon_max``, ``lat_max``; added at build time by ``GeoSource``), so a box
becomes a DuckDB predicate on the core store's memory-mapped metadata (``IndexStore.search(where=)``).
That predicate is a prefilter (a superset); the footprints of the candidates are then intersected
exactly with the area (shapely), so every hit returned satisfies the filter.

A footprint is the polygon of the tile's four corners reprojected to WGS84, exactly the geometry
``search.hits_geojson`` writes (a tile crossing 180 degrees is split into two parts, RFC 7946 3.1.9).
Such a tile's row has ``lon_min > lon_max``, as an RFC 7946 bbox crossing the antimeridian does; so
does a ``--bbox`` with ``lon0 > lon1``. Torch-free: the CLI parses and checks areas before torch loads.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from clipsuite.core.errors import InputError

GEO_COLUMNS = ("lon_min", "lat_min", "lon_max", "lat_max")
WGS84 = "EPSG:4326"
PAD = 1e-7  # degrees (~1 cm): the prefilter box is widened so float noise never drops a true match
EXACT_ROWS = 4096  # at most this many prefilter candidates: test them all, then scan the matches exactly
FETCH_LIMIT = 65_536  # over-fetching stops here; then every candidate is tested (an area thin in its boxes)
MAX_BOXES = 64  # boxes OR'ed in the prefilter; an area of more parts gets one box per hemisphere of parts
COVER_GRID = 6  # a polygon filling less than half its bounds is covered by the pieces of a 6 x 6 split
BLOCK = 8192  # rows per block when footprints are computed for many rows


# ---- areas -------------------------------------------------------------------------------------------
@dataclass
class GeoArea:
    """A WGS84 area: its exact ``geometry`` (shapely) and ``boxes`` (west, south, east, north), none
    crossing 180 degrees, whose union covers it (the prefilter)."""

    geometry: Any
    boxes: list[tuple[float, float, float, float]]
    label: str

    def where(self) -> str:
        """DuckDB predicate: the row's WGS84 bounds intersect one of the boxes (the row's own bounds may
        cross 180 degrees: then ``lon_min > lon_max`` and it covers [lon_min, 180] and [-180, lon_max])."""
        terms = []
        for west, south, east, north in self.boxes:
            w, s, e, n = west - PAD, south - PAD, east + PAD, north + PAD
            terms.append(f"(lat_min <= {n!r} AND lat_max >= {s!r} AND ("
                         f"(lon_min <= lon_max AND lon_min <= {e!r} AND lon_max >= {w!r}) OR "
                         f"(lon_min > lon_max AND (lon_min <= {e!r} OR lon_max >= {w!r}))))")
        return "(" + " OR ".join(terms) + ")"

    def intersects(self, footprints: Sequence[Any]) -> np.ndarray:
        """Which footprints (shapely geometries or None) intersect the area."""
        import shapely

        out = np.zeros(len(footprints), dtype=bool)
        present = [i for i, f in enumerate(footprints) if f is not None]
        if present:
            out[present] = shapely.intersects(self.geometry, np.array([footprints[i] for i in present],
                                                                      dtype=object))
        return out


def _number(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"--bbox {what} '{text.strip()}' is not a number") from None
    if not math.isfinite(value):
        raise InputError(f"--bbox {what} '{text.strip()}' is not a finite number")
    return value


def parse_bbox(text: str) -> GeoArea:
    """'lon0,lat0,lon1,lat1' in WGS84 degrees (RFC 7946 order: west, south, east, north). ``lon0 > lon1``
    is a box across the antimeridian (from lon0 east through 180 to lon1)."""
    parts = str(text).split(",")
    if len(parts) != 4:
        raise InputError(f"--bbox '{text}': give 4 numbers lon0,lat0,lon1,lat1 (west, south, east, north in "
                         f"WGS84 degrees), got {len(parts)}")
    west, south, east, north = (_number(p, name) for p, name in zip(parts, ("lon0", "lat0", "lon1", "lat1")))
    for name, value in (("lon0", west), ("lon1", east)):
        if not -180 <= value <= 180:
            raise InputError(f"--bbox {name} {value:g} is outside [-180, 180] (longitude in WGS84 degrees)")
    for name, value in (("lat0", south), ("lat1", north)):
        if not -90 <= value <= 90:
            raise InputError(f"--bbox {name} {value:g} is outside [-90, 90] (latitude in WGS84 degrees)")
    if south > north:
        raise InputError(f"--bbox: lat0 {south:g} is north of lat1 {north:g} (the order is west, south, east, "
                         "north)")
    import shapely

    if west <= east:
        boxes = [(west, south, east, north)]
    else:  # RFC 7946 5.2: west > east crosses the antimeridian
        boxes = [(west, south, 180.0, north), (-180.0, south, east, north)]
    geometry = shapely.union_all([shapely.box(*b) for b in boxes]) if len(boxes) > 1 else shapely.box(*boxes[0])
    return GeoArea(geometry, boxes, f"--bbox {text}")


_POLYGONAL = ("Polygon", "MultiPolygon")


def _geometries(data: Any, where: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(place, geometry dict) of every geometry in a GeoJSON object."""
    kind = data.get("type") if isinstance(data, dict) else None
    if kind == "FeatureCollection":
        features = data.get("features")
        if not isinstance(features, list):
            raise InputError(f"{where}: a FeatureCollection without a 'features' list")
        for number, feature in enumerate(features):
            yield from _geometries(feature, f"{where} feature {number}")
    elif kind == "Feature":
        if data.get("geometry") is not None:
            yield from _geometries(data["geometry"], where)
    elif kind == "GeometryCollection":
        for number, member in enumerate(data.get("geometries") or []):
            yield from _geometries(member, f"{where} geometry {number}")
    elif isinstance(kind, str):
        yield where, data
    else:
        raise InputError(f"{where}: not GeoJSON (no 'type' of Feature, FeatureCollection or a geometry)")


def _legacy_crs(data: dict[str, Any], path: Path) -> None:
    """The 2008 GeoJSON 'crs' member: anything but WGS84 longitude/latitude is refused (RFC 7946 has none)."""
    name = str(((data.get("crs") or {}).get("properties") or {}).get("name", ""))
    if name and not name.upper().endswith(("CRS84", "EPSG::4326", "EPSG:4326")):
        raise InputError(f"{path}: its coordinates are in {name}; --within takes WGS84 longitude/latitude "
                         "(RFC 7946): reproject it to EPSG:4326")


def read_area(path: str | os.PathLike[str]) -> GeoArea:
    """The Polygon / MultiPolygon area of a GeoJSON file (a FeatureCollection, Feature or geometry) in WGS84."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"{path}: not GeoJSON (not a JSON file: {str(error)[:80]})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: not GeoJSON (the top level is not an object)")
    _legacy_crs(data, path)
    import shapely
    from shapely.geometry import shape

    polygons = []
    for where, geometry in _geometries(data, str(path)):
        if geometry.get("type") not in _POLYGONAL:
            raise InputError(f"{where} is a {geometry.get('type')}; --within takes Polygon or MultiPolygon areas")
        try:
            polygon = shape(geometry)
        except (ValueError, TypeError, AttributeError, IndexError, shapely.errors.GEOSException) as error:
            raise InputError(f"{where}: not a valid {geometry['type']} ({str(error)[:80]})") from None
        if polygon.is_empty:
            continue
        west, south, east, north = polygon.bounds
        if not (-180 <= west <= east <= 180 and -90 <= south <= north <= 90):
            raise InputError(f"{where}: coordinates reach ({west:g}, {south:g}, {east:g}, {north:g}), outside "
                             "WGS84 longitude/latitude; --within takes EPSG:4326 (RFC 7946): reproject it")
        polygons.append(shapely.make_valid(polygon) if not polygon.is_valid else polygon)
    if not polygons:
        raise InputError(f"{path}: holds no polygon; --within takes a Polygon or MultiPolygon area")
    parts = [p for polygon in polygons for p in getattr(polygon, "geoms", [polygon]) if not p.is_empty]
    return GeoArea(shapely.union_all(polygons), _boxes(parts), f"--within {path}")


def _cover(part: Any, grid: int = COVER_GRID) -> list[tuple[float, ...]]:
    """Boxes covering one polygon: its bounds, or where it fills less than half of them (a diagonal strip,
    a ring) the bounds of its pieces in a ``grid`` x ``grid`` split of them, so the prefilter stays tight."""
    import shapely

    west, south, east, north = (float(v) for v in part.bounds)
    if east <= west or north <= south or part.area >= 0.5 * (east - west) * (north - south):
        return [(west, south, east, north)]
    xs, ys = np.linspace(west, east, grid + 1), np.linspace(south, north, grid + 1)
    pieces = [shapely.clip_by_rect(part, xs[i], ys[j], xs[i + 1], ys[j + 1]) for i in range(grid) for j in range(grid)]
    return [tuple(float(v) for v in piece.bounds) for piece in pieces if not piece.is_empty]


def _boxes(parts: Sequence[Any]) -> list[tuple[float, float, float, float]]:
    """A few boxes per part (``_cover``), or one per part when that makes too many, or with many parts one
    per side of the 0 meridian (a superset always; an area cut at 180 degrees as RFC 7946 asks keeps its
    two sides apart)."""
    covered = [b for p in parts for b in _cover(p)]
    if len(covered) <= MAX_BOXES:
        return covered  # type: ignore[return-value]  # four floats each
    bounds = [tuple(float(v) for v in p.bounds) for p in parts]
    if len(bounds) <= MAX_BOXES:
        return bounds  # type: ignore[return-value]
    groups: dict[bool, list[tuple[float, ...]]] = {}
    for b in bounds:
        groups.setdefault((b[0] + b[2]) >= 0, []).append(b)
    return [(min(b[0] for b in group), min(b[1] for b in group), max(b[2] for b in group), max(b[3] for b in group))
            for group in groups.values()]


def area_from_options(bbox: str | None, within: str | os.PathLike[str] | None) -> GeoArea | None:
    """The CLI's --bbox / --within (at most one) as an area; None when neither is given."""
    if bbox is not None and within is not None:
        raise InputError("give --bbox or --within, not both")
    if bbox is not None:
        return parse_bbox(bbox)
    return read_area(within) if within is not None else None


# ---- footprints ---------------------------------------------------------------------------------------
def _corners(bounds: Sequence[float]) -> list[list[float]]:
    left, bottom, right, top = bounds
    return [[left, bottom], [right, bottom], [right, top], [left, top], [left, bottom]]


def _transform(crs: str, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from rasterio.warp import transform

    lon, lat = transform(crs, WGS84, xs.tolist(), ys.tolist())
    return np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)


def wgs84_bounds(rows: Sequence[dict[str, Any]]) -> np.ndarray:
    """[N, 4] (lon_min, lat_min, lon_max, lat_max) of each row's footprint (NaN without CRS or bounds).

    One vectorised transform per CRS over the four corners of every row; a footprint spanning more
    than 180 degrees of longitude is one across the antimeridian: west edge = its eastern corners' least
    longitude, east edge = its western corners' greatest (``lon_min > lon_max``)."""
    out = np.full((len(rows), 4), np.nan)
    by_crs: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        if row.get("crs") and isinstance(row.get("bounds"), list | tuple) and len(row["bounds"]) == 4:
            by_crs.setdefault(str(row["crs"]), []).append(i)
    for crs, members in by_crs.items():
        box = np.array([rows[i]["bounds"] for i in members], dtype=np.float64)  # left, bottom, right, top
        xs = box[:, [0, 2, 2, 0]].ravel()
        ys = box[:, [1, 1, 3, 3]].ravel()
        lon, lat = (a.reshape(-1, 4) for a in _transform(crs, xs, ys))
        finite = np.isfinite(lon).all(1) & np.isfinite(lat).all(1)
        lon_min, lon_max = lon.min(1), lon.max(1)
        crossing = finite & (lon_max - lon_min > 180)
        if crossing.any():
            east = np.where(lon >= 0, lon, np.inf).min(1)
            west = np.where(lon < 0, lon, -np.inf).max(1)
            lon_min, lon_max = np.where(crossing, east, lon_min), np.where(crossing, west, lon_max)
        values = np.stack([lon_min, lat.min(1), lon_max, lat.max(1)], 1)
        values[~finite] = np.nan
        out[members] = values
    return out


def with_wgs84_bounds(rows: Iterable[dict[str, Any]], block: int = BLOCK) -> Iterator[dict[str, Any]]:
    """The rows again, each with ``lon_min`` .. ``lat_max`` (left out for a tile without CRS)."""
    pending: list[dict[str, Any]] = []

    def flush() -> Iterator[dict[str, Any]]:
        for row, values in zip(pending, wgs84_bounds(pending)):
            if np.isfinite(values).all():
                yield {**row, **dict(zip(GEO_COLUMNS, (float(v) for v in values)))}
            else:
                yield {k: v for k, v in row.items() if k not in GEO_COLUMNS}
        pending.clear()

    for row in rows:
        pending.append(row)
        if len(pending) >= block:
            yield from flush()
    yield from flush()


def _split_at_antimeridian(lon: np.ndarray, lat: np.ndarray) -> Any:
    """The ring (WGS84 corners, some east and some west of 180 degrees) as two parts, one each side.

    The western corners are moved by +360, the ring cut at 180 and the far part moved back: straight
    edges in longitude/latitude, as for any other footprint."""
    import shapely
    import shapely.affinity

    ring = np.stack([np.where(lon < 0, lon + 360.0, lon), lat], 1)
    whole = shapely.Polygon(ring)
    east = shapely.clip_by_rect(whole, -180.0, -90.0, 180.0, 90.0)
    west = shapely.affinity.translate(shapely.clip_by_rect(whole, 180.0, -90.0, 540.0, 90.0), xoff=-360.0)
    parts = [p for part in (east, west) for p in getattr(part, "geoms", [part]) if not p.is_empty]
    return shapely.MultiPolygon(parts)


def footprint_geojson(crs: str, bounds: Sequence[float]) -> dict[str, Any]:
    """A tile's WGS84 footprint as GeoJSON: its four corners reprojected (rasterio's ``transform_geom``,
    which cuts a footprint crossing 180 degrees in two). GDAL's cut fails on a tile with one corner just
    past 180 (a single ring running round the globe): such a ring is split here instead."""
    from rasterio.warp import transform_geom
    from shapely.geometry import mapping

    geometry = dict(transform_geom(crs, WGS84, {"type": "Polygon", "coordinates": [_corners(bounds)]}))
    if geometry["type"] == "Polygon":
        lon = np.array([p[0] for p in geometry["coordinates"][0]], dtype=np.float64)
        if lon.max() - lon.min() > 180:
            xs, ys = _transform(crs, *(np.array(_corners(bounds), dtype=np.float64).T))
            geometry = dict(mapping(_split_at_antimeridian(xs, ys)))
    return geometry


def footprints(rows: Sequence[dict[str, Any] | None]) -> list[Any]:
    """Each row's footprint in WGS84 as a shapely geometry (None without CRS): the four corners
    reprojected (one vectorised transform per CRS), split at 180 degrees where a tile crosses it, the
    same polygon ``hits_geojson`` writes (``footprint_geojson``)."""
    import shapely
    from shapely.geometry import shape

    out: list[Any] = [None] * len(rows)
    by_crs: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        if row is not None and row.get("crs") and isinstance(row.get("bounds"), list | tuple):
            by_crs.setdefault(str(row["crs"]), []).append(i)
    for crs, members in by_crs.items():
        rings = np.array([_corners(rows[i]["bounds"]) for i in members], dtype=np.float64)  # type: ignore[index]
        lon, lat = (a.reshape(-1, 5) for a in _transform(crs, rings[..., 0].ravel(), rings[..., 1].ravel()))
        for j, i in enumerate(members):
            if not (np.isfinite(lon[j]).all() and np.isfinite(lat[j]).all()):
                continue
            if lon[j].max() - lon[j].min() > 180:  # across 180 degrees: cut as hits_geojson cuts it
                out[i] = shape(footprint_geojson(crs, rows[i]["bounds"]))  # type: ignore[index]
            else:
                out[i] = shapely.Polygon(np.stack([lon[j], lat[j]], 1))
    return out


# ---- opening and checking an index ------------------------------------------------------------------------
REBUILD = "rebuild it with `clipsuite-remote index SCENES -o {folder}`"


def old_index_error(folder: str | os.PathLike[str]) -> InputError:
    return InputError(f"{folder}: built by an older clipsuite (metadata.jsonl, no footprint columns), so --bbox / "
                      "--within cannot filter it; " + REBUILD.format(folder=folder))


def is_old_index(folder: str | os.PathLike[str]) -> bool:
    """A format-1 folder (``index.faiss`` + ``metadata.jsonl``, the in-memory ``EmbeddingIndex``)."""
    from clipsuite.core.json_files import read_json

    path = Path(folder) / "index.json"
    raw = read_json(path) if path.is_file() else None
    return isinstance(raw, dict) and raw.get("format_version") == 1


def open_store(folder: str | os.PathLike[str]) -> Any:
    """The core's store in a scene index folder; a refusal's advice names the remote command."""
    from clipsuite.core.index_store import IndexStore

    try:
        return IndexStore.open(folder)
    except InputError as error:  # the core's advice names `clipsuite index build`, for embedding folders
        raise InputError(str(error).replace("`clipsuite index build EMBEDDINGS --output",
                                            "`clipsuite-remote index SCENES -o")) from None


def check_geo_store(store: Any, folder: str | os.PathLike[str]) -> None:
    """One line when a store has no footprint columns to filter (every tile without CRS)."""
    missing = [c for c in GEO_COLUMNS if c not in store.metadata.columns]
    if missing:
        raise InputError(f"{folder}: no tile has a WGS84 footprint (rasters without CRS), so --bbox / --within "
                         "cannot filter this index")


def check_area_index(folder: str | os.PathLike[str], area: GeoArea) -> None:
    """Can ``folder`` be filtered by ``area``? One line otherwise; torch-free (the CLI asks before torch)."""
    if is_old_index(folder):
        raise old_index_error(folder)
    store = open_store(folder)
    check_geo_store(store, folder)
    store.matching_rows(area.where())  # DuckDB runs the prefilter once now: any failure comes before the model


# ---- filtered search ------------------------------------------------------------------------------------
def _matching(store: Any, rows: np.ndarray, area: GeoArea) -> np.ndarray:
    """Which of the given store ``rows`` have footprints intersecting the area (blocks of ``BLOCK``)."""
    keep = np.zeros(rows.size, dtype=bool)
    for start in range(0, rows.size, BLOCK):
        part = rows[start:start + BLOCK]
        keep[start:start + part.size] = area.intersects(footprints(store.metadata.rows(part)))
    return keep


def filtered_search(store: Any, queries: np.ndarray, k: int, area: GeoArea, shift: bool = True,
                    exact_rows: int = EXACT_ROWS, fetch_limit: int = FETCH_LIMIT) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` (scores, rows) per query among tiles whose footprint intersects ``area``; -inf / -1 padded.

    The prefilter (``area.where()``) runs in the store. With at most ``exact_rows`` candidates, all
    footprints are tested and the matches scanned exactly (recall 1). Otherwise the store's filtered
    search (its recall) fetches 4k candidates, their footprints are tested (~40 us a row, so only the
    fetched ones), and a query short of k asks for 4x more; past ``fetch_limit`` per query it falls back
    to testing every candidate."""
    from clipsuite.core.index_store import normalized

    check_geo_store(store, "index")
    q = normalized(queries, store.dim, "search")
    where = area.where()
    candidates = store.matching_rows(where)
    best_scores = np.full((len(q), k), -np.inf, np.float32)
    best_rows = np.full((len(q), k), -1, np.int64)
    if candidates.size == 0:
        return best_scores, best_rows
    if candidates.size <= exact_rows:
        return store.exact_search(q, k, candidates[_matching(store, candidates, area)])
    known: dict[int, bool] = {}
    todo = np.arange(len(q))
    want = 4 * k
    while todo.size and want <= fetch_limit:
        scores, rows = store.search(q[todo], k=want, where=where, shift=shift)
        fresh = np.setdiff1d(np.unique(rows[rows >= 0]), np.fromiter(known, np.int64, len(known)))
        known.update(zip(fresh.tolist(), _matching(store, fresh, area).tolist()))
        unfinished = []
        for line, query in enumerate(todo):
            good = [(s, r) for s, r in zip(scores[line], rows[line]) if r >= 0 and known[int(r)]][:k]
            for rank, (s, r) in enumerate(good):
                best_scores[query, rank], best_rows[query, rank] = s, r
            exhausted = (rows[line] < 0).any() or want >= candidates.size  # nothing more to fetch
            if len(good) < k and not exhausted:
                unfinished.append(query)
        todo = np.asarray(unfinished, dtype=np.int64)
        want *= 4
    if todo.size:  # an area that covers little of its boxes: test every candidate once, scan the matches
        scores, rows = store.exact_search(q[todo], k, candidates[_matching(store, candidates, area)])
        best_scores[todo], best_rows[todo] = scores, rows
    return best_scores, best_rows


class GeoSource:
    """A build source (``clipsuite.core.index_store.VectorSource``) whose metadata rows gain the footprint's
    WGS84 bounds as numeric columns, so the store's filters can use them."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.dim, self.model = inner, int(inner.dim), inner.model

    @property
    def total(self) -> int:
        return int(self.inner.total)

    def chunks(self) -> Iterator[np.ndarray]:
        return iter(self.inner.chunks())

    def metadata_rows(self) -> Iterator[dict[str, Any]]:
        return with_wgs84_bounds(self.inner.metadata_rows())

    def __str__(self) -> str:
        return str(self.inner)
