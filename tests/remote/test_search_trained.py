"""Search quality after the short multilingual training: text queries in English, Chinese and Russian
land on the scene's solar-farm tiles, at the coordinates the raster's transform gives those cells."""

from __future__ import annotations

import geopandas
import pytest
from pyproj import Transformer

from clipsuite.core.models import load_model
from clipsuite.remote import synthetic
from clipsuite.remote.scenes import SceneIndexConfig, build_scene_index
from clipsuite.remote.search import search_scenes, write_search_results
from clipsuite.remote.tiling import TileSpec

# tiles read as the training chips were drawn (reflectance 0-0.35 -> 0-1, R G B)
CONFIG = SceneIndexConfig(tile=TileSpec(size=64), stretch=None, scale=1 / 3500, num_workers=0, progress=False,
                          bands=["B04", "B03", "B02"])
CELLS = [[None, "solar_farm", "forest", "river"], [None, "desert", "residential", "solar_farm"],
         [None, "farmland", "river", "forest"]]
QUERIES = {"en": "a solar farm with rows of panels", "zh": "一座有成排面板的太阳能电站",
           "ru": "много солнечных панелей в поле"}


def test_text_queries_land_on_the_solar_farm_tiles(tmp_path, trained):
    clip = load_model(str(trained.output_dir), device="cpu")
    layout = synthetic.write_scene(tmp_path / "scene.tif", rows=3, cols=4, cell=64, seed=7, cells=CELLS)
    built = build_scene_index(clip, [layout.path], tmp_path / "index", CONFIG, model_spec=str(trained.output_dir),
                              process_index=0, num_processes=1)
    assert built is not None and built.tiles == 9
    solar = set(layout.where("solar_farm"))
    results = search_scenes(built.index_dir, list(QUERIES.values()), top=2, clip=clip)
    for language, hits in zip(QUERIES, results):
        assert {(h.tile["row"], h.tile["col"]) for h in hits} == solar, (language, [h.tile["id"] for h in hits])
        for hit in hits:  # the cell's ground footprint, from the transform the scene was written with
            left, top = layout.transform @ (hit.tile["col"] * 64, hit.tile["row"] * 64)
            right, bottom = layout.transform @ ((hit.tile["col"] + 1) * 64, (hit.tile["row"] + 1) * 64)
            assert hit.tile["bounds"] == pytest.approx([left, bottom, right, top])
    # and in the GeoJSON a GIS reads, reprojected to WGS84
    frame = geopandas.read_file(write_search_results(results[1], CONFIG, tmp_path / "zh") / "hits.geojson")
    to_wgs84 = Transformer.from_crs(synthetic.CRS, "EPSG:4326", always_xy=True)
    for hit, geometry in zip(results[1], frame.geometry):
        left, bottom, right, top = hit.tile["bounds"]
        lon, lat = to_wgs84.transform((left + right) / 2, (bottom + top) / 2)
        assert (geometry.centroid.x, geometry.centroid.y) == pytest.approx((lon, lat), abs=1e-5)
