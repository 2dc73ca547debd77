"""A tile larger than every scene: the library says the tile does not fit (not 'every tile is nodata'), and
the fit rule is the tiler's (a raster filling at least min_valid of a padded tile is indexed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from clipsuite.core.errors import InputError
from clipsuite.remote.prechecks import SceneSize, check_tiles_fit


def _scene(path: Path, width: int, height: int) -> Path:
    with rasterio.open(path, "w", driver="GTiff", width=width, height=height, count=3, dtype="uint16",
                       crs="EPSG:32633", transform=from_origin(500000, 4000000, 10, 10)) as dataset:
        dataset.write(np.random.default_rng(0).integers(1, 3000, (3, height, width), dtype=np.uint16))
    return path


def test_fit_rule_matches_the_padded_tile() -> None:
    assert SceneSize("a", 112, 224).tile_fits(224, 0.5)       # exactly half a tile: indexed
    assert not SceneSize("a", 111, 224).tile_fits(224, 0.5)
    assert SceneSize("a", 10, 10).tile_fits(224, 0.0)         # min-valid 0: any raster gives a tile
    check_tiles_fit([SceneSize("a", 64, 64), SceneSize("b", 300, 300)], 224, 0.5)  # one scene fits: no error
    with pytest.raises(InputError, match=r"b: a 512 px tile does not fit the raster \(300 x 200 px; min-valid 0.5"):
        check_tiles_fit([SceneSize("a", 64, 64), SceneSize("b", 300, 200)], 512, 0.5)


def test_library_index_says_the_tile_does_not_fit(tmp_path: Path) -> None:
    from clipsuite.core.models import load_model
    from clipsuite.remote.scenes import SceneIndexConfig, build_scene_index
    from clipsuite.remote.tiling import TileSpec

    scene = _scene(tmp_path / "small.tif", 64, 48)
    config = SceneIndexConfig(tile=TileSpec(size=256), num_workers=0, progress=False)
    with pytest.raises(InputError) as caught:
        build_scene_index(load_model("tiny-multilingual"), [scene], tmp_path / "idx", config)
    assert "a 256 px tile does not fit the raster (64 x 48 px" in str(caught.value)
    assert "use tiles of 48 px or less" in str(caught.value)
    assert "--tile-size 48" in caught.value.cli_message
