"""`clipsuite-remote search --bbox / --within` end to end on GeoTIFF scenes in UTM 33N, 34N and 60N (across
the antimeridian): the hits written are exactly the tiles whose WGS84 footprint intersects the area (every
one of them when --top allows), old indexes search unfiltered and are refused with a filter, and bad areas
stop the CLI in one line before torch is imported, with nothing written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import shapely
from shapely.geometry import shape
from typer.testing import CliRunner

from clipsuite.core.index import EmbeddingIndex, IndexConfig
from clipsuite.remote import synthetic
from clipsuite.remote.geo_filter import parse_bbox, read_area
from clipsuite.remote_app.main import app

CELLS = [["forest", "river"], ["solar_farm", "desert"]]


def _run(*args: object) -> Any:
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """Three 2 x 2-tile scenes in three UTM zones, indexed by the CLI; every tile's footprint by id."""
    root = tmp_path_factory.mktemp("geo")
    synthetic.write_scene(root / "s" / "z33.tif", rows=2, cols=2, cell=64, nodata_cols=0, cells=CELLS)
    synthetic.write_scene(root / "s" / "z34.tif", rows=2, cols=2, cell=64, nodata_cols=0, cells=CELLS,
                          crs="EPSG:32634")
    synthetic.write_scene(root / "s" / "z60.tif", rows=2, cols=2, cell=64, nodata_cols=0, cells=CELLS,
                          crs="EPSG:32660", origin=(736_120.0, 4_988_000.0))  # 180 degrees runs through it
    result = _run("index", root / "s", "-o", root / "idx", "--bands", "B04,B03,B02", "--tile-size", "64",
                  "--workers", "0")
    assert result.exit_code == 0, result.output
    assert "indexed 12 tiles from 3 scene(s)" in result.output
    every = _run("search", root / "idx", "a forest", "--top", "12", "-o", root / "all")
    assert every.exit_code == 0, every.output
    features = json.loads((root / "all" / "hits.geojson").read_text())["features"]
    assert len(features) == 12
    return root, {f["properties"]["tile"]: shape(f["geometry"]) for f in features}


def _hits(folder: Path) -> list[dict[str, Any]]:
    return json.loads((folder / "hits.geojson").read_text())["features"]


@pytest.mark.parametrize(("bbox", "scenes"), [
    ("14.9,45.0,15.1,45.2", {"z33.tif"}),
    ("14.99,45.0,15.004,45.2", {"z33.tif"}),  # the western column of z33's tiles only
    ("179.0,44.0,-179.0,46.0", {"z60.tif"}),  # across the antimeridian (RFC 7946: west > east)
    ("-179.99,44.0,-179.0,46.0", {"z60.tif"}),  # only the parts west of 180
    ("14.9,45.0,21.1,45.3", {"z33.tif", "z34.tif"}),
])
def test_bbox_returns_exactly_the_tiles_it_intersects(indexed: tuple[Path, dict[str, Any]], tmp_path: Path,
                                                     bbox: str, scenes: set[str]) -> None:
    root, footprints = indexed
    area = parse_bbox(bbox).geometry
    expected = {tile for tile, geometry in footprints.items() if geometry.intersects(area)}
    assert expected and {t.split(":")[0] for t in expected} == scenes and len(expected) < 12
    result = _run("search", root / "idx", "a forest", "a river", "--top", "12", "--bbox", bbox, "-o", tmp_path / "h")
    assert result.exit_code == 0, result.output
    hits = _hits(tmp_path / "h")
    for query in ("a forest", "a river"):
        mine = [h for h in hits if h["properties"]["query"] == query]
        assert {h["properties"]["tile"] for h in mine} == expected  # all of them, and only them
        assert all(shape(h["geometry"]).intersects(area) for h in mine)
        assert [h["properties"]["rank"] for h in mine] == list(range(1, len(expected) + 1))
    if len(expected) > 1:  # --top smaller than the matches: the best ones, still all inside
        top1 = _run("search", root / "idx", "a forest", "--top", "1", "--bbox", bbox, "-o", tmp_path / "one")
        assert top1.exit_code == 0, top1.output
        assert [h["properties"]["tile"] for h in _hits(tmp_path / "one")] == \
            [h["properties"]["tile"] for h in hits if h["properties"]["query"] == "a forest"][:1]


def test_within_an_area_file(indexed: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    root, footprints = indexed
    z34 = shapely.unary_union([g for t, g in footprints.items() if t.startswith("z34")])
    west, south, east, north = z34.bounds
    triangle = [[west - 0.01, south - 0.01], [(west + east) / 2, north + 0.01], [west - 0.01, north + 0.01],
                [west - 0.01, south - 0.01]]
    collection = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"name": "part of z34"}, "geometry": {"type": "Polygon",
                                                                               "coordinates": [triangle]}},
        {"type": "Feature", "properties": {"name": "east of 180"}, "geometry": {"type": "MultiPolygon", "coordinates": [
            [[[179.99, 44.0], [180.0, 44.0], [180.0, 46.0], [179.99, 46.0], [179.99, 44.0]]]]}}]}
    path = tmp_path / "area.geojson"
    path.write_text(json.dumps(collection), encoding="utf-8")
    area = read_area(path).geometry
    expected = {tile for tile, geometry in footprints.items() if geometry.intersects(area)}
    assert {t.split(":")[0] for t in expected} == {"z34.tif", "z60.tif"} and len(expected) < 8
    result = _run("search", root / "idx", "a forest", "--top", "12", "--within", path, "-o", tmp_path / "h")
    assert result.exit_code == 0, result.output
    assert {h["properties"]["tile"] for h in _hits(tmp_path / "h")} == expected
    far = tmp_path / "far.geojson"
    far.write_text(json.dumps({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]}))
    nothing = _run("search", root / "idx", "a forest", "--within", far, "-o", tmp_path / "none")
    assert nothing.exit_code == 2 and "intersects --within" in nothing.output and not (tmp_path / "none").exists()


def test_old_index_searches_unfiltered_and_is_refused_with_a_filter(indexed: tuple[Path, dict[str, Any]],
                                                                    tmp_path: Path, before_torch: Any) -> None:
    """A folder as the earlier clipsuite-remote wrote it: EmbeddingIndex (index.faiss + metadata.jsonl)."""
    root, _ = indexed
    info = json.loads((root / "idx" / "scenes.json").read_text())
    old = tmp_path / "old"
    EmbeddingIndex.from_shards(root / "idx.shards", IndexConfig(kind="exact", model="tiny-multilingual",
                                                                extra=info)).save(old)
    shutil.copy(root / "idx" / "scenes.json", old / "scenes.json")
    assert (old / "metadata.jsonl").is_file()
    plain = _run("search", old, "a forest", "--top", "3", "-o", tmp_path / "h")
    assert plain.exit_code == 0, plain.output
    assert len(_hits(tmp_path / "h")) == 3
    report, lines = before_torch("clipsuite.remote_app.main", ["search", str(old), "a forest", "--bbox",
                                                               "14,44,16,46", "-o", str(tmp_path / "f")])
    assert report == {"code": 2, "torch": False, "open_clip": False}, lines
    assert len(lines) == 1 and "built by an older clipsuite" in lines[0], lines
    assert f"rebuild it with `clipsuite-remote index SCENES -o {old}`" in lines[0]
    assert not (tmp_path / "f").exists()


def test_bad_areas_are_one_line_before_torch(indexed: tuple[Path, dict[str, Any]], tmp_path: Path,
                                             before_torch: Any) -> None:
    root, _ = indexed
    (tmp_path / "text.geojson").write_text("not json")
    (tmp_path / "points.geojson").write_text(json.dumps(
        {"type": "Feature", "properties": {}, "geometry": {"type": "Point", "coordinates": [15, 45]}}))
    out = tmp_path / "out"
    cases = [
        (["--bbox", "15,44,16,91"], "lat1 91 is outside [-90, 90]"),
        (["--bbox", "15,44,200,45"], "lon1 200 is outside [-180, 180]"),
        (["--bbox", "15,44,16"], "give 4 numbers"),
        (["--within", str(tmp_path / "text.geojson")], "not GeoJSON"),
        (["--within", str(tmp_path / "points.geojson")], "is a Point; --within takes Polygon or MultiPolygon"),
        (["--bbox", "15,44,16,45", "--within", str(tmp_path / "text.geojson")], "give --bbox or --within, not both"),
    ]
    for extra, message in cases:
        report, lines = before_torch("clipsuite.remote_app.main",
                                     ["search", str(root / "idx"), "a forest", "-o", str(out), *extra])
        assert report == {"code": 2, "torch": False, "open_clip": False}, (extra, lines)
        assert len(lines) == 1 and message in lines[0], (extra, lines)
        assert not out.exists()


def test_an_index_without_crs_cannot_be_filtered(tmp_path: Path) -> None:
    synthetic.write_scene(tmp_path / "plain.tif", rows=1, cols=2, cell=64, nodata_cols=0, crs=None,
                          cells=[["forest", "river"]])
    built = _run("index", tmp_path / "plain.tif", "-o", tmp_path / "idx", "--bands", "B04,B03,B02",
                 "--tile-size", "64", "--workers", "0")
    assert built.exit_code == 0, built.output
    result = _run("search", tmp_path / "idx", "a forest", "--bbox", "14,44,16,46", "-o", tmp_path / "h")
    assert result.exit_code == 2 and "no tile has a WGS84 footprint" in result.output
    assert not (tmp_path / "h").exists()
