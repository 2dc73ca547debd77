"""Shared synthetic data and models for the medical tests (built once per session, small)."""

from __future__ import annotations

from pathlib import Path

import pytest

from clipsuite.medical import synthetic


@pytest.fixture(scope="session")
def vqa_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("vqa_rad")
    synthetic.write_vqa_rad(root, n_images=36, seed=0)
    return root


@pytest.fixture(scope="session")
def slices_split(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic.write_slice_dataset(tmp_path_factory.mktemp("slices"), n_per_class=12, seed=0)
