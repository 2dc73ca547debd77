"""--bbox / --within over the core store's tile rows: footprint columns in WGS84 (antimeridian included),
every filtered hit intersects the area, recall against an exact filtered search (footprints reprojected one
by one with rasterio's transform_geom, as hits.geojson writes them), and bad areas refused in one line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rasterio.warp import transform_bounds, transform_geom
from shapely.geometry import shape

from clipsuite.core.errors import InputError
from clipsuite.core.index_build import build_store
from clipsuite.core.index_store import ArraySource, IndexStore, StoreConfig, normalized
from clipsuite.core.index_tuning import recall_at_k
from clipsuite.remote.geo_filter import (
    GEO_COLUMNS,
    GeoArea,
    GeoSource,
    area_from_options,
    filtered_search,
    parse_bbox,
    read_area,
    wgs84_bounds,
)
from clipsuite.remote.search import Hit, hits_geojson

DIM, SIDE, TILE = 24, 36, 640.0  # 36 x 36 tiles of 640 m per scene
# UTM 33N and 34N near 45 N; UTM 60N east of its zone, where 180 degrees runs through the grid
SCENES = {"EPSG:32633": (500_000.0, 5_000_000.0), "EPSG:32634": (480_000.0, 5_010_000.0),
          "EPSG:32660": (730_000.0, 4_980_000.0)}


def _tiles() -> list[dict[str, Any]]:
    rows = []
    for crs, (x0, y0) in SCENES.items():
        for r in range(SIDE):
            for c in range(SIDE):
                left, top = x0 + c * TILE, y0 - r * TILE
                rows.append({"id": f"{crs}:{r}:{c}", "path": f"{crs}.tif", "row": r, "col": c,
                             "window": [c * 64.0, r * 64.0, 64.0, 64.0], "bounds": [left, top - TILE, left + TILE, top],
                             "crs": crs, "valid_fraction": 1.0})
    for c in range(20):  # a raster without CRS: pixel bounds, never inside any area
        rows.append({"id": f"plain:0:{c}", "path": "plain.tif", "row": 0, "col": c, "window": [c * 64.0, 0, 64, 64],
                     "bounds": [c * 64.0, 0.0, c * 64.0 + 64, 64.0], "crs": None, "valid_fraction": 1.0})
    return rows


def _truth_footprint(row: dict[str, Any]) -> Any:
    """The polygon hits.geojson writes for a tile, one tile at a time (not the vectorised path searched)."""
    if not row.get("crs"):
        return None
    geometry = hits_geojson([Hit("q", 1, 1.0, row)])["features"][0]["geometry"]
    left, bottom, right, top = row["bounds"]
    ring = [[left, bottom], [right, bottom], [right, top], [left, top], [left, bottom]]
    gdal = transform_geom(row["crs"], "EPSG:4326", {"type": "Polygon", "coordinates": [ring]})
    lons = [p[0] for p in gdal["coordinates"][0]] if gdal["type"] == "Polygon" else [0.0]
    if max(lons) - min(lons) <= 180:
        assert geometry == gdal  # rasterio's reprojection of the corners, as before
    else:  # crossing 180 degrees: two parts, one each side (GDAL's cut or, where it leaves one ring, ours)
        assert geometry["type"] == "MultiPolygon" and len(geometry["coordinates"]) == 2
        sides = sorted(max(p[0] for p in part[0]) for part in geometry["coordinates"])
        assert sides[0] < 0 < sides[1]
    return shape(geometry)


@pytest.fixture(scope="module")
def geo_index(tmp_path_factory: pytest.TempPathFactory) -> tuple[IndexStore, list[dict[str, Any]], list[Any]]:
    rows = _tiles()
    rng = np.random.default_rng(0)
    means = rng.normal(size=(40, DIM))
    vectors = normalized(means[rng.integers(0, 40, len(rows))] + 0.7 * rng.normal(size=(len(rows), DIM)), DIM, "x")
    store = build_store(GeoSource(ArraySource(vectors, rows, model="tiny")), tmp_path_factory.mktemp("g") / "ix",
                        StoreConfig(kind="ivf", nlist=32, nprobe=4, block_rows=1000))
    return store, rows, [_truth_footprint(r) for r in rows]


def _write(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def _polygon(ring: list[list[float]]) -> dict[str, Any]:
    return {"type": "Polygon", "coordinates": [ring]}


def test_footprint_columns_are_wgs84_bounds_and_cross_the_antimeridian(
        geo_index: tuple[IndexStore, list[dict[str, Any]], list[Any]]) -> None:
    store, rows, truth = geo_index
    assert set(GEO_COLUMNS) <= set(store.metadata.columns)
    for column in GEO_COLUMNS:  # numeric, so DuckDB compares numbers
        assert str(store.metadata.table.schema.field(column).type) == "double"
    stored = store.metadata.rows(np.arange(len(store)))
    crossing = 0
    for row, meta, geometry in zip(rows, stored, truth):
        if geometry is None:
            assert not set(GEO_COLUMNS) & set(meta)  # no CRS: no footprint, null columns
            continue
        assert meta["bounds"] == row["bounds"] and meta["crs"] == row["crs"]
        parts = list(getattr(geometry, "geoms", [geometry]))
        if len(parts) == 2:  # RFC 7946: west edge on the eastern part, east edge on the western part
            crossing += 1
            east, west = sorted(parts, key=lambda p: -p.bounds[0])
            assert meta["lon_min"] == pytest.approx(east.bounds[0]) and meta["lon_max"] == pytest.approx(west.bounds[2])
            assert meta["lon_min"] > meta["lon_max"]
        else:
            assert [meta[c] for c in GEO_COLUMNS] == pytest.approx(list(geometry.bounds), abs=1e-9)
        assert (meta["lat_min"], meta["lat_max"]) == pytest.approx((geometry.bounds[1], geometry.bounds[3]), abs=1e-9)
    assert SIDE <= crossing <= SIDE + 2  # about one column of the UTM 60N grid straddles 180 degrees
    # rasterio's own antimeridian-aware bounds agree on a crossing tile
    one = next(r for r, g in zip(rows, truth) if g is not None and len(getattr(g, "geoms", [])) == 2)
    west, south, east, north = transform_bounds(one["crs"], "EPSG:4326", *one["bounds"], densify_pts=2)
    assert west > east and wgs84_bounds([one])[0] == pytest.approx([west, south, east, north], abs=1e-7)


AREAS = {
    "bbox in UTM 33N": lambda tmp: parse_bbox("15.05,45.0,15.15,45.08"),
    "bbox across 180": lambda tmp: parse_bbox("179.98,44.8,-179.9,44.9"),
    "bbox over two zones": lambda tmp: parse_bbox("15.2,45.05,20.9,45.15"),
    "triangle (FeatureCollection)": lambda tmp: read_area(_write(tmp / "tri.geojson", {
        "type": "FeatureCollection", "features": [{"type": "Feature", "properties": {}, "geometry": _polygon(
            [[20.8, 45.0], [21.0, 45.1], [20.8, 45.2], [20.8, 45.0]])}]})),
    "MultiPolygon cut at 180 (geometry)": lambda tmp: read_area(_write(tmp / "multi.geojson", {
        "type": "MultiPolygon", "coordinates": [[[[179.9, 44.7], [180, 44.7], [180, 44.8], [179.9, 44.7]]],
                                                [[[-180, 44.7], [-179.95, 44.8], [-180, 44.8], [-180, 44.7]]]]})),
    # two thirds of the rows: past sqrt(nprobe / nlist), so the store walks IVF cells with a selector
    "large box (IVF with a selector)": lambda tmp: parse_bbox("14,44,22,46"),
    "large triangle (half its box)": lambda tmp: read_area(_write(tmp / "big.geojson", _polygon(
        [[14.9, 44.9], [21.1, 44.9], [14.9, 45.3], [14.9, 44.9]]))),
}


@pytest.mark.parametrize("name", list(AREAS))
@pytest.mark.parametrize("route", ["exact", "index"])
def test_every_hit_intersects_the_area_with_recall_against_exact_filtered_search(
        geo_index: tuple[IndexStore, list[dict[str, Any]], list[Any]], tmp_path: Path, name: str,
        route: str) -> None:
    store, rows, truth = geo_index
    area: GeoArea = AREAS[name](tmp_path)
    matching = np.array([g is not None and g.intersects(area.geometry) for g in truth])
    assert 10 < matching.sum() < len(rows) * 0.7, matching.sum()  # a real filter, with more than k matches
    queries = normalized(np.random.default_rng(7).normal(size=(30, DIM)), DIM, "q")
    exact = (queries @ store.gather(np.arange(len(store))).T)
    exact[:, ~matching] = -np.inf
    expected = np.argsort(-exact, axis=1, kind="stable")[:, :10]
    # exact_rows=0: the index route (over-fetch through the store's IVF filter, footprints tested after)
    scores, found = filtered_search(store, queries, 10, area, exact_rows=0 if route == "index" else 65_536)
    assert (found >= 0).all() and matching[found].all()  # every hit intersects the area
    assert (np.diff(scores, axis=1) <= 1e-6).all()
    recall = recall_at_k(found, expected)
    if route == "exact":
        assert recall == 1.0
    else:
        assert recall >= 0.9, recall


def test_a_thin_area_falls_back_to_testing_every_candidate(
        geo_index: tuple[IndexStore, list[dict[str, Any]], list[Any]], tmp_path: Path) -> None:
    """A diagonal sliver covers little of its box: read_area covers it with smaller boxes; with its one
    box as the prefilter, over-fetching gives up and every candidate is tested, still exactly."""
    store, rows, truth = geo_index
    covered = read_area(_write(tmp_path / "sliver.geojson", {"type": "Feature", "properties": {}, "geometry": _polygon(
        [[15.0, 44.85], [15.3, 45.15], [15.3, 45.1502], [15.0, 44.8502], [15.0, 44.85]])}))
    area = GeoArea(covered.geometry, [covered.geometry.bounds], "one box")
    matching = np.array([g is not None and g.intersects(area.geometry) for g in truth])
    candidates = store.matching_rows(area.where())
    assert matching.sum() >= 10 and candidates.size > 10 * matching.sum()
    tight = store.matching_rows(covered.where())
    assert np.isin(np.flatnonzero(matching), tight).all() and tight.size < candidates.size / 3  # still a superset
    queries = normalized(np.random.default_rng(8).normal(size=(5, DIM)), DIM, "q")
    exact = queries @ store.gather(np.arange(len(store))).T
    exact[:, ~matching] = -np.inf
    scores, found = filtered_search(store, queries, 10, area, exact_rows=100, fetch_limit=100)
    np.testing.assert_array_equal(found, np.argsort(-exact, axis=1, kind="stable")[:, :10])


def test_fewer_matches_than_k_are_padded_and_an_empty_area_gives_nothing(
        geo_index: tuple[IndexStore, list[dict[str, Any]], list[Any]]) -> None:
    store, _, truth = geo_index
    point = parse_bbox("15.01,44.99,15.01,44.99")  # a point: the tiles that hold it (one, or two on an edge)
    holding = sum(g is not None and g.intersects(point.geometry) for g in truth)
    scores, found = filtered_search(store, normalized(np.ones((2, DIM)), DIM, "q"), 5, point)
    assert 1 <= holding <= 4 and ((found >= 0).sum(1) == holding).all() and np.isinf(scores[found < 0]).all()
    ocean = parse_bbox("-40,0,-30,10")
    scores, found = filtered_search(store, normalized(np.ones((1, DIM)), DIM, "q"), 5, ocean)
    assert (found == -1).all()


@pytest.mark.parametrize(("text", "message"), [
    ("15,91,16,92", "lat0 91 is outside [-90, 90]"),
    ("15,40,16,90.5", "lat1 90.5 is outside [-90, 90]"),
    ("-181,40,16,41", "lon0 -181 is outside [-180, 180]"),
    ("15,40,16", "give 4 numbers lon0,lat0,lon1,lat1"),
    ("15,40,16,41,0,5", "got 6"),
    ("15,forty,16,41", "lat0 'forty' is not a number"),
    ("15,nan,16,41", "not a finite number"),
    ("15,41,16,40", "lat0 41 is north of lat1 40"),
])
def test_bad_bbox_is_one_line(text: str, message: str) -> None:
    with pytest.raises(InputError, match=message.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(")):
        parse_bbox(text)


def test_bad_area_files_are_one_line(tmp_path: Path) -> None:
    cases = {
        "not.geojson": ("no json at all", "not GeoJSON \\(not a JSON file"),
        "list.geojson": ("[1, 2]", "not GeoJSON \\(the top level is not an object\\)"),
        "other.geojson": ('{"name": "x"}', "not GeoJSON \\(no 'type'"),
        "empty.geojson": ('{"type": "FeatureCollection", "features": []}', "holds no polygon"),
        "point.geojson": (json.dumps({"type": "FeatureCollection", "features": [
            {"type": "Feature", "properties": {}, "geometry": {"type": "Point", "coordinates": [15, 45]}}]}),
            "feature 0 is a Point; --within takes Polygon or MultiPolygon"),
        "utm.geojson": (json.dumps(_polygon([[500000, 5e6], [501000, 5e6], [501000, 5.001e6], [500000, 5e6]])),
                        "outside WGS84 longitude/latitude"),
        "legacy.geojson": (json.dumps({"type": "FeatureCollection", "crs": {"type": "name", "properties": {
            "name": "urn:ogc:def:crs:EPSG::32633"}}, "features": []}), "coordinates are in urn:ogc:def:crs:EPSG::32633"
        ),
    }
    for name, (text, message) in cases.items():
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        with pytest.raises(InputError, match=message):
            read_area(path)
    with pytest.raises(InputError, match="file not found"):
        read_area(tmp_path / "missing.geojson")
    with pytest.raises(InputError, match="give --bbox or --within, not both"):
        area_from_options("1,2,3,4", tmp_path / "x.geojson")
    assert area_from_options(None, None) is None


def test_index_settings_follow_clipsuite_index_build() -> None:
    from clipsuite.remote.scenes import store_config

    small = store_config("exact", None, 100, 64, "tiny-multilingual")
    assert (small.kind, small.codes, small.model) == ("exact", "flat", "tiny-multilingual")
    pq = store_config("ivfpq", None, 20_000, 512, None)
    assert (pq.kind, pq.codes) == ("ivf", "pq64")  # dim / 8 bytes, as `clipsuite index build --kind ivfpq`
    planned = store_config("exact", 8 * 2**30, 500_000, 512, None)  # the budget picks (autofaiss-style)
    assert (planned.kind, planned.codes, planned.max_memory) == ("ivf", "flat", 8 * 2**30)
    assert store_config("exact", 8 * 2**30, 10_000_000, 512, None).codes == "sq8"
    with pytest.raises(InputError, match="--kind ivfpq needs at least 9984 tiles to train its codes, got 100"):
        store_config("ivfpq", None, 100, 64, None)
    with pytest.raises(InputError, match="too small for 10000000 x 512 vectors; the smallest that works is"):
        store_config("ivf", 2**20, 10_000_000, 512, None)
