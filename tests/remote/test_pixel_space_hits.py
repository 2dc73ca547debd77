"""A hit from a raster without CRS is never drawn at 0 N 0 E: no geometry, its pixel polygon said to be pixels."""

from __future__ import annotations

import json

from clipsuite.remote.search import Hit, hits_geojson


def _tile(crs: str | None, bounds: list[float]) -> dict[str, object]:
    return {"id": "t0", "path": "scene.tif", "row": 0, "col": 0, "window": [0, 0, 8, 8], "bounds": bounds, "crs": crs}


def test_pixel_space_hits_carry_no_geometry_and_say_what_their_numbers_are() -> None:
    hits = [Hit("river", 1, 0.3, _tile(None, [0.0, -8.0, 8.0, 0.0])),
            Hit("river", 2, 0.2, _tile("EPSG:32632", [500000.0, 5000000.0, 500080.0, 5000080.0]))]
    collection = hits_geojson(hits)
    pixel, placed = collection["features"]
    assert pixel["geometry"] is None  # RFC 7946 allows it; a GIS will not put it at 0 N 0 E
    assert pixel["properties"]["pixel_polygon"]["coordinates"][0][0] == [0.0, -8.0]
    assert pixel["properties"]["coordinates"].startswith("pixel")
    assert placed["geometry"]["type"] == "Polygon" and 8.9 < placed["geometry"]["coordinates"][0][0][0] < 9.1
    assert "rasters without CRS" in collection["clipsuite:pixel_coordinates"]
    json.dumps(collection)  # plain JSON


def test_georeferenced_hits_have_no_pixel_member() -> None:
    collection = hits_geojson([Hit("x", 1, 0.1, _tile("EPSG:4326", [10.0, 45.0, 10.1, 45.1]))])
    assert "clipsuite:pixel_coordinates" not in collection
    assert "pixel_polygon" not in collection["features"][0]["properties"]
