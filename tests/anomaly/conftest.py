from __future__ import annotations

from pathlib import Path

import pytest

from clipsuite.anomaly import synthetic


@pytest.fixture(scope="session")
def mvtec_root(tmp_path_factory) -> Path:
    """Two small categories (an object and a texture), 64 px, 2 defect types with masks."""
    root = tmp_path_factory.mktemp("mvtec")
    synthetic.make_mvtec(root, ("bottle", "carpet"), n_train=4, n_test_good=3, n_test_defect=2, size=64)
    return root
