from __future__ import annotations

from pathlib import Path

import pytest

from clipsuite.remote import synthetic


@pytest.fixture(scope="session")
def scene(tmp_path_factory) -> synthetic.SceneLayout:
    """3 x 4 cells of 64 px; the first column of cells is nodata."""
    return synthetic.write_scene(tmp_path_factory.mktemp("scene") / "scene.tif", rows=3, cols=4, cell=64)


@pytest.fixture(scope="session")
def captions(tmp_path_factory) -> tuple[Path, Path]:
    return synthetic.write_captions(tmp_path_factory.mktemp("rsicd"), per_class=3, size=64)
